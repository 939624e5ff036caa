"""``GET /3d`` — the whole network on the current input in 3D: each layer a slab of its maps.

The page (``templates/network3d.html``, ``static/js/network3d.js``) sends the picture to
``POST /api/predict`` (the Network view's last picture is carried over in the browser's session
storage), draws every layer's maps on a canvas with its own small perspective projection (no
library), turns and zooms with the mouse, asks ``GET /api/explain`` for the unit under the mouse to
draw the connections to the units it reads, and opens the explanation panel on a click.
"""
from flask import Blueprint, render_template

TITLE = "3D network"
TASKS = ("classification",)
NEEDS = "a classifier: it shows every layer's maps of one drawn digit"
bp = Blueprint("network3d", __name__)


@bp.get("/3d")
def page():
    return render_template("network3d.html")
