"""The live runs of one app (the Train view): which data sets it offers, the runs it started, races.

Training itself is :class:`striate.training.live.LiveRun` (a background thread per run); this module only
keeps the app's runs by id, loads each data set once, names run folders under the app's runs folder
(``striate serve --runs DIR``) and finds the unfinished runs there that can be resumed.
"""
from __future__ import annotations

import os
import threading
import time

from ..training.live import LiveRun, unfinished_runs

KEY = "striate.serve.train"
MAX_ACTIVE = 4                     # runs training at once: the CPU is shared by all of them
RACE_DEFAULT = ({"optimizer": "sgd", "lr": 0.05, "momentum": 0.0, "label": "SGD"},
                {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "label": "SGD+momentum"},
                {"optimizer": "adam", "lr": 0.002, "momentum": 0.0, "label": "Adam"})
DEFAULTS = {"dataset": "digits", "model": "conv 8 3 relu, pool 2, conv 16 3 relu, dense 10", "optimizer": "sgd",
            "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32, "epochs": 5, "seed": 0}
SUGGESTED_MODELS = {"digits": ["digits_cnn"], "mnist": ["lenet5", "mnist_cnn"],
                    "fashion_mnist": ["lenet5", "mnist_cnn"]}


def data_sets(data_dir) -> list[dict]:
    """The data sets a page may train on: the embedded digits, and what ``data_dir`` holds (MNIST or
    Fashion-MNIST files in it or in a sub-folder, else the folder as one sub-folder of images per class)."""
    from ..data.datasets import identify_files

    found = [{"name": "digits", "title": "digits (8x8, embedded)", "data_dir": None}]
    if data_dir is None:
        return found
    places = [data_dir] + sorted(os.path.join(data_dir, d) for d in os.listdir(data_dir)
                                 if os.path.isdir(os.path.join(data_dir, d)))
    for place in places:
        name, _ = identify_files(place)
        if name in ("mnist", "fashion_mnist") and all(d["name"] != name for d in found):
            found.append({"name": name, "title": f"{name.replace('_', '-')} ({os.path.basename(place)})",
                          "data_dir": place})
    if len(found) == 1:
        found.append({"name": "folder", "title": f"image folder {os.path.basename(os.path.normpath(data_dir))}",
                      "data_dir": data_dir})
    return found


class TrainRuns:
    """The live runs of one app.

    Args:
        runs_dir: where run folders go (one ``serve-<time>-<label>`` folder per run) and where unfinished
            runs are looked for.
        data_dir: the ``--data-dir`` of ``striate serve`` (None: the embedded digits only).
    """

    def __init__(self, runs_dir="runs", data_dir=None):
        self.runs_dir = os.fspath(runs_dir)
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self.runs: dict[str, LiveRun] = {}
        self.races: dict[str, list[str]] = {}
        self._data = {}
        self._lock = threading.Lock()
        self._count = 0

    # ---------------------------------------------------------------------------------- data
    def data_sets(self) -> list[dict]:
        return data_sets(self.data_dir)

    def _data_set(self, name: str):
        """``(dataset name for the run, data_dir, loaded Dataset)``, each loaded once per app."""
        from ..data import load_dataset

        offered = {d["name"]: d for d in self.data_sets()}
        if name not in offered:
            raise ValueError(f"dataset must be one of {', '.join(offered)}. Received: dataset={name!r}.")
        d = offered[name]
        dataset = d["data_dir"] if name == "folder" else name
        with self._lock:
            if name not in self._data:
                self._data[name] = load_dataset(dataset, data_dir=None if name == "folder" else d["data_dir"])
            return dataset, (None if name == "folder" else d["data_dir"]), self._data[name]

    def check_model(self, dataset: str, model: str) -> dict:
        """Build ``model`` (a zoo name or a layer list) for ``dataset``; its summary, or a one-line ValueError."""
        from ..summary import summary
        from ..training.live import build_model

        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a zoo model name or a layer list. Received: model={model!r}.")
        _, _, ds = self._data_set(dataset)
        args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
        try:
            net = build_model(model.strip(), args, rng=0)
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None
        return {"summary": str(summary(net, tuple(ds.input_shape))), "params": net.num_parameters(),
                "input_shape": list(ds.input_shape), "num_classes": ds.num_classes}

    # ---------------------------------------------------------------------------------- runs
    def _active(self) -> int:
        return sum(r.status in ("running", "paused") for r in self.runs.values())

    def _folder(self, label: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label.lower()).strip("-") or "run"
        with self._lock:
            self._count += 1
            n = self._count
        return os.path.join(self.runs_dir, f"serve-{stamp}-{n}-{safe}")

    def _add(self, run: LiveRun) -> str:
        with self._lock:
            if self._active() >= MAX_ACTIVE:
                raise ValueError(f"{MAX_ACTIVE} runs are already training; stop one before starting another.")
            run_id = f"r{len(self.runs) + 1}"
            self.runs[run_id] = run
        return run_id

    def start(self, settings: dict, label: str | None = None) -> str:
        """Start a run from the page's settings (missing ones from :data:`DEFAULTS`); its id."""
        s = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
        unknown = sorted(set(s) - set(DEFAULTS) - {"label"})
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; the settings are {', '.join(DEFAULTS)}.")
        if isinstance(s["model"], str):
            self.check_model(s["dataset"], s["model"])     # errors that name the layer, before any folder
        dataset, data_dir, ds = self._data_set(s["dataset"])
        label = label or s.get("label") or s["optimizer"]
        run = LiveRun(self._folder(label), dataset=dataset, model=s["model"], optimizer=s["optimizer"], lr=s["lr"],
                      momentum=s["momentum"], weight_decay=s["weight_decay"], batch_size=s["batch_size"],
                      epochs=s["epochs"], seed=s["seed"], data_dir=data_dir, data=ds, label=label)
        return self._launch(run)

    def _launch(self, run: LiveRun) -> str:
        """Register ``run`` and start it; a run that fails to start is not kept."""
        run_id = self._add(run)
        try:
            run.start()
        except BaseException:
            with self._lock:
                del self.runs[run_id]
            raise
        return run_id

    def race(self, settings: dict, entrants=RACE_DEFAULT) -> dict:
        """Start one run per entrant (its optimizer, lr, momentum; a label) on the same data, model and seed."""
        if not isinstance(entrants, (list, tuple)) or not 2 <= len(entrants) <= MAX_ACTIVE:
            raise ValueError(f"a race needs 2 to {MAX_ACTIVE} entrants. Received: {entrants!r}.")
        common = {k: v for k, v in settings.items() if k not in ("optimizer", "lr", "momentum", "label")}
        ids = []
        try:
            for e in entrants:
                if not isinstance(e, dict):
                    raise ValueError(f"each entrant is an object with optimizer, lr, momentum. Received: {e!r}.")
                extra = sorted(set(e) - {"optimizer", "lr", "momentum", "label"})
                if extra:
                    raise ValueError(f"an entrant sets optimizer, lr, momentum and label only. Received: {extra[0]!r}.")
                ids.append(self.start({**common, **{k: v for k, v in e.items() if k != "label"}},
                                      label=e.get("label") or e.get("optimizer")))
        except BaseException:
            for run_id in ids:      # a race starts whole or not at all
                if self.runs[run_id].status in ("running", "paused"):
                    self.runs[run_id].stop()
            raise
        race_id = f"race{len(self.races) + 1}"
        self.races[race_id] = ids
        return {"race": race_id, "runs": ids}

    def resume(self, name: str) -> str:
        """Continue the unfinished run in the folder ``name`` of the runs folder from its checkpoint."""
        found = {r["name"]: r for r in self.unfinished()}
        if name not in found:
            raise ValueError(f"no unfinished run named {name!r} in the runs folder; the unfinished runs are: "
                             f"{', '.join(found) or 'none'}.")
        run = LiveRun(resume=os.path.join(found[name]["path"], "checkpoint.npz"), label=name)
        return self._launch(run)

    def get(self, run_id: str) -> LiveRun:
        from werkzeug.exceptions import NotFound

        if run_id not in self.runs:
            raise NotFound(f"no run {run_id!r} in this server; GET /api/train/runs lists them.")
        return self.runs[run_id]

    def unfinished(self) -> list[dict]:
        busy = {os.path.abspath(r.folder) for r in self.runs.values() if r.status in ("running", "paused", "ready")}
        return [dict(r, mtime=None) for r in unfinished_runs(self.runs_dir) if os.path.abspath(r["path"]) not in busy]

    def listing(self) -> dict:
        return {"runs": [{"id": i, "label": r.label, "status": r.status, "folder": r.folder, "epoch": r.epoch,
                          "epochs": r.config["epochs"]} for i, r in self.runs.items()],
                "races": self.races, "unfinished": self.unfinished(), "runs_dir": self.runs_dir}


def current_runs() -> TrainRuns:
    """The :class:`TrainRuns` of the app handling this request (made on first use from the app's config:
    ``STRIATE_RUNS_DIR``, ``STRIATE_DATA_DIR``)."""
    from flask import current_app

    ext = current_app.extensions
    if KEY not in ext:
        ext[KEY] = TrainRuns(current_app.config.get("STRIATE_RUNS_DIR", "runs"),
                             current_app.config.get("STRIATE_DATA_DIR"))
    return ext[KEY]
