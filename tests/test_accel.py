"""The optional compiled (numba) max-pooling kernels against the NumPy reference path.

The NumPy path in striate/ops/pooling.py is checked against PyTorch in test_ops_torch.py; here both
paths must agree on values, first-maximum tie routing, -inf padding and gradients, so whichever
path a machine runs is covered.
"""
import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate.backend import compiled as accel

pytest.importorskip("numba")

CASES = [  # (input hw, kernel, stride, padding)
    ((8, 8), 2, None, 0),     # 2x2 stride 2: its own loops (maxpool2x2_*)
    ((9, 7), 2, 2, 0),        # the same, with a row and a column past the last window
    ((7, 9), 2, 2, "same"),   # ... and -inf padding
    ((9, 10), 3, 2, 0),       # overlapping windows, AlexNet style
    ((9, 10), 3, 2, 1),       # -inf padding
    ((7, 7), 3, 1, "same"),
    ((10, 12), (2, 3), (2, 1), 0),
]


def run(x, kernel, stride, padding, gy, compiled: bool):
    old, old_min = accel.set_enabled(compiled), accel.MIN_SIZE
    accel.MIN_SIZE = 0  # these small test inputs would otherwise stay on the NumPy path
    try:
        t = st.Tensor(x, requires_grad=True)
        y = F.max_pool2d(t, kernel, stride, padding)
        y.backward(gy)
        return y.data, t.grad
    finally:
        accel.set_enabled(old)
        accel.MIN_SIZE = old_min


def test_compiled_path_really_runs(monkeypatch):
    old = accel.set_enabled(True)
    try:
        kernels = accel.load()
        assert kernels is not None, "numba is installed, so the kernels must compile"
        calls = []
        for name in ("maxpool2d_forward", "maxpool2x2_forward", "maxpool2d_backward", "maxpool2x2_backward"):
            real = getattr(kernels, name)
            monkeypatch.setattr(kernels, name, staticmethod(lambda *a, name=name, real=real: (calls.append(name), real(*a))[1]))
        x = np.random.default_rng(0).standard_normal((1, 6, 6, 2)).astype(np.float32)
        run(x, 2, 2, 0, np.ones((1, 3, 3, 2), np.float32), True)
        run(x, 3, 3, 0, np.ones((1, 2, 2, 2), np.float32), True)
    finally:
        accel.set_enabled(old)
    assert calls == ["maxpool2x2_forward", "maxpool2x2_backward", "maxpool2d_forward", "maxpool2d_backward"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, kernel, stride, padding", CASES)
def test_compiled_max_pool_matches_numpy_path(hw, kernel, stride, padding, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *hw, 5)).astype(dtype)
    probe = F.max_pool2d(x, kernel, stride, padding)
    gy = rng.standard_normal(probe.shape).astype(dtype)
    y_c, g_c = run(x, kernel, stride, padding, gy, True)
    y_n, g_n = run(x, kernel, stride, padding, gy, False)
    np.testing.assert_array_equal(y_c, y_n)
    # overlapping windows add the same terms in another order: equal up to rounding
    np.testing.assert_allclose(g_c, g_n, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("compiled", [True, False])
def test_ties_route_to_first_maximum_in_both_paths(compiled):
    # all-equal windows: every gradient goes to the window's top-left element
    x = np.ones((1, 4, 4, 2), np.float32)
    gy = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)
    _, g = run(x, 2, 2, 0, gy, compiled)
    expected = np.zeros_like(x)
    expected[:, ::2, ::2, :] = gy
    np.testing.assert_array_equal(g, expected)


def test_compiled_path_is_switchable():
    old = accel.set_enabled(True)
    try:
        assert accel.load() is not None, "numba is installed, so the kernels must compile"
        accel.set_enabled(False)
        assert accel.load() is None
    finally:
        accel.set_enabled(old)


def test_compiled_path_gradcheck():
    rng = np.random.default_rng(1)
    x = st.Tensor(rng.standard_normal((2, 7, 7, 3)), requires_grad=True)
    old = accel.set_enabled(True)
    try:
        assert st.gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1), [x])
    finally:
        accel.set_enabled(old)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1)])  # the 2x2 loop and the general one
def test_nan_propagates_like_the_numpy_path(kernel, stride, padding, split_everything):
    # the compiled loops report a window holding NaN and that part is pooled by NumPy; with one
    # image per part, only the image holding the NaN goes there
    x = np.random.default_rng(7).standard_normal((3, 6, 6, 2)).astype(np.float32)
    x[1, 1, 1, 0] = np.nan
    gy = np.ones(F.max_pool2d(x, kernel, stride, padding).shape, np.float32)
    y_c, g_c = run(x, kernel, stride, padding, gy, True)
    y_n, g_n = run(x, kernel, stride, padding, gy, False)
    assert np.isnan(y_c[1, 0, 0, 0]) and np.isnan(y_n[1, 0, 0, 0])
    np.testing.assert_array_equal(y_c, y_n)  # (NaN where NumPy has NaN)
    np.testing.assert_array_equal(g_c, g_n)


