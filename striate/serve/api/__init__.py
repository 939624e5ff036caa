"""The JSON API, one blueprint per area, each under ``/api/``; every error is one JSON line (see
:mod:`striate.serve.errors`).

* :mod:`.model` — ``GET /api/model``, ``POST /api/predict``: the served model and its answers.
* :mod:`.conv` — ``GET /api/conv``, ``GET /api/conv/frames``: one layer's arithmetic.
* :mod:`.explain` — ``GET /api/explain``, ``GET /api/gradient``: one unit's arithmetic, the backward pass.
"""
from . import conv, explain, model

BLUEPRINTS = (model.bp, conv.bp, explain.bp)
