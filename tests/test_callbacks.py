"""Callbacks: EarlyStopping's rule on scripted metrics, ModelCheckpoint (best/last, atomic), History, CSVLogger."""
import csv
import os
from types import SimpleNamespace

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.training import CSVLogger, EarlyStopping, History, ModelCheckpoint, fit, load_checkpoint


def _model():
    return nn.Dense(2, in_features=3, rng=0)


def _fake_run(model=None, names=("loss", "acc", "val_loss", "val_acc", "lr", "seconds")):
    model = model or _model()
    return SimpleNamespace(model=model, optimizer=st.optim.SGD(model.parameters(), lr=0.1), schedule=None,
                           history=History(), callbacks=[], train=None, stop_training=False, metric_names=names)


def _drive(callback, values, monitor="val_loss", run=None, on_epoch=None):
    """Feed scripted metric values epoch by epoch until the callback stops the run; return epochs run."""
    run = run or _fake_run()
    callback.on_train_begin(run)
    epochs = 0
    for epoch, v in enumerate(values):
        if on_epoch:
            on_epoch(epoch, run)
        logs = {monitor: v, "loss": v}
        callback.on_epoch_end(epoch, logs)
        callback.on_checkpoint(epoch, logs)
        epochs += 1
        if run.stop_training:
            break
    callback.on_train_end()
    return epochs, run


def test_early_stopping_patience_by_hand():
    stop = EarlyStopping(patience=2)
    # improves at epochs 0 and 1; epochs 2 and 3 do not: wait reaches 2 at epoch 3 -> stop there
    epochs, _ = _drive(stop, [1.0, 0.8, 0.85, 0.9, 0.7, 0.6])
    assert epochs == 4 and stop.stopped_epoch == 3 and stop.best == 0.8 and stop.best_epoch == 1


def test_early_stopping_min_delta_and_max_mode():
    stop = EarlyStopping(monitor="val_acc", patience=1, min_delta=0.05)
    assert stop.mode == "max"
    # +0.01 gains are below min_delta: the second epoch is already a stall -> stop at epoch 1
    epochs, _ = _drive(stop, [0.5, 0.51, 0.52], monitor="val_acc")
    assert epochs == 2 and stop.best == 0.5


def test_early_stopping_patience_zero_never_stops_on_the_first_epoch():
    stop = EarlyStopping(patience=0)
    epochs, _ = _drive(stop, [1.0, 1.0, 1.0])
    assert epochs == 2  # epoch 0 improves on inf; epoch 1 does not -> stop


def test_early_stopping_restores_best_weights():
    model = _model()

    def mark(epoch, run):  # the weights of epoch e are all e
        model.w.data[...] = epoch

    stop = EarlyStopping(patience=2, restore_best_weights=True)
    _drive(stop, [3.0, 1.0, 2.0, 2.5], run=_fake_run(model), on_epoch=mark)
    assert np.all(model.w.data == 1.0)  # epoch 1 had the best val_loss
    # without restore_best_weights the last weights stay
    model2 = _model()
    _drive(EarlyStopping(patience=2), [3.0, 1.0, 2.0, 2.5], run=_fake_run(model2),
           on_epoch=lambda e, r: model2.w.data.__setitem__(Ellipsis, e))
    assert np.all(model2.w.data == 3.0)


def test_early_stopping_state_round_trip():
    a = EarlyStopping(patience=3, restore_best_weights=True)
    _drive(a, [1.0, 0.5, 0.7])
    b = EarlyStopping(patience=3, restore_best_weights=True)
    b.load_state_dict(a.state_dict())
    assert (b.wait, b.best, b.best_epoch) == (1, 0.5, 1)
    assert np.array_equal(b.best_weights["w"], a.best_weights["w"])


def test_early_stopping_in_fit():
    from test_training import Batches, small_cnn, stripes
    x, y = stripes(40)
    model = small_cnn()
    stop = EarlyStopping(monitor="loss", patience=2, min_delta=100.0)  # nothing counts as progress
    h = fit(model, Batches(x, y), epochs=10, optimizer=st.optim.SGD(model.parameters(), lr=0.1),
            callbacks=[stop], verbose=0)
    assert len(h.epoch) == 3