# --------------------------------------------------------------------------- batch normalisation
def bn_run(x, gamma, beta, gy, training, compiled, monkeypatch):
    monkeypatch.setattr(accel, "MIN_SIZE", 0)
    old = accel.set_enabled(compiled)
    try:
        rm, rv = np.zeros(x.shape[-1], x.dtype), np.ones(x.shape[-1], x.dtype)
        rm += 0.3
        rv += 0.5
        t, g, b = (st.Tensor(a, requires_grad=True) for a in (x, gamma, beta))
        y = F.batch_norm(t, g, b, rm, rv, training=training)
        y.backward(gy)
        return y.data, t.grad, g.grad, b.grad, rm, rv
    finally:
        accel.set_enabled(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (9, 7)])
def test_compiled_batch_norm_matches_numpy_path(shape, training, dtype, monkeypatch):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # a mean far from 0
    gamma, beta = rng.standard_normal(shape[-1]).astype(dtype), rng.standard_normal(shape[-1]).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    compiled = bn_run(x, gamma, beta, gy, training, True, monkeypatch)
    numpy = bn_run(x, gamma, beta, gy, training, False, monkeypatch)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for c, n in zip(compiled, numpy):
        np.testing.assert_allclose(c, n, rtol=tol, atol=tol)


def test_compiled_batch_norm_gradcheck(monkeypatch):
    monkeypatch.setattr(accel, "MIN_SIZE", 0)
    rng = np.random.default_rng(3)
    x, gamma, beta = rng.standard_normal((3, 4, 4, 2)) + 2, rng.standard_normal(2), rng.standard_normal(2)
    old = accel.set_enabled(True)
    try:
        assert accel.load() is not None
        assert st.gradcheck(lambda x, g, b: F.batch_norm(x, g, b, None, None, training=True), [x, gamma, beta])
    finally:
        accel.set_enabled(old)


def test_batch_norm_variance_survives_a_large_mean(monkeypatch):
    # sums around a shift: no catastrophic cancellation of E[x^2] - E[x]^2 at mean 1e4, std 1e-2
    monkeypatch.setattr(accel, "MIN_SIZE", 0)
    x = (1e4 + 1e-2 * np.random.default_rng(4).standard_normal((64, 3))).astype(np.float64)
    for compiled in (True, False):
        old = accel.set_enabled(compiled)
        try:
            y = F.batch_norm(st.Tensor(x), np.ones(3), np.zeros(3), None, None, training=True, eps=0.0).data
        finally:
            accel.set_enabled(old)
        np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- conv input gradient
CONV_CASES = [  # (x shape, kernel, out channels, kwargs, block bytes): convs whose gx is a scatter
    ((3, 9, 8, 2), 3, 5, dict(padding=1), None),                 # o > c
    ((3, 11, 10, 3), 3, 4, dict(stride=2, padding=1), None),     # strided
    ((2, 12, 11, 3), 3, 6, dict(stride=(2, 1), dilation=(2, 1), padding=2), None),  # row dilation
    ((3, 10, 9, 1), 5, 4, dict(padding=2), 1),                   # one channel, one row per block
    ((2, 13, 12, 2), (3, 2), 5, dict(stride=3), 1),              # blocks of one row, stride 3
]


@pytest.mark.parametrize("xs, k, o, kwargs, block", CONV_CASES)
def test_compiled_conv_input_gradient_matches_numpy_path(xs, k, o, kwargs, block, monkeypatch):
    from striate.backend import conv
    if block is not None:
        monkeypatch.setattr(conv, "BLOCK_BYTES", block)
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(9)
    x = rng.standard_normal(xs)
    w = rng.standard_normal((kh, kw, xs[3], o))
    grads = []
    for compiled in (True, False):
        old = accel.set_enabled(compiled)
        try:
            t = st.Tensor(x, requires_grad=True)
            y = F.conv2d(t, st.Tensor(w), **kwargs)
            y.backward(np.random.default_rng(10).standard_normal(y.shape))
            grads.append(t.grad)
        finally:
            accel.set_enabled(old)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_compiled_conv_input_gradient_gradcheck():
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((2, 7, 6, 2)), rng.standard_normal((3, 3, 2, 4))
    old = accel.set_enabled(True)
    try:
        assert accel.load() is not None
        assert st.gradcheck(lambda x, w: F.conv2d(x, w, stride=2, padding=1), [x, w])
    finally:
        accel.set_enabled(old)
