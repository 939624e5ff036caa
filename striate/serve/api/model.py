"""The served model's API: its description and its answer for one picture.

* ``GET /api/model`` — layers, shapes, parameters, receptive fields, first-layer filters
  (:meth:`striate.serve.inference.ServedModel.describe`), the default preprocessing and the body limit;
  for a dense model its task, classes and colours (:meth:`striate.serve.dense.ServedDense.describe`).
* ``POST /api/predict`` — body: PNG/JPEG bytes, or JSON ``{"image": "data:image/png;base64,...",
  "preprocess": "digit"|"resize"|"none", "invert": true|false|"auto"}`` (the first two also as
  query parameters for a raw body). Returns ``probabilities``, ``classes``, ``top``, ``input``,
  ``layers`` (see :meth:`~striate.serve.inference.ServedModel.run`), ``preprocess``, ``input_key``
  (names the prepared image for ``GET /api/explain`` and ``GET /api/gradient``) and ``ms``.
  Classifiers only; a dense model answers ``POST /api/dense`` (:mod:`.dense`).
"""
from __future__ import annotations

import json
import time

from flask import Blueprint, jsonify, request

from ..errors import api_errors
from ..preprocess import ImageError, decode_data_url, decode_image, prepare
from ..state import current, default_preprocess, serves

bp = api_errors(Blueprint("api_model", __name__, url_prefix="/api"))


@bp.get("/model")
def model():
    return jsonify(current().model_info)


@bp.post("/predict")
@serves("classification")
def predict():
    t0 = time.perf_counter()
    state = current()
    served = state.served
    body, mode, invert = read_body(default_preprocess(served))
    x = prepare(decode_image(body), served.input_shape, mode=mode, invert=invert, mean=served.mean)
    result = served.run(x)
    result["preprocess"] = mode
    result["input_key"] = state.remember(x)
    result["ms"] = round(1000 * (time.perf_counter() - t0), 2)
    return jsonify(result)


def read_body(default_mode: str):
    """``(image bytes, preprocess mode, invert)`` from a raw image body or a JSON body."""
    body, options = read_request()
    return body, options.get("preprocess", default_mode), parse_invert(options.get("invert", "auto"))


def read_request():
    """``(image bytes, options)`` from a raw image body (options: the query parameters) or a JSON body
    ``{"image": data URL, ...}`` (options: the query parameters updated by the JSON's other keys).

    The body's size is capped by the app's ``MAX_CONTENT_LENGTH`` (Werkzeug stops reading past it).
    """
    body = request.get_data(cache=False)
    options = dict(request.args.items())
    if request.mimetype == "application/json" or body[:1] in (b"{", b"["):
        doc = parse_json(body)
        if not isinstance(doc, dict) or "image" not in doc:
            raise ImageError("the JSON body must be an object with an 'image' data URL: "
                             "{\"image\": \"data:image/png;base64,...\"}.")
        options.update((k, v) for k, v in doc.items() if k != "image")
        body = decode_data_url(doc["image"])
    return body, options


def parse_json(body: bytes):
    """The JSON document of a request body; ValueError with the reason when it is not one."""
    try:
        return json.loads(body)
    except RecursionError:   # Python's parser recurses once per nesting level: "[[[[..." exhausts the stack
        raise ValueError("the JSON body is nested too deeply to be read; send "
                         "{\"image\": \"data:image/png;base64,...\"}.") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ImageError(f"the JSON body cannot be parsed ({e}).") from None


def parse_invert(value):
    """``invert`` from a query string or JSON: True, False or ``"auto"``."""
    if isinstance(value, bool) or value is None:
        return "auto" if value is None else value
    text = str(value).strip().lower()
    table = {"auto": "auto", "true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text not in table:
        raise ImageError(f"invert must be true, false or auto. Received: invert={value!r}.")
    return table[text]
