"""``GET /dense`` — draw several digits anywhere on a larger canvas; a detector's boxes or a
segmenter's mask follow the pen.

Shown when the served model is a localiser, detector or segmenter (``/`` leads here). The page
(``templates/dense.html``, ``static/js/dense.js``) asks ``GET /api/model`` once (task, classes and
their colours, the pen width and digit size of the training canvases) and ``POST /api/dense`` while
the user draws (:mod:`striate.serve.api.dense`).
"""
from flask import Blueprint, render_template

from ..dense import DENSE_TASKS

TITLE = "Draw & find"
TITLES = {"detection": "Detect", "segmentation": "Segment", "localisation": "Localise"}
TASKS = DENSE_TASKS
NEEDS = "a localisation, detection or segmentation model (this one classifies: draw in the Network view)"
bp = Blueprint("dense", __name__)


@bp.get("/dense")
def page():
    return render_template("dense.html")
