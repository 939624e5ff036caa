"""``GET /`` — draw a digit (or upload a picture) and watch every layer respond.

The page (``templates/draw.html``, ``static/js/draw.js``) asks ``GET /api/model`` once and
``POST /api/predict`` while the user draws; hovering a unit outlines its receptive field.
"""
from flask import Blueprint, render_template

TITLE = "Network"
TASKS = ("classification",)
NEEDS = "a classifier: it shows class probabilities and every layer's maps"
bp = Blueprint("draw", __name__)


@bp.get("/")
def page():
    return render_template("draw.html")
