"""``striate report RUN_DIR``: one self-contained HTML page about a run of ``striate train``."""
from __future__ import annotations

import argparse
import csv
import json
import os

import numpy as np

from .main import CommandError

EPILOG = """\
examples:
  striate report runs/digits-digits_cnn                 # -> runs/digits-digits_cnn/report.html
  striate report runs/mnist --data-dir PATH --out mnist.html

The page embeds its pictures (PNG) and needs neither network nor JavaScript: loss/accuracy curves,
the confusion matrix, the worst-classified test images with their top-3, the first-layer filters
and the activations of one test image.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="an HTML report of a training run",
        description="Write one self-contained HTML page about a run folder written by `striate train`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of striate train")
    p.add_argument("--out", metavar="FILE.html", help="where to write the page (RUN_DIR/report.html)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data set's files (for the test images)")
    p.set_defaults(command="report")
    return p


def write_report(run_dir: str, out: str | None = None, data_dir: str | None = None) -> str:
    """Build and write the report of ``run_dir``; returns the path written. Also used by ``train --report``."""
    from ..atomic import atomic_write_text
    from ..vis.report import build_report
    from .common import load_data, load_model_file, standardizer

    if not os.path.isdir(run_dir):
        raise CommandError(f"RUN_DIR {run_dir!r} is not a folder (give the --out folder of striate train).")
    out = out or os.path.join(run_dir, "report.html")
    if not out.lower().endswith((".html", ".htm")):
        raise CommandError(f"--out must be an .html file. Received: {out!r}.")
    metrics_path, log_path = os.path.join(run_dir, "metrics.json"), os.path.join(run_dir, "log.csv")
    if not os.path.isfile(metrics_path) and not os.path.isfile(log_path):
        raise CommandError(f"{run_dir} has neither metrics.json nor log.csv: is it a folder written by striate train?")
    metrics, rows, notes = {}, [], []
    if os.path.isfile(metrics_path):
        try:
            with open(metrics_path) as f:
                metrics = json.load(f)
        except (OSError, ValueError) as e:
            raise CommandError(f"cannot read {metrics_path}: {e}") from None
    else:
        notes.append("no metrics.json (the run did not finish): no test metrics or confusion matrix.")
    if os.path.isfile(log_path):
        with open(log_path, newline="") as f:
            rows = list(csv.DictReader(f))
    model = meta = x = y = shown = None
    weights = next((os.path.join(run_dir, n) for n in ("weights.npz", "checkpoint.npz")
                    if os.path.isfile(os.path.join(run_dir, n))), None)
    if weights is None:
        notes.append("no weights.npz or checkpoint.npz: the model sections are left out.")
    else:
        model, meta = load_model_file(weights)
        dataset = meta.get("dataset") or metrics.get("dataset")
        try:
            ds = load_data(dataset, data_dir)
            shown = ds.x_test.astype(np.float32) / np.float32(255) if ds.x_test.dtype == np.uint8 else ds.x_test
            standardize = standardizer(meta)
            x = standardize(shown) if standardize is not None else shown
            y = ds.y_test
        except CommandError as e:
            notes.append(f"test images not available ({e}); give --data-dir for the worst-classified images "
                         "and the activations.")
    try:
        page = build_report(os.path.abspath(run_dir), metrics, rows, model, meta, x, y, shown, notes)
    except ImportError as e:
        raise CommandError(str(e)) from None
    atomic_write_text(out, page)
    return out


def run(args) -> int:
    out = write_report(args.run_dir, args.out, args.data_dir)
    print(f"wrote {out}")
    return 0
