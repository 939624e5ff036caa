"""``GET /train`` — train a network live: pick the data and the model, start, pause, re-tune, race optimisers.

The page (``templates/train.html``, ``static/js/train.js``) calls ``/api/train/...``
(:mod:`striate.serve.api.train`) and polls the running run's snapshot twice a second.
"""
from flask import Blueprint, render_template

TITLE = "Train"
bp = Blueprint("train", __name__)


@bp.get("/train")
def page():
    return render_template("train.html")
