"""``mpiexec -n 2 striate train ... --distributed``: one set of files, metrics of the whole test set,
``--resume``, and errors that end every rank."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the multi-process tests need the mpi extra: pip install 'striate[mpi]'")
pytest.importorskip("sklearn", reason="the embedded digits data set ships with scikit-learn")

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed_mpi import run_mpi  # noqa: E402

STRIATE = [sys.executable, "-m", "striate"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_distributed_train_writes_one_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    rc, log, _ = run_mpi(2, STRIATE + ["train", "--epochs", "1", "--out", str(out), "--distributed"], timeout=240)
    assert rc == 0, log[-3000:]
    assert log.count("training digits_cnn") == 1          # rank 0 alone prints
    assert "2 processes x 16" in log                      # the recipe's global batch 32, split
    assert log.count("test accuracy") == 1
    for name in ("weights.npz", "checkpoint.npz", "checkpoint_best.npz", "log.csv", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["epochs"] == 1
    assert metrics["test_accuracy"] > 0.5                 # 1 epoch of the digits CNN (98% after 20)
    # the sharded, reduced test metrics are those of the whole test set: evaluate the saved weights here
    import striate as st
    from striate.cli.common import load_data, load_model_file, standardizer
    from striate.data import DataLoader

    model, meta = load_model_file(out / "weights.npz")
    standardize = standardizer(meta)
    ds = load_data("digits", None)
    whole = st.training.evaluate(model, DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False,
                                                   transform=standardize))
    assert whole["num_samples"] == len(ds.y_test)
    assert metrics["test_accuracy"] == pytest.approx(whole["accuracy"], abs=1e-12)
    assert metrics["test_loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert np.array_equal(metrics["confusion_matrix"], whole["confusion_matrix"])

    rc, log, _ = run_mpi(2, STRIATE + ["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                                       "--out", str(out), "--distributed"], timeout=240)
    assert rc == 0, log[-3000:]
    assert "resumed from" in log and "epoch 2/2" in log and "epoch 1/2" not in log
    rows = _rows(out / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


def test_distributed_train_error_ends_every_rank(tmp_path):
    # 2 processes cannot share a global batch of 33 equally: one clear line, every rank ends
    rc, log, seconds = run_mpi(2, STRIATE + ["train", "--epochs", "1", "--batch-size", "33", "--out",
                                             str(tmp_path / "x"), "--distributed"], timeout=120)
    assert rc == 2, log[-2000:]
    assert "--batch-size (the global batch) must be a multiple of the 2 processes. Received: 33." in log
    assert "Traceback" not in log
