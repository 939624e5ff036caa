"""``GET /explorer`` — one convolution or pooling layer's arithmetic, animated.

The page (``templates/explorer.html``, ``static/js/explorer.js``) asks ``GET /api/conv`` for the
geometry and ``GET /api/conv/frames`` for the frames with numbers.
"""
from flask import Blueprint, render_template

TITLE = "Conv arithmetic"
bp = Blueprint("explorer", __name__)


@bp.get("/explorer")
def page():
    return render_template("explorer.html")
