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

Every mistake in a request (not an image, too large, wrong size, a bad parameter) is answered
with HTTP 400 and ``{"error": "<one line>"}``; an unexpected failure with 500 and a JSON line,
never a traceback. The body size is capped (``max_bytes``, 4 MiB by default).
"""
from __future__ import annotations

import json
import logging
import time

from .inference import ServedModel
from .preprocess import ImageError, MODES, decode_data_url, decode_image, prepare

MAX_BYTES = 4 * 1024 * 1024   # a drawn digit is ~10 KB, a phone photo a few MB
MAX_CONV_SIZE = 64            # explorer inputs: large enough for any lesson, small enough to draw


def _flask():
    try:
        import flask
    except ImportError:
        raise ImportError("striate serve needs Flask: pip install striate[serve].") from None
    return flask


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
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    if not isinstance(served, ServedModel):
        raise TypeError(f"create_app expects a ServedModel. Received: {type(served).__name__}.")
    app = flask.Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_bytes)
    app.json.sort_keys = False
    app.json.compact = True
    log = logging.getLogger("striate.serve")
    model_info = served.describe()
    default_mode = "digit" if served.input_shape[2] == 1 and served.input_shape[0] == served.input_shape[1] \
        else "resize"
    model_info["default_preprocess"] = default_mode
    model_info["preprocess_modes"] = list(MODES)
    model_info["max_bytes"] = int(max_bytes)

    def error(message: str, status: int = 400):
        return flask.jsonify(error=message), status

    @app.errorhandler(HTTPException)
    def http_error(e):
        if isinstance(e, RequestEntityTooLarge):
            return error(f"the request body is too large: at most {max_bytes:,} bytes are accepted.", 400)
        if e.code and e.code >= 500:
            return error("internal error", e.code)
        return error(f"{e.name}: {e.description}", e.code or 400)

    @app.errorhandler(Exception)
    def unexpected(e):
        log.exception("unexpected error")  # the traceback goes to the server's log, not the client
        return error(f"internal error ({type(e).__name__}); see the server's log.", 500)

    @app.get("/")
    def index():
        return app.send_static_file("index.html")

    @app.get("/explorer")
    def explorer():
        return app.send_static_file("explorer.html")

    @app.get("/api/model")
    def model():
        return flask.jsonify(model_info)

    def read_request():
        """(image bytes, preprocess mode, invert) from a raw image body or a JSON body."""
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

    @app.post("/api/predict")
    def predict():
        t0 = time.perf_counter()
        try:
            body, mode, invert = read_request()
            x = prepare(decode_image(body), served.input_shape, mode=mode, invert=invert)
        except ImageError as e:
            return error(str(e))
        result = served.run(x)
        result["preprocess"] = mode
        result["ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return flask.jsonify(result)

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
            return error(str(e))
        r = conv_arithmetic(size, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation)
        out = {"ok": r.ok, "error": r.error, "input": size, "kernel": kernel, "stride": stride,
               "padding": padding, "dilation": dilation, "notes": r.notes()}
        if r.ok:
            g = r.layers[-1]
            out.update(output=g.output_size[0], pads=list(g.pads), rf=g.rf[0], jump=g.jump[0],
                       start=g.start[0], unused=g.unused[0], effective_kernel=g.effective_kernel[0])
        return flask.jsonify(out)

    return app
