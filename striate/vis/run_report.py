"""The report of a run folder (``striate report``, ``striate train --report``): its metrics, log, model
and the test images it was evaluated on, cut as the run cut them, turned into one HTML page."""
from __future__ import annotations

import csv
import json
import os

import numpy as np


def write_run_report(run_dir, out=None, data_dir=None) -> str:
    """Build and write the report of the run in ``run_dir``; returns the path written.

    Args:
        run_dir: a folder written by ``striate train`` or ``striate finetune``.
        out: the page to write (default ``run_dir/report.html``).
        data_dir: the data set's folder, if not the one the run recorded (the test images are optional:
            without them the page says so and leaves those sections out).

    Raises:
        ValueError: not a run folder, an unreadable metrics.json, an ``out`` that is not ``.html``.
        ImportError: matplotlib or Pillow missing (the ``viz`` extra).

    Example::

        >>> st.vis.run_report.write_run_report("runs/digits-digits_cnn")
        'runs/digits-digits_cnn/report.html'
    """
    from ..atomic import atomic_write_text
    from ..training import RunDir
    from ..training.model_file import load_model
    from ..training.run_dir import load_run_dataset
    from .report import build_report

    run = RunDir(run_dir)
    if not os.path.isdir(run.path):
        raise ValueError(f"RUN_DIR {run.path!r} is not a folder (give the --out folder of striate train).")
    out = os.fspath(out) if out is not None else run.report
    if not out.lower().endswith((".html", ".htm")):
        raise ValueError(f"--out must be an .html file. Received: {out!r}.")
    if not os.path.isfile(run.metrics) and not os.path.isfile(run.log):
        raise ValueError(f"{run.path} has neither metrics.json nor log.csv: is it a folder written by striate train?")
    metrics, rows, notes = {}, [], []
    if os.path.isfile(run.metrics):
        try:
            with open(run.metrics) as f:
                metrics = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read {run.metrics}: {' '.join(str(e).split())}") from None
    else:
        notes.append("no metrics.json (the run did not finish): no test metrics or confusion matrix.")
    if os.path.isfile(run.log):
        with open(run.log, newline="") as f:
            rows = list(csv.DictReader(f))
    model = meta = x = y = shown = None
    weights = next((p for p in (run.weights, run.checkpoint) if os.path.isfile(p)), None)
    if weights is None:
        notes.append("no weights.npz or checkpoint.npz: the model sections are left out.")
    else:
        model, meta = load_model(weights)
        meta.setdefault("dataset", metrics.get("dataset"))
        try:
            ds = load_run_dataset(meta, data_dir)
            classes = len(meta.get("class_names") or ds.class_names)
            if ds.num_classes != classes:
                raise ValueError(f"{ds.name} has {ds.num_classes} classes, the model {classes}")
            shown = ds.x_test.astype(np.float32) / np.float32(255) if ds.x_test.dtype == np.uint8 else ds.x_test
            x, y = _standardized(meta, shown), ds.y_test
        except (ValueError, OSError, ImportError) as e:
            notes.append(f"test images not available ({' '.join(str(e).split())}); give --data-dir for the "
                         "worst-classified images, the activations and the gradient flow.")
    page = build_report(os.path.abspath(run.path), metrics, rows, model, meta, x, y, shown, notes)
    atomic_write_text(out, page)
    return out


def _standardized(meta: dict, pixels):
    """``pixels`` in [0, 1] preprocessed as the run recorded (per-channel standardisation), if it did."""
    pre = meta.get("preprocess") or {}
    if pre.get("mean") is None:
        return pixels
    from ..data import transforms
    return transforms.Standardize(mean=np.asarray(pre["mean"]), std=np.asarray(pre["std"]),
                                  eps=pre.get("eps", 1e-7))(pixels)
