"""The live runs of the Train view, under ``/api/train`` (errors: one JSON line, 400 for bad settings).

* ``GET  /api/train/options`` — data sets offered, suggested models, default settings, unfinished runs.
* ``POST /api/train/check`` ``{"dataset", "model"}`` — the model built for the data, with its summary.
* ``POST /api/train/start`` ``{"dataset", "model", "optimizer", "lr", "momentum", "weight_decay",
  "batch_size", "epochs", "seed"}`` — start a run in the background; ``{"id"}``.
* ``POST /api/train/race`` ``{settings..., "entrants": [{"optimizer", "lr", "momentum", "label"}, ...]}`` —
  one run per entrant on the same data, model and seed; ``{"race", "runs"}``.
* ``POST /api/train/resume`` ``{"name"}`` — continue an unfinished run of the runs folder.
* ``GET  /api/train/runs`` — the runs of this server and the unfinished ones on disk.
* ``GET  /api/train/runs/<id>?since=N&lite=1`` — a run's snapshot (the losses of the steps after step N; ``lite``
  leaves out the layers, filters and maps).
* ``POST /api/train/runs/<id>/pause|resume|stop`` and ``POST /api/train/runs/<id>/set`` ``{"lr": ...}``.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import api_errors
from ..trainer import DEFAULTS, RACE_DEFAULT, SUGGESTED_MODELS, current_runs

bp = api_errors(Blueprint("api_train", __name__, url_prefix="/api/train"))

LITE_DROP = ("layers", "flow_start", "filters", "probe", "confusion")


def body() -> dict:
    """The request's JSON object, or a ValueError saying what was sent instead."""
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        raise ValueError("the request body must be a JSON object, e.g. {\"lr\": 0.01}. Received: "
                         f"{(request.get_data(as_text=True) or 'nothing')[:60]!r}.")
    return doc


@bp.get("/options")
def options():
    runs = current_runs()
    return jsonify(datasets=[{k: d[k] for k in ("name", "title")} for d in runs.data_sets()],
                   models=SUGGESTED_MODELS, defaults=DEFAULTS, race=list(RACE_DEFAULT),
                   unfinished=runs.unfinished(), runs_dir=runs.runs_dir)


@bp.post("/check")
def check():
    doc = body()
    return jsonify(current_runs().check_model(doc.get("dataset", DEFAULTS["dataset"]), doc.get("model")))


@bp.post("/start")
def start():
    return jsonify(id=current_runs().start(body()))


@bp.post("/race")
def race():
    doc = body()
    entrants = doc.pop("entrants", RACE_DEFAULT)
    return jsonify(current_runs().race(doc, entrants))


@bp.post("/resume")
def resume():
    return jsonify(id=current_runs().resume(body().get("name")))


@bp.get("/runs")
def runs():
    return jsonify(current_runs().listing())


@bp.get("/runs/<run_id>")
def snapshot(run_id):
    raw = request.args.get("since", "0")
    if not raw.isdigit():
        raise ValueError(f"since must be a step number (0 or more). Received: since={raw!r}.")
    snap = current_runs().get(run_id).snapshot(int(raw))
    if request.args.get("lite"):
        for key in LITE_DROP:
            snap.pop(key)
    return jsonify(snap)


@bp.post("/runs/<run_id>/<action>")
def control(run_id, action):
    run = current_runs().get(run_id)
    if action == "set":
        run.set(**body())
    elif action in ("pause", "resume", "stop"):
        getattr(run, action)()
    else:
        raise ValueError(f"action must be pause, resume, stop or set. Received: {action!r}.")
    return jsonify(status=run.status, settings=run.settings, changes=run.changes)
