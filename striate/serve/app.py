"""The Flask application: the page, its static files, and the JSON API it uses.

Routes:

* ``GET /`` — the page: drawing canvas, the input as the model sees it, class probabilities,
  every layer's activation maps, the first layer's filters, receptive fields on hover.
* ``GET /explorer`` — the convolution arithmetic explorer (input, kernel, stride, padding,
  dilation -> output size and the sliding window).
* ``POST /api/predict`` — body: PNG/JPEG bytes, or JSON ``{"image": "data:image/png;base64,...",
  "preprocess": "digit"|"resize"|"none", "invert": true|false|"auto"}`` (the first two also as
  query parameters for a raw body). Returns ``probabilities``, ``classes``, ``top``, ``input``,
  ``layers`` (see :meth:`striate.serve.inference.ServedModel.run`) and ``ms`` (server time).
* ``GET /api/model`` — layers, shapes, parameters, receptive fields, first-layer filters.
* ``GET /api/conv?input=7&kernel=3&stride=1&padding=0&dilation=1`` — the arithmetic of one layer
  (:func:`striate.summary.calc.conv_arithmetic`).
* ``GET /api/conv/frames?...&kind=conv|transposed|max|avg`` — the same layer frame by frame with
  the numbers, drawn by :mod:`striate.vis.animate` (PNG data URLs).

Every mistake in a request (not an image, too large, wrong size, a bad parameter) is answered
with HTTP 400 and ``{"error": "<one line>"}``; an unexpected failure with 500 and a JSON line,
never a traceback. The body size is capped (``max_bytes``, 4 MiB by default).
"""
from __future__ import annotations

import base64
import functools
import io
import json
import logging
import time

from ..optional import require
from .inference import ServedModel
from .preprocess import ImageError, MODES, decode_data_url, decode_image, prepare

MAX_BYTES = 4 * 1024 * 1024   # a drawn digit is ~10 KB, a phone photo a few MB
MAX_CONV_SIZE = 64            # explorer inputs: large enough for any lesson, small enough to draw


def _flask():
    return require("flask", "serve", "striate serve")


def _parse_invert(value):
    if isinstance(value, bool) or value is None:
        return "auto" if value is None else value
    text = str(value).strip().lower()
    table = {"auto": "auto", "true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text not in table:
        raise ImageError(f"invert must be true, false or auto. Received: invert={value!r}.")
    return table[text]


def _int_arg(args, name, default, low, high):
    raw = args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer. Received: {name}={raw!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}. Received: {name}={value}.")
    return value


def create_app(served: ServedModel, max_bytes: int = MAX_BYTES):
    """Build the Flask app that serves ``served`` (a :class:`~striate.serve.inference.ServedModel`).

    Args:
        served: the model, with its input shape, classes and standardisation.
        max_bytes: largest request body accepted; larger ones get a 400.

    Example::

        >>> app = create_app(ServedModel(st.models.lenet5(), (28, 28, 1)))
        >>> app.test_client().get("/api/model").json["input_shape"]
        [28, 28, 1]
    """
    flask = _flask()
    if not isinstance(served, ServedModel):
        raise TypeError(f"create_app expects a ServedModel. Received: {type(served).__name__}.")
    app = flask.Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_bytes)
    app.json.sort_keys = False
    app.json.compact = True
    _add_error_handlers(app, flask, int(max_bytes))
    _add_pages(app, flask, served, int(max_bytes))
    _add_predict(app, flask, served, int(max_bytes))
    _add_conv(app, flask)
    return app


def _default_mode(served: ServedModel) -> str:
    """Drawn digits are centred for square one-channel models; anything else is resized."""
    h, w, c = served.input_shape
    return "digit" if c == 1 and h == w else "resize"


def _error(flask, message: str, status: int = 400):
    return flask.jsonify(error=message), status


def _add_error_handlers(app, flask, max_bytes: int) -> None:
    """Every error as one JSON line: 400 for a too-large body, the HTTP code otherwise, 500 without traceback."""
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    log = logging.getLogger("striate.serve")

    @app.errorhandler(HTTPException)
    def http_error(e):
        if isinstance(e, RequestEntityTooLarge):
            return _error(flask, f"the request body is too large: at most {max_bytes:,} bytes are accepted.", 400)
        if e.code and e.code >= 500:
            return _error(flask, "internal error", e.code)
        return _error(flask, f"{e.name}: {e.description}", e.code or 400)

    @app.errorhandler(Exception)
    def unexpected(e):
        log.exception("unexpected error")  # the traceback goes to the server's log, not the client
        return _error(flask, f"internal error ({type(e).__name__}); see the server's log.", 500)


def _add_pages(app, flask, served: ServedModel, max_bytes: int) -> None:
    """``/``, ``/explorer`` and ``/api/model`` (described once: the model does not change)."""
    model_info = served.describe()
    model_info.update(default_preprocess=_default_mode(served), preprocess_modes=list(MODES), max_bytes=max_bytes)

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    @app.get("/explorer")
    def explorer():
        return app.send_static_file("explorer.html")

    @app.get("/api/model")
    def model():
        return flask.jsonify(model_info)


def _read_request(flask, max_bytes: int, default_mode: str):
    """(image bytes, preprocess mode, invert) from a raw image body or a JSON body."""
    from werkzeug.exceptions import RequestEntityTooLarge

    req = flask.request
    if req.content_length is not None and req.content_length > max_bytes:
        raise RequestEntityTooLarge()
    body = req.get_data(cache=False)
    mode, invert = req.args.get("preprocess", default_mode), req.args.get("invert", "auto")
    if req.mimetype == "application/json" or body[:1] in (b"{", b"["):
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            raise ImageError(f"the JSON body cannot be parsed ({e}).") from None
        if not isinstance(doc, dict) or "image" not in doc:
            raise ImageError("the JSON body must be an object with an 'image' data URL: "
                             "{\"image\": \"data:image/png;base64,...\"}.")
        mode, invert = doc.get("preprocess", mode), doc.get("invert", invert)
        body = decode_data_url(doc["image"])
    return body, mode, _parse_invert(invert)


