"""DataLoader: coverage per epoch, batch sizes, dtype/scale, determinism, RNG save/restore, prefetch."""
import pickle

import numpy as np
import pytest

from striate.data import DataLoader, transforms as T


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 4, 4, 1)).astype(np.uint8)
    x[:, 0, 0, 0] = np.arange(n)  # pixel (0, 0) identifies the sample
    return x, np.arange(n) % 7


def _ids(xb):
    return np.rint(xb[:, 0, 0, 0] * 255).astype(int)


@pytest.mark.parametrize("prefetch", [False, True])
def test_each_sample_once_per_epoch_and_labels_follow(prefetch):
    x, y = _data()
    loader = DataLoader(x, y, batch_size=8, shuffle=True, rng=0, prefetch=prefetch)
    assert len(loader) == 7
    orders = []
    for _ in range(2):
        seen = []
        sizes = []
        for xb, yb in loader:
            ids = _ids(xb)
            np.testing.assert_array_equal(yb, y[ids])
            assert yb.dtype == np.int64
            seen += ids.tolist()
            sizes.append(len(xb))
        assert sorted(seen) == list(range(50))
        assert sizes == [8] * 6 + [2]  # the last partial batch is kept
        orders.append(seen)
    assert orders[0] != orders[1] and orders[0] != list(range(50))  # reshuffled every epoch


def test_drop_last_and_no_shuffle():
    x, y = _data()
    loader = DataLoader(x, y, batch_size=8, shuffle=False, drop_last=True)
    assert len(loader) == 6
    batches = list(loader)
    assert [len(xb) for xb, _ in batches] == [8] * 6
    assert np.concatenate([_ids(xb) for xb, _ in batches]).tolist() == list(range(48))


def test_float32_scaled_to_unit_interval_and_float_input_kept():
    x, y = _data()
    xb, _ = next(iter(DataLoader(x, y, batch_size=50, shuffle=False)))
    assert xb.dtype == np.float32 and xb.min() >= 0 and xb.max() <= 1
    np.testing.assert_allclose(xb, x / 255.0, rtol=1e-6)
    xf = np.random.default_rng(1).normal(0, 3, (10, 2, 2, 3))
    xb, yb = next(iter(DataLoader(xf, None, batch_size=10, shuffle=False)))
    assert yb is None and xb.dtype == np.float32
    np.testing.assert_allclose(xb, xf, rtol=1e-6)
    xb, _ = next(iter(DataLoader(xf, None, batch_size=10, shuffle=False, dtype=np.float64)))
    assert xb.dtype == np.float64


def test_same_seed_same_batches_with_augmentation():
    x, y = _data()
    tf = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip()])
    a = [(xb.copy(), yb) for xb, yb in DataLoader(x, y, 16, transform=tf, rng=5)]
    b = [(xb.copy(), yb) for xb, yb in DataLoader(x, y, 16, transform=tf, rng=np.random.default_rng(5),
                                                  prefetch=True)]
    c = [(xb.copy(), yb) for xb, yb in DataLoader(x, y, 16, transform=tf, rng=6)]
    for (xa, ya), (xb_, yb_) in zip(a, b):
        np.testing.assert_array_equal(xa, xb_)
        np.testing.assert_array_equal(ya, yb_)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_rng_state_restore_reproduces_next_epoch():
    x, y = _data()
    tf = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip()])
    loader = DataLoader(x, y, 16, transform=tf, rng=11)
    list(loader)  # epoch 1
    for i, _ in enumerate(loader):  # part of epoch 2, then "checkpoint"
        if i == 1:
            state = pickle.loads(pickle.dumps(loader.state_dict()))
            break
    epoch3 = [xb.copy() for xb, _ in loader]
    fresh = DataLoader(x, y, 16, transform=tf, rng=999)
    fresh.load_state_dict(state)
    replay = [xb.copy() for xb, _ in fresh]
    assert len(replay) == len(epoch3)
    for a, b in zip(epoch3, replay):
        np.testing.assert_array_equal(a, b)
    # loader.rng is the generator itself: its state works too
    loader2 = DataLoader(x, y, 16, transform=tf, rng=12)
    saved = loader2.rng.bit_generator.state
    first = [xb.copy() for xb, _ in loader2]
    loader2.rng.bit_generator.state = saved
    np.testing.assert_array_equal(first[0], next(iter(loader2))[0])


def test_transform_draws_do_not_depend_on_batch_consumption_by_others():
    # Draws from the shared rng between epochs (e.g. dropout) must not leak into the current epoch.
    x, y = _data()
    tf = T.RandomHorizontalFlip()
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    l1, l2 = DataLoader(x, y, 10, transform=tf, rng=g1), DataLoader(x, y, 10, transform=tf, rng=g2)
    out1, out2 = [], []
    for (xa, _), (xb, _) in zip(l1, l2):
        g2.random(5)  # someone else uses l2's generator mid-epoch
        out1.append(xa)
        out2.append(xb)
    for a, b in zip(out1, out2):
        np.testing.assert_array_equal(a, b)


def test_prefetch_early_break_and_error_propagation():
    x, y = _data()
    loader = DataLoader(x, y, 4, prefetch=True, rng=0)
    for i, _ in enumerate(loader):
        if i == 2:
            break  # the producer thread must stop, not hang
    assert len(list(loader)) == len(loader)

    def boom(xb, rng):
        raise RuntimeError("bad transform")

    with pytest.raises(RuntimeError, match="bad transform"):
        list(DataLoader(x, y, 4, transform=boom, prefetch=True))


def test_argument_validation():
    x, y = _data()
    with pytest.raises(ValueError, match="batch_size must be a positive int. Received: batch_size=0"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="one label per sample of x \\(50\\)"):
        DataLoader(x, y[:10])
    with pytest.raises(TypeError, match="uint8 images"):
        DataLoader(x.astype(np.int32), y)
    with pytest.raises(TypeError, match="integer class labels"):
        DataLoader(x, y.astype(float))
    with pytest.raises(TypeError, match="transform must be a callable"):
        DataLoader(x, y, transform=3)
