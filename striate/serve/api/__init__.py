"""The JSON API, one blueprint per area, each under ``/api/``; every error is one JSON line (see
:mod:`striate.serve.errors`).

* :mod:`.model` — ``GET /api/model``, ``POST /api/predict``: the served model and its answers.
* :mod:`.conv` — ``GET /api/conv``, ``GET /api/conv/frames``: one layer's arithmetic.
"""
from . import conv, model, train

BLUEPRINTS = (model.bp, conv.bp, train.bp)