@pytest.mark.parametrize("make,match", [
    (lambda: EarlyStopping(patience=-1), r"EarlyStopping: patience must be an int >= 0. Received: patience=-1"),
    (lambda: EarlyStopping(patience=1.5), r"patience must be an int"),
    (lambda: EarlyStopping(mode="up"), r"mode must be 'auto', 'min' or 'max'. Received: mode='up'"),
    (lambda: EarlyStopping(min_delta=-0.1), r"min_delta must be a number >= 0"),
    (lambda: EarlyStopping(monitor=""), r"monitor must be a metric name"),
    (lambda: ModelCheckpoint(None), r"ModelCheckpoint: filepath must be a path"),
    (lambda: ModelCheckpoint("x.npz", mode="best"), r"mode must be 'auto', 'min' or 'max'"),
    (lambda: ModelCheckpoint("x.npz", meta=[1]), r"meta must be a dict"),
    (lambda: CSVLogger(""), r"CSVLogger: filename must be a path"),
])
def test_callbacks_validate_at_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_missing_monitored_metric_lists_available_ones():
    from test_training import Batches, small_cnn, stripes
    x, y = stripes(20)
    model = small_cnn()
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    msg = r"EarlyStopping: the monitored metric 'val_acc' is not available. Available metrics: loss, acc, lr, seconds"
    with pytest.raises(ValueError, match=msg):
        fit(model, Batches(x, y), epochs=1, optimizer=opt, callbacks=[EarlyStopping(monitor="val_acc")])
    with pytest.raises(ValueError, match=r"ModelCheckpoint: the monitored metric 'val_los' is not available.*val_loss"):
        fit(model, Batches(x, y), Batches(x, y), epochs=1, optimizer=opt,
            callbacks=[ModelCheckpoint("x.npz", monitor="val_los", save_best_only=True)])


# --------------------------------------------------------------------------- ModelCheckpoint
def test_checkpoint_best_only_writes_on_improvement(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "ck-{epoch}.npz"), monitor="val_loss", save_best_only=True)
    _drive(cb, [0.5, 0.4, 0.6, 0.3])
    assert sorted(os.listdir(tmp_path)) == ["ck-1.npz", "ck-2.npz", "ck-4.npz"]
    assert load_checkpoint(tmp_path / "ck-4.npz").epoch == 4


def test_checkpoint_last_writes_every_epoch_and_weights_only(tmp_path):
    last = ModelCheckpoint(str(tmp_path / "last.npz"))
    _drive(last, [0.5, 0.6])
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt.kind == "checkpoint" and ckpt.epoch == 2 and ckpt.state["optimizer"] is not None
    w = ModelCheckpoint(str(tmp_path / "w.npz"), save_weights_only=True, meta={"model": {"name": "dense"}})
    run = _fake_run()
    _drive(w, [0.5], run=run)
    ckpt = load_checkpoint(tmp_path / "w.npz")
    assert ckpt.kind == "weights" and ckpt.meta == {"model": {"name": "dense"}}
    np.testing.assert_array_equal(ckpt.model_state["w"], run.model.w.data)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    cb = ModelCheckpoint(str(path))
    _drive(cb, [0.5])
    replaced = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append((os.path.dirname(os.path.abspath(src)), os.path.abspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy_replace)
    _drive(ModelCheckpoint(str(path)), [0.4])
    # the new file was written in the destination's folder and moved into place
    assert replaced == [(str(tmp_path), str(path))]

    def crash(f, **arrays):  # a save that dies half-way through writing
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        _drive(ModelCheckpoint(str(path)), [0.3])
    assert path.read_bytes() == before            # the previous checkpoint is intact
    assert load_checkpoint(path).epoch == 1
    assert os.listdir(tmp_path) == ["last.npz"]  # and no temporary file is left behind


# --------------------------------------------------------------------------- History, CSVLogger
def test_history_and_csv_log(tmp_path):
    from test_training import Batches, small_cnn, stripes
    x, y = stripes(40)
    model = small_cnn()
    log = tmp_path / "log.csv"
    h = fit(model, Batches(x, y), Batches(x, y, shuffle=False), epochs=2,
            optimizer=st.optim.SGD(model.parameters(), lr=0.1), callbacks=[CSVLogger(str(log))], verbose=0)
    assert isinstance(h, History) and h.rows()[1]["epoch"] == 2
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds"]
    for r, loss, acc in zip(rows, h.history["loss"], h.history["val_acc"]):
        assert float(r["loss"]) == pytest.approx(loss, rel=1e-5)
        assert float(r["val_acc"]) == pytest.approx(acc, rel=1e-5)
