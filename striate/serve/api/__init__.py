"""The JSON API, one blueprint per area, each under ``/api/``; every error is one JSON line (see
:mod:`striate.serve.errors`).

* :mod:`.model` — ``GET /api/model``, ``POST /api/predict``: the served model and its answers.
* :mod:`.dense` — ``POST /api/dense``: a localiser's, detector's or segmenter's boxes or mask.
* :mod:`.conv` — ``GET /api/conv``, ``GET /api/conv/frames``: one layer's arithmetic.
* :mod:`.explain` — ``GET /api/explain``, ``GET /api/gradient``: one unit's arithmetic, the backward pass.
* :mod:`.train` — ``/api/train/...``: live training runs of the Train view (start, pause, resume, stop, set).
"""
from . import conv, dense, explain, model, train

BLUEPRINTS = (model.bp, dense.bp, conv.bp, explain.bp, train.bp)