def _add_predict(app, flask, served: ServedModel, max_bytes: int) -> None:
    """``POST /api/predict``: decode, preprocess, run striate, answer with every layer."""
    default_mode = _default_mode(served)

    @app.post("/api/predict")
    def predict():
        t0 = time.perf_counter()
        try:
            body, mode, invert = _read_request(flask, max_bytes, default_mode)
            x = prepare(decode_image(body), served.input_shape, mode=mode, invert=invert, mean=served.mean)
        except ImageError as e:
            return _error(flask, str(e))
        result = served.run(x)
        result["preprocess"] = mode
        result["ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return flask.jsonify(result)


def _add_conv(app, flask) -> None:
    """``GET /api/conv`` (one layer's arithmetic) and ``GET /api/conv/frames`` (the same, frame by frame)."""

    @app.get("/api/conv")
    def conv():
        from ..summary.calc import conv_arithmetic

        args = flask.request.args
        try:
            size = _int_arg(args, "input", 7, 1, MAX_CONV_SIZE)
            kernel = _int_arg(args, "kernel", 3, 1, MAX_CONV_SIZE)
            stride = _int_arg(args, "stride", 1, 1, MAX_CONV_SIZE)
            dilation = _int_arg(args, "dilation", 1, 1, MAX_CONV_SIZE)
            raw_pad = args.get("padding", "0")
            padding = raw_pad if raw_pad in ("same", "valid") else _int_arg(args, "padding", 0, 0, MAX_CONV_SIZE)
        except ValueError as e:
            return _error(flask, str(e))
        r = conv_arithmetic(size, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation)
        out = {"ok": r.ok, "error": r.error, "input": size, "kernel": kernel, "stride": stride,
               "padding": padding, "dilation": dilation, "notes": r.notes()}
        if r.ok:
            g = r.layers[-1]
            out.update(output=g.output_size[0], pads=list(g.pads), rf=g.rf[0], jump=g.jump[0],
                       start=g.start[0], unused=g.unused[0], effective_kernel=g.effective_kernel[0])
        return flask.jsonify(out)

    @app.get("/api/conv/frames")
    def conv_frames():
        args = flask.request.args
        try:
            spec = (_int_arg(args, "input", 5, 1, MAX_FRAME_INPUT), _int_arg(args, "kernel", 3, 1, MAX_FRAME_INPUT),
                    _int_arg(args, "stride", 1, 1, MAX_FRAME_INPUT), args.get("padding", "0"),
                    _int_arg(args, "dilation", 1, 1, MAX_FRAME_INPUT), args.get("kind", "conv"))
            frames, describe = _frames(*spec)
        except ValueError as e:
            return _error(flask, " ".join(str(e).split()))
        return flask.jsonify(frames=frames, describe=describe, count=len(frames))


MAX_FRAME_INPUT = 16   # the numbers view: small inputs, where every value can be read
MAX_FRAMES = 64        # one frame per output cell, each drawn and encoded by Pillow (~20 ms): ~1 s at most
KINDS = ("conv", "transposed", "max", "avg")


@functools.lru_cache(maxsize=64)
def _frames(size: int, kernel: int, stride: int, padding: str, dilation: int, kind: str):
    """The conv-arithmetic frames of :mod:`striate.vis.animate` (issue 12's animation) as PNG data URLs.

    The values in them are computed by ``F.conv2d`` / ``F.max_pool2d`` / ``F.avg_pool2d`` (the
    transposed convolution by the backward of ``F.conv2d``). Raises ValueError for settings the
    animation cannot show.
    """
    from ..summary.calc import conv_arithmetic
    from ..vis import conv_animation, draw_frames, pool_animation

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}.")
    if padding == "same":
        r = conv_arithmetic(size, kernel_size=kernel, stride=stride, padding="same", dilation=dilation)
        if not r.ok:
            raise ValueError(r.error)
        top, bottom = r.layers[0].pads[:2]
        if top != bottom:
            raise ValueError(f"'same' pads this layer unevenly ({top} before, {bottom} after); the frames show "
                             "even padding only. Choose a padding number.")
        pad = top
    else:
        try:
            pad = int(padding)
        except ValueError:
            raise ValueError(f"padding must be an integer or 'same'. Received: padding={padding!r}.") from None
        if not 0 <= pad <= MAX_FRAME_INPUT:
            raise ValueError(f"padding must be between 0 and {MAX_FRAME_INPUT}. Received: padding={pad}.")
    if kind in ("max", "avg"):
        if dilation != 1:
            raise ValueError("pooling windows are not dilated here: set dilation to 1 for max or avg pooling.")
        anim = pool_animation(size, kernel, stride, pad, mode=kind)
    else:
        anim = conv_animation(size, kernel, stride, pad, dilation, transposed=kind == "transposed")
    if len(anim.frames) > MAX_FRAMES:
        raise ValueError(f"these settings make {len(anim.frames)} frames; the numbers view draws at most "
                         f"{MAX_FRAMES}. Use a smaller input or a larger stride.")
    urls = []
    for img in draw_frames(anim, numbers=True, cell=30):
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)   # fast; the frames are flat colours and text
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return urls, anim.describe()
