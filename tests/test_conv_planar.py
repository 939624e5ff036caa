"""The direct ("planar") convolution loops of striate.backend.planar against the im2col + GEMM path,
PyTorch's answers (golden fixtures, and torch itself when installed) and finite differences.

striate picks the planar kernels for stride-1 convs with few channels (``conv.planar_wins``); the
``planar`` fixture below makes every eligible conv take them, so the shapes of the whole oracle
suite for conv2d run through them too.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate.backend import compiled as accel, planar as conv, winograd

pytest.importorskip("numba")


# (the Winograd cases have more channels than the planar loops take; test_winograd.py runs them)
CONV_GOLDEN = sorted(p for p in (Path(__file__).parent / "golden").glob("conv2d*.npz") if "winograd" not in p.stem)


@pytest.fixture
def calls(monkeypatch):
    """Counts of the planar kernels' calls in this test: {"forward": n, "wgrad": n}."""
    old = accel.set_enabled(True)
    kernels = accel.load()
    assert kernels is not None, "numba is installed, so the kernels must compile"
    counts = {"forward": 0, "wgrad": 0}

    def spy(name, real):
        def wrapped(*args):
            counts[name] += 1
            return real(*args)
        return staticmethod(wrapped)

    monkeypatch.setattr(kernels, "conv_planar_forward", spy("forward", kernels.conv_planar_forward))
    monkeypatch.setattr(kernels, "conv_planar_wgrad", spy("wgrad", kernels.conv_planar_wgrad))
    yield counts
    accel.set_enabled(old)


@pytest.fixture
def planar(monkeypatch, calls):
    """Every stride-1, ungrouped conv with at most PLANAR_MAX_CHANNELS channels runs planar (none
    as Winograd, which would take the 16-channel 3x3 ones)."""
    monkeypatch.setattr(conv, "PLANAR_MIN_KEPT", 0.0)
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 10**9)
    return calls


def run_conv(x, w, b, gy, compiled=True, x_grad=True, **kwargs):
    """Output and the gradients of x, w, b (None where not asked) of one conv2d call; ``gy`` None
    pulls back ones."""
    old = accel.set_enabled(compiled)
    try:
        xt = st.Tensor(x, requires_grad=x_grad)
        wt, bt = st.Tensor(w, requires_grad=True), None if b is None else st.Tensor(b, requires_grad=True)
        y = F.conv2d(xt, wt, bt, **kwargs)
        y.backward(gy if gy is not None else np.ones(y.shape, y.dtype))
        return [np.asarray(y.data), xt.grad, wt.grad, None if bt is None else bt.grad]
    finally:
        accel.set_enabled(old)


CASES = [  # x shape, w shape, conv2d kwargs
    ((4, 28, 28, 1), (5, 5, 1, 6), dict(padding=2)),                    # LeNet-5's conv1
    ((3, 9, 7, 3), (3, 2, 3, 5), dict(padding="same")),                 # even kernel width, odd o
    ((2, 11, 10, 2), (3, 3, 2, 3), dict(padding=2, dilation=2)),
    ((2, 8, 9, 4), (3, 3, 4, 4), dict(padding=(0, 1))),
    ((5, 6, 6, 16), (3, 3, 16, 16), dict(padding=1)),                   # the most channels it takes
    ((1, 5, 5, 1), (1, 1, 1, 1), {}),
    ((2, 4, 3, 2), (4, 3, 2, 7), {}),                                   # kernel as large as the input
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
def test_planar_matches_the_gemm_path(x_shape, w_shape, kwargs, dtype, planar, assert_close):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[3]).astype(dtype)
    gy = rng.standard_normal(run_conv(x, w, b, None, compiled=False, **kwargs)[0].shape).astype(dtype)
    expected = run_conv(x, w, b, gy, compiled=False, **kwargs)
    assert planar == {"forward": 0, "wgrad": 0}
    got = run_conv(x, w, b, gy, **kwargs)
    # (once per part of the batch) forward and the transposed conv, and the weight gradient
    assert planar["forward"] >= 2 and planar["wgrad"] >= 1
    for what, a, e in zip(["output", "gx", "gw", "gb"], got, expected):
        assert a.dtype == dtype
        assert_close(a, e, what=what)


def test_planar_without_bias_and_without_input_gradient(planar, assert_close):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 12, 12, 1)), rng.standard_normal((5, 5, 1, 6))
    gy = rng.standard_normal((3, 12, 12, 6))
    y, gx, gw, _ = run_conv(x, w, None, gy, x_grad=False, padding="same")
    y0, gx0, gw0, _ = run_conv(x, w, None, gy, compiled=False, x_grad=False, padding="same")
    assert gx is None and gx0 is None  # x does not require grad: no transposed conv
    assert planar["forward"] >= 1 and planar["wgrad"] == planar["forward"]  # once per part each
    assert_close(y, y0, what="output")
    assert_close(gw, gw0, what="gw")


