"""Checkpoints: resume == uninterrupted bit for bit; weights files; clear errors on bad files."""
import json
import os

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.data import DataLoader, transforms as T
from striate.training import (CheckpointError, EarlyStopping, ModelCheckpoint, fit, load_checkpoint, load_weights,
                              save_checkpoint, save_weights)
from test_training import Batches, stripes


def dropout_cnn(seed):
    """Dropout from the default generator and from a layer-owned generator, BN running statistics."""
    return nn.Sequential(
        nn.Conv2D(4, 3, padding="same", rng=seed), nn.BatchNorm(), nn.ReLU(), nn.Dropout(0.3), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dropout(0.2, rng=np.random.default_rng(seed + 100)), nn.Dense(3, rng=seed),
    ).build((6, 6, 1))


OPTIMIZERS = {
    "sgd": lambda p: st.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: st.optim.Adam(p, lr=0.01),
}


def _run(path, epochs, optimizer, resume=None, seed=0, loader="data"):
    x, y = stripes(64)
    xv, yv = stripes(32, seed=1)
    st.manual_seed(seed)
    model = dropout_cnn(seed)
    opt = OPTIMIZERS[optimizer](model.parameters())
    sched = st.optim.LinearWarmup(st.optim.CosineAnnealingLR(opt, t_max=3), warmup_epochs=1)
    if loader == "data":   # striate's DataLoader with augmentation: its state_dict() is checkpointed
        train = DataLoader(x, y, batch_size=16, shuffle=True, rng=seed + 1,
                           transform=T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip()]))
    else:                  # any iterable with a Generator in .rng
        train = Batches(x, y, batch_size=16, rng=seed + 1)
    callbacks = [EarlyStopping(patience=10, restore_best_weights=True), ModelCheckpoint(str(path))]
    history = fit(model, train, Batches(xv, yv, shuffle=False), epochs=epochs, optimizer=opt, schedule=sched,
                  callbacks=callbacks, verbose=0, resume=resume)
    return model, opt, history


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loader", ["data", "batches"])
def test_resume_equals_uninterrupted_bit_for_bit(tmp_path, optimizer, loader):
    straight, opt_a, hist_a = _run(tmp_path / "a.npz", 4, optimizer, loader=loader)
    _run(tmp_path / "b.npz", 2, optimizer, loader=loader)
    assert load_checkpoint(tmp_path / "b.npz").epoch == 2
    # a new process would start from other weights and another random state: both come from the file
    resumed, opt_b, hist_b = _run(tmp_path / "b.npz", 4, optimizer, resume=tmp_path / "b.npz", seed=7,
                                  loader=loader)
    a, b = straight.state_dict(), resumed.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert hist_a.history["loss"] == hist_b.history["loss"]
    assert hist_a.history["lr"] == hist_b.history["lr"]
    assert hist_b.epoch == [0, 1, 2, 3]
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    for i in sa["state"]:
        for k, v in sa["state"][i].items():
            assert np.array_equal(v, sb["state"][i][k])
    assert load_checkpoint(tmp_path / "b.npz").epoch == 4


def test_without_restoring_the_random_state_the_runs_differ(tmp_path, monkeypatch):
    # the guard of the test above: dropout, shuffling and augmentation really do depend on the
    # saved generators, so a resume that skipped them would not match
    import striate.training.checkpoint as ckpt_module
    straight, _, _ = _run(tmp_path / "a.npz", 3, "sgd")
    _run(tmp_path / "b.npz", 2, "sgd")
    monkeypatch.setattr(ckpt_module, "_restore_generators", lambda state, model, loader: None)
    resumed, _, _ = _run(tmp_path / "b.npz", 3, "sgd", resume=tmp_path / "b.npz", seed=7)
    assert not np.array_equal(straight.state_dict()["0.w"], resumed.state_dict()["0.w"])


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    model, _, _ = _run(tmp_path / "a.npz", 2, "sgd")
    again, _, hist = _run(tmp_path / "a.npz", 2, "sgd", resume=tmp_path / "a.npz", seed=3)
    assert hist.epoch == [0, 1]
    for k, v in model.state_dict().items():
        assert np.array_equal(v, again.state_dict()[k])


