"""A dense model's answer for one drawn canvas: boxes or a mask.

* ``POST /api/dense`` — body: PNG/JPEG bytes, or JSON ``{"image": "data:image/png;base64,...",
  "invert": true|false|"auto", "min_score": 0.3}`` (``invert`` and ``min_score`` also as query
  parameters for a raw body). Returns :meth:`striate.serve.dense.ServedDense.run`'s answer (boxes in
  the picture's pixels, or the mask as a PNG) and ``ms``, the server's time for the request.
  Localisation, detection and segmentation models only; a classifier answers ``POST /api/predict``.
"""
from __future__ import annotations

import time

from flask import Blueprint, jsonify

from ..dense import DENSE_TASKS, MIN_SCORE
from ..errors import api_errors
from ..preprocess import decode_image
from ..state import current, serves
from .model import parse_invert, read_request

bp = api_errors(Blueprint("api_dense", __name__, url_prefix="/api"))


@bp.post("/dense")
@serves(*DENSE_TASKS)
def dense():
    t0 = time.perf_counter()
    body, options = read_request()
    unknown = sorted(set(options) - {"invert", "min_score"})
    if unknown:
        raise ValueError(f"POST /api/dense takes the options invert and min_score. Received: {', '.join(unknown)}.")
    invert = parse_invert(options.get("invert", "auto"))
    min_score = parse_score(options.get("min_score", MIN_SCORE))
    result = current().served.run(decode_image(body), invert=invert, min_score=min_score)
    result["ms"] = round(1000 * (time.perf_counter() - t0), 2)
    return jsonify(result)


def parse_score(value) -> float:
    """``min_score`` from a query string or JSON: a number in [0, 1]."""
    try:
        score = float(value)
        if isinstance(value, bool) or not 0.0 <= score <= 1.0:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"min_score must be a number between 0 and 1. Received: min_score={value!r}.") from None
    return score