def test_planar_forward_with_a_scattered_input_gradient(calls, assert_close):
    # LeNet-5's conv1 with an input gradient: forward and gw run planar, but its transposed conv
    # (6 -> 1 channels, mostly padding) does not, so gx is scattered (GEMM + col2im)
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((4, 28, 28, 1)), rng.standard_normal((5, 5, 1, 6)), rng.standard_normal(6)
    gy = rng.standard_normal((4, 28, 28, 6))
    got = run_conv(x, w, b, gy, padding=2)
    assert calls["forward"] >= 1 and calls["wgrad"] == calls["forward"]  # once per part each
    for what, a, e in zip(["output", "gx", "gw", "gb"], got, run_conv(x, w, b, gy, compiled=False, padding=2)):
        assert_close(a, e, what=what)


def test_planar_split_into_parts_matches_one_part(planar, whole_and_split, assert_close):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((7, 10, 9, 2)), rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4)
    gy = rng.standard_normal((7, 10, 9, 4))
    whole, split = whole_and_split(lambda: run_conv(x, w, b, gy, padding=1))
    for what, a, e in zip(["output", "gx", "gw", "gb"], split, whole):
        assert_close(a, e, what=what)


def test_planar_takes_non_contiguous_inputs(planar, assert_close):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 3, 8)).transpose(0, 1, 3, 2)  # (2, 9, 8, 3), not C-contiguous
    w = rng.standard_normal((3, 3, 3, 4))
    gy = rng.standard_normal((2, 9, 8, 4))[:, :, ::-1]  # a reversed view
    for a, e in zip(run_conv(x, w, None, gy, padding=1), run_conv(x, w, None, gy, compiled=False, padding=1)):
        if e is not None:
            assert_close(a, e)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding="same", dilation=2), dict(padding=(2, 0))])
def test_planar_gradcheck(kwargs, planar):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 7, 6, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(3)
    assert st.gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kwargs), [x, w, b])
    assert planar["forward"] > 0 and planar["wgrad"] > 0


@pytest.mark.parametrize("path", CONV_GOLDEN, ids=[f.stem for f in CONV_GOLDEN])
def test_golden_conv_cases_through_planar(path, planar, check_golden):
    check_golden(path)  # PyTorch's recorded outputs and gradients
    kwargs = json.loads(str(np.load(path)["meta"]))["kwargs"]
    if kwargs.get("stride", 1) in (1, [1, 1]) and kwargs.get("groups", 1) == 1:
        assert planar["forward"] > 0, "a stride-1 ungrouped conv must have run planar"
    else:
        assert planar["forward"] == 0


@pytest.mark.parametrize("padding", [0, 1, (2, 1), "same"])  # within the kernel's reach
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_planar_matches_torch(padding, dilation, dtype, planar, rng, assert_close):
    pytest.importorskip("torch")
    from test_ops_torch import test_conv2d_matches_torch

    test_conv2d_matches_torch(1, padding, dilation, "1", True, dtype, rng, assert_close)
    assert planar["forward"] >= 2 and planar["wgrad"] >= 1


def test_planar_wins_picks_the_measured_winners():
    lenet_conv1 = ((5, 5, 1, 6), (2, 2, 2, 2), (28, 28), (28, 28), (1, 1))
    lenet_conv2 = ((5, 5, 6, 16), (0, 0, 0, 0), (14, 14), (10, 10), (1, 1))
    lenet_conv2_transposed = ((5, 5, 16, 6), (4, 4, 4, 4), (10, 10), (14, 14), (1, 1))
    resnet_stage1 = ((3, 3, 16, 16), (1, 1, 1, 1), (32, 32), (32, 32), (1, 1))
    resnet_stage2 = ((3, 3, 32, 32), (1, 1, 1, 1), (16, 16), (16, 16), (1, 1))
    assert conv.planar_wins(*lenet_conv1) and conv.planar_wins(*resnet_stage1)
    assert not conv.planar_wins(*lenet_conv2)             # 62% of its lanes kept
    assert not conv.planar_wins(*lenet_conv2_transposed)  # mostly padding zeros
    assert not conv.planar_wins(*resnet_stage2)           # too many channels


def test_planar_is_not_used_where_it_cannot_run(planar):
    calls = planar
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 16, 16, 1)), rng.standard_normal((3, 3, 1, 2))
    F.conv2d(x, w, stride=2, padding=1)           # stride 2
    F.conv2d(np.tile(x, 4), np.tile(w, (1, 1, 2, 2)), padding=1, groups=2)  # grouped
    F.conv2d(x, w, padding=3)                     # padding beyond the kernel: no transposed conv
    assert calls["forward"] == 0
    F.conv2d(x, w, padding=1)
    assert calls["forward"] == 1


def test_planar_weight_layout_round_trips():
    w = np.random.default_rng(6).standard_normal((3, 2, 5, 3))
    wt = conv.planar_weights(w)
    assert wt.shape == (32, 4)                       # 30 taps -> 32, 3 filters -> 4
    assert not wt[30:].any() and not wt[:, 3].any()  # the padding is zeros
    np.testing.assert_array_equal(conv.planar_weight_grad(wt, w.shape), w)
    offs = conv.planar_offsets(w.shape, 7, 9, (1, 2))
    # tap (ch, i, j) reads ch*hp*wp + i*dh*wp + j*dw of the flat padded image
    assert offs[0] == 0 and offs[1] == 2 and offs[2] == 9 and offs[6] == 7 * 9 and not offs[30:].any()
