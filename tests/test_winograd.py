"""Winograd F(4x4, 3x3) (striate.backend.winograd) against the im2col reference, PyTorch's answers
(golden fixtures, and torch itself when installed) and finite differences.

striate computes stride-1 3x3 convs with 16+ channels in and out this way when numba is present:
forward, the input gradient (the transposed conv, itself such a conv) and the weight gradient.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate.backend import compiled, reference_only, winograd as W
from striate.ops.epilogue import Epilogue

pytest.importorskip("numba")

WINOGRAD_GOLDEN = sorted((Path(__file__).parent / "golden").glob("conv2d_winograd*.npz"))


@pytest.fixture
def calls(monkeypatch):
    """Counts of the compiled Winograd transforms' calls in this test, whose small batches take
    Winograd too (by default a call needs MIN_TILES tiles)."""
    monkeypatch.setattr(W, "MIN_TILES", 1)
    old = compiled.set_enabled(True)
    kernels = compiled.load()
    assert kernels is not None, "numba is installed, so the kernels must compile"
    counts = {"input": 0, "grad": 0, "output": 0}

    def spy(name, real):
        def wrapped(*args):
            counts[name] += 1
            return real(*args)
        return staticmethod(wrapped)

    for name, attr in (("input", "winograd_input_tiles"), ("grad", "winograd_grad_tiles"),
                       ("output", "winograd_output_tiles")):
        monkeypatch.setattr(kernels, attr, spy(name, getattr(kernels, attr)))
    yield counts
    compiled.set_enabled(old)


def run_conv(x, w, b, gy, x_grad=True, **kwargs):
    """[y, gx, gw, gb] of one conv2d call (None where not asked)."""
    xt = st.Tensor(x, requires_grad=x_grad)
    wt, bt = st.Tensor(w, requires_grad=True), None if b is None else st.Tensor(b, requires_grad=True)
    y = F.conv2d(xt, wt, bt, **kwargs)
    y.backward(gy)
    return [np.asarray(y.data), xt.grad, wt.grad, None if bt is None else bt.grad]


def reference(x, w, b, gy, **kwargs):
    with reference_only():
        return run_conv(x, w, b, gy, **kwargs)


def data(x_shape, w_shape, dtype, seed=0, bias=True, **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal(w_shape) / np.sqrt(9 * w_shape[2])).astype(dtype)
    b = rng.standard_normal(w_shape[3]).astype(dtype) if bias else None
    with reference_only():
        y_shape = F.conv2d(st.Tensor(x), st.Tensor(w), padding=kwargs.get("padding", 0)).shape
    return x, w, b, rng.standard_normal(y_shape).astype(dtype)


# ----------------------------------------------------------------------------- the algebra
def test_the_matrices_compute_a_1d_correlation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, g = rng.standard_normal(W.ALPHA), rng.standard_normal(W.R)
        y = W.AT @ ((W.G @ g) * (W.BT @ d))
        direct = np.array([d[i:i + 3] @ g for i in range(W.M)])
        np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-12)


def test_the_weight_gradient_identity_in_1d():
    # y = A^T[(G g) * (B^T d)] is linear in g: dL/dg = G^T [(A gy) * (B^T d)]
    rng = np.random.default_rng(1)
    d, gy = rng.standard_normal(W.ALPHA), rng.standard_normal(W.M)
    got = W.G.T @ ((W.AT.T @ gy) * (W.BT @ d))
    direct = np.array([gy @ d[k:k + W.M] for k in range(W.R)])
    np.testing.assert_allclose(got, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, top, left", [((2, 9, 7, 16), 1, 1), ((1, 4, 4, 24), 0, 0),
                                              ((3, 5, 11, 16), 2, 0), ((1, 13, 6, 32), 1, 2)])
def test_compiled_transforms_match_numpy(shape, top, left):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    n, h, w, c = shape
    oh, ow = h + 2 * top - 2, w + 2 * left - 2
    grid = W.tiles_of((oh, ow))
    t = n * grid[0] * grid[1]
    gy = rng.standard_normal((n, oh, ow, c)).astype(np.float32)
    m = rng.standard_normal((W.ALPHA, W.ALPHA, t, c)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    results = []
    for on in (True, False):
        old = compiled.set_enabled(on)
        try:
            v = W.transform_tiles(x, top, left, W.BT, grid, np.empty((W.ALPHA, W.ALPHA, t, c), np.float32))
            yt = W.transform_tiles(gy, 0, 0, W.AT.T, grid, np.empty((W.ALPHA, W.ALPHA, t, c), np.float32))
            y = W.untile(m, Epilogue(None, bias), np.empty((n, oh, ow, c), np.float32))
            results.append((v, yt, y))
        finally:
            compiled.set_enabled(old)
    for what, a, e in zip(("input tiles", "gradient tiles", "output"), *results):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * float(np.abs(e).max()), err_msg=what)


# ----------------------------------------------------------------------------- the conv
CASES = [  # x shape, w shape, conv2d kwargs
    ((2, 8, 8, 16), (3, 3, 16, 16), dict(padding=1)),            # whole tiles
    ((3, 9, 7, 16), (3, 3, 16, 24), dict(padding=1)),            # cropped edge tiles, o > c
    ((2, 10, 6, 24), (3, 3, 24, 16), dict(padding="valid")),     # o < c; the transposed conv pads 2
    ((1, 5, 11, 16), (3, 3, 16, 16), dict(padding=(2, 0))),      # asymmetric pads
    ((2, 3, 3, 16), (3, 3, 16, 16), dict(padding="same")),       # an image smaller than a tile
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CASES)
def test_winograd_matches_the_reference(x_shape, w_shape, kwargs, dtype, calls, assert_close):
    x, w, b, gy = data(x_shape, w_shape, dtype, **kwargs)
    expected = reference(x, w, b, gy, **kwargs)
    got = run_conv(x, w, b, gy, **kwargs)
    # forward and the transposed conv each transform inputs and outputs; gw transforms gy
    assert calls["input"] >= 3 and calls["output"] >= 2 and calls["grad"] >= 1
    for what, a, e in zip(["output", "gx", "gw", "gb"], got, expected):
        assert a.dtype == dtype
        assert_close(a, e, what=what)


def test_without_bias_and_without_input_gradient(calls, assert_close):
    x, w, _, gy = data((2, 8, 9, 16), (3, 3, 16, 16), np.float32, bias=False, padding=1)
    y, gx, gw, _ = run_conv(x, w, None, gy, x_grad=False, padding=1)
    y0, gx0, gw0, _ = reference(x, w, None, gy, x_grad=False, padding=1)
    assert gx is None and gx0 is None
    assert calls["output"] >= 1 and calls["grad"] >= 1
    assert calls["input"] == 2 * calls["output"]  # forward, and the weight gradient; no transposed conv
    assert_close(y, y0, what="output")
    assert_close(gw, gw0, what="gw")


def test_split_into_parts_and_blocks_matches_one_part(calls, whole_and_split, assert_close):
    x, w, b, gy = data((7, 10, 9, 16), (3, 3, 16, 16), np.float64, padding=1)
    whole, split = whole_and_split(lambda: run_conv(x, w, b, gy, padding=1))
    for what, a, e in zip(["output", "gx", "gw", "gb"], split, whole):
        assert_close(a, e, what=what)


def test_non_contiguous_inputs(calls, assert_close):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 16, 8)).transpose(0, 1, 3, 2)  # (2, 9, 8, 16), not C-contiguous
    w = rng.standard_normal((3, 3, 16, 16)) / 12
    gy = rng.standard_normal((2, 9, 8, 16))[:, :, ::-1]  # a reversed view
    for a, e in zip(run_conv(x, w, None, gy, padding=1), reference(x, w, None, gy, padding=1)):
        if e is not None:
            assert_close(a, e)
    assert calls["input"] > 0


def test_gradcheck(calls):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((1, 4, 8, 16)), rng.standard_normal((3, 3, 16, 16)) / 12, rng.standard_normal(16)
    assert st.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), [x, w, b])
    assert calls["input"] > 0 and calls["grad"] > 0


@pytest.mark.parametrize("w_shape, kwargs", [
    ((3, 3, 16, 16), dict(stride=2, padding=1)),     # strided
    ((5, 5, 16, 16), dict(padding=2)),               # another kernel size
    ((3, 3, 8, 16), dict(padding=1)),                # too few channels: the GEMM path wins
    ((3, 3, 16, 16), dict(padding=2, dilation=2)),
    ((3, 3, 8, 32), dict(padding=1, groups=2)),
])
def test_other_convs_do_not_take_winograd(w_shape, kwargs, calls, assert_close):
    c = w_shape[2] * kwargs.get("groups", 1)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 8, 8, c)), rng.standard_normal(w_shape)
    y = F.conv2d(st.Tensor(x), st.Tensor(w), **kwargs)
    with reference_only():
        assert_close(y, F.conv2d(st.Tensor(x), st.Tensor(w), **kwargs).data)
    assert calls == {"input": 0, "grad": 0, "output": 0}


def test_small_calls_and_small_images_do_not_take_winograd(calls, monkeypatch):
    monkeypatch.setattr(W, "MIN_TILES", 128)
    rng = np.random.default_rng(6)
    w = st.Tensor(rng.standard_normal((3, 3, 16, 16)))
    F.conv2d(st.Tensor(rng.standard_normal((1, 32, 32, 16))), w, padding=1)  # batch 1: 64 tiles
    F.conv2d(st.Tensor(rng.standard_normal((200, 2, 2, 16))), w, padding=1)  # a quarter of each tile used
    assert calls == {"input": 0, "grad": 0, "output": 0}
    F.conv2d(st.Tensor(rng.standard_normal((2, 32, 32, 16))), w, padding=1)  # 128 tiles
    assert calls["input"] > 0


def test_without_numba_the_gemm_path_runs_narrow_convs(calls, assert_close):
    x, w, b, gy = data((2, 8, 8, 16), (3, 3, 16, 16), np.float32, padding=1)
    old = compiled.set_enabled(False)
    try:
        got = run_conv(x, w, b, gy, padding=1)
    finally:
        compiled.set_enabled(old)
    assert calls == {"input": 0, "grad": 0, "output": 0}
    for a, e in zip(got, reference(x, w, b, gy, padding=1)):
        assert_close(a, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_without_numba_wide_convs_take_numpy_winograd(dtype, monkeypatch, assert_close):
    monkeypatch.setattr(W, "MIN_TILES", 1)
    monkeypatch.setattr(W, "NUMPY_MIN_CHANNELS", 16)
    x, w, b, gy = data((3, 9, 7, 16), (3, 3, 16, 24), dtype, padding=1)
    runs = []
    real = W.WinogradConv.forward
    monkeypatch.setattr(W.WinogradConv, "forward", lambda self, *a: runs.append(1) or real(self, *a))
    old = compiled.set_enabled(False)
    try:
        got = run_conv(x, w, b, gy, padding=1)
    finally:
        compiled.set_enabled(old)
    assert len(runs) == 2  # forward and the transposed conv, with NumPy's transforms
    for what, a, e in zip(["output", "gx", "gw", "gb"], got, reference(x, w, b, gy, padding=1)):
        assert_close(a, e, what=what)


@pytest.mark.parametrize("path", WINOGRAD_GOLDEN, ids=[f.stem for f in WINOGRAD_GOLDEN])
def test_golden_cases_through_winograd(path, calls, check_golden):
    check_golden(path)  # PyTorch's recorded outputs and gradients
    assert calls["input"] > 0 and calls["output"] > 0 and calls["grad"] > 0


def test_against_torch_on_a_resnet_layer(calls, assert_close):
    torch = pytest.importorskip("torch")
    x, w, b, gy = data((8, 16, 16, 32), (3, 3, 32, 32), np.float32, padding=1)
    got = run_conv(x, w, b, gy, padding=1)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous().requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    ty.backward(torch.from_numpy(gy).permute(0, 3, 1, 2))
    expected = [ty.detach().permute(0, 2, 3, 1).numpy(), tx.grad.permute(0, 2, 3, 1).numpy(),
                tw.grad.permute(2, 3, 1, 0).numpy(), tb.grad.numpy()]
    for what, a, e in zip(["output", "gx", "gw", "gb"], got, expected):
        assert_close(a, e, what=what)
    assert calls["input"] > 0


def test_float16_runs_the_reference(calls):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 8, 8, 16)).astype(np.float16)
    w = (rng.standard_normal((3, 3, 16, 16)) / 12).astype(np.float16)
    y = F.conv2d(st.Tensor(x), st.Tensor(w), padding=1)
    with reference_only():
        expected = F.conv2d(st.Tensor(x), st.Tensor(w), padding=1)
    assert y.dtype == np.float16 and calls == {"input": 0, "grad": 0, "output": 0}
    np.testing.assert_array_equal(y.data, expected.data)