def test_weights_file_round_trip_with_meta(tmp_path):
    model = dropout_cnn(0)
    meta = {"model": {"name": "dropout_cnn", "args": {"num_classes": 3}}, "class_names": ["a", "b", "c"],
            "mean": np.array([0.25], np.float64), "input_shape": (6, 6, 1)}
    save_weights(tmp_path / "w.npz", model, meta=meta)
    fresh = dropout_cnn(5)
    got = load_weights(tmp_path / "w.npz", fresh)
    for k, v in model.state_dict().items():
        assert np.array_equal(v, fresh.state_dict()[k]) and fresh.state_dict()[k].dtype == v.dtype
    assert got["model"] == meta["model"] and got["class_names"] == ["a", "b", "c"]
    assert got["input_shape"] == [6, 6, 1]
    np.testing.assert_array_equal(got["mean"], [0.25])
    # the file is plain npz + JSON: readable without pickle
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        header = json.loads(str(z["__striate__"]))
    assert header["format"] == "striate" and header["kind"] == "weights"


def test_a_weights_file_cannot_resume(tmp_path):
    model = dropout_cnn(0)
    save_weights(tmp_path / "w.npz", model)
    with pytest.raises(CheckpointError, match="is a weights file, not a checkpoint"):
        _run(tmp_path / "x.npz", 2, "sgd", resume=tmp_path / "w.npz")


def test_checkpoint_of_another_model_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.npz", nn.Dense(3, in_features=2))
    with pytest.raises(KeyError, match="does not match the model"):
        load_weights(tmp_path / "c.npz", dropout_cnn(0))


# --------------------------------------------------------------------------- bad files
@pytest.fixture
def good_checkpoint(tmp_path):
    model = dropout_cnn(0)
    opt = st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(tmp_path / "good.npz", model, opt, epoch=3)
    return tmp_path / "good.npz"


def test_truncated_checkpoint(good_checkpoint, tmp_path):
    data = good_checkpoint.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="is truncated or corrupt"):
            load_checkpoint(bad)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty: the checkpoint is truncated or corrupt"):
        load_checkpoint(empty)


def test_corrupted_bytes_are_detected(good_checkpoint, tmp_path):
    data = bytearray(good_checkpoint.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside an array's bytes: the zip CRC catches it
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(bad)


def test_foreign_files_are_not_checkpoints(tmp_path):
    np.savez(tmp_path / "random.npz", a=np.zeros(3), b=np.ones(2))
    with pytest.raises(CheckpointError, match=r"is not a striate checkpoint: .*without striate's '__striate__' "
                                              r"record \(its arrays: a, b\)"):
        load_checkpoint(tmp_path / "random.npz")
    (tmp_path / "notes.txt").write_text("epoch 3: loss 0.1\n")
    with pytest.raises(CheckpointError, match=r"is not a striate checkpoint \(not an .npz archive\)"):
        load_checkpoint(tmp_path / "notes.txt")
    np.savez(tmp_path / "other.npz", __striate__=np.array(json.dumps({"format": "keras"})))
    with pytest.raises(CheckpointError, match="not a striate checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    np.savez(tmp_path / "future.npz", __striate__=np.array(json.dumps({"format": "striate", "version": 99})))
    with pytest.raises(CheckpointError, match="newer striate.*Upgrade"):
        load_checkpoint(tmp_path / "future.npz")
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz")
    # fit(resume=...) reports the same
    with pytest.raises(CheckpointError, match="not a striate checkpoint"):
        _run(tmp_path / "x.npz", 1, "sgd", resume=tmp_path / "notes.txt")


def test_never_unpickles(tmp_path):
    # an object array would need pickle: np.load(allow_pickle=False) refuses, reported as corrupt
    np.savez(tmp_path / "evil.npz", __striate__=np.array(json.dumps({"format": "striate"})),
             payload=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.npz")
    assert os.path.exists(tmp_path / "evil.npz")
