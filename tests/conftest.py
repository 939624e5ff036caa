"""Shared fixtures of the test suite.

Tolerances (striate's contract with PyTorch): results agree with the reference to a relative tolerance of
1e-9 in float64 and 2e-4 in float32. "Relative" is measured both element-wise and against the
largest magnitude of the reference, so that entries that happen to be near zero (sums of terms of
both signs) are judged on the scale of the whole array, as ``torch.testing`` does with its atol.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import striate as st
import striate.functional as F

from striate.backend import compiled, conv, threads as parallel, winograd

RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 2e-4}


def _assert_close(actual, expected, rtol=None, dtype=None, what="value"):
    """Assert ``actual`` matches ``expected`` to the per-dtype relative tolerance.

    ``rtol`` defaults to :data:`RTOL` of ``dtype`` (or of ``actual``'s dtype).
    """
    actual = np.asarray(getattr(actual, "data", actual))
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if rtol is None:
        rtol = RTOL[np.dtype(dtype if dtype is not None else actual.dtype)]
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-12), err_msg=what)


@pytest.fixture
def assert_close():
    """``assert_close(actual, expected, rtol=None, dtype=None, what='value')``."""
    return _assert_close


@pytest.fixture
def rng():
    """A fresh, seeded NumPy Generator per test (tests never share random state)."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Keep PyTorch (the oracle, when installed) to one thread: the test machine is shared."""
    try:
        import torch
    except ImportError:  # torch is optional: the golden and numerical tests run without it
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def compiled_loops(request, monkeypatch):
    """Runs the test twice: with the compiled (numba) loops, for inputs of any size, and without
    (NumPy's passes). The compiled run is skipped where numba is missing."""
    if request.param:
        pytest.importorskip("numba")
    old = compiled.set_enabled(request.param)
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)  # small test inputs take the compiled path too
    yield request.param
    compiled.set_enabled(old)


@pytest.fixture
def split_everything(monkeypatch):
    """Every op splits into as many parts and blocks as it can: one image per part, one output row
    per block, on 3 threads (the test inputs are small, so by default they run as one part)."""
    old = parallel.get_num_threads()
    monkeypatch.setattr(parallel, "MIN_PART", 1)
    monkeypatch.setattr(conv, "BLOCK_BYTES", 1)
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)
    try:
        if parallel._blas_controllers() is None:  # no threadpoolctl: parts run on this thread
            monkeypatch.setitem(parallel._config, "threads", 3)
        else:
            parallel.set_num_threads(3)
        yield
    finally:
        if parallel._config["threads"] != old:
            parallel.set_num_threads(old) if old > 1 else parallel.set_num_threads(1)


def whole_and_split(run, request):
    """``run()`` as the op comes (one part, one block), then with `split_everything` in effect."""
    whole = run()
    request.getfixturevalue("split_everything")
    return whole, run()


@pytest.fixture
def whole_and_split(request):
    """``whole_and_split(run)``: ``run()`` as the op comes (one part, one block), then with
    `split_everything` in effect."""
    def run_both(run, request=request):
        whole = run()
        request.getfixturevalue("split_everything")
        return whole, run()
    return run_both


# --------------------------------------------------------------------------- golden fixtures
# op name -> how to call striate with (differentiable Tensors, constant arrays, kwargs)
GOLDEN_OPS = {
    "conv2d": lambda t, c, kw: F.conv2d(t["x"], t["w"], t.get("b"), **kw),
    "max_pool2d": lambda t, c, kw: F.max_pool2d(t["x"], **kw),
    "relu_max_pool2d": lambda t, c, kw: F.relu_max_pool2d(t["x"], **kw),
    "avg_pool2d": lambda t, c, kw: F.avg_pool2d(t["x"], **kw),
    "global_avg_pool2d": lambda t, c, kw: F.global_avg_pool2d(t["x"]),
    "linear": lambda t, c, kw: F.linear(t["x"], t["w"], t.get("b")),
    "flatten": lambda t, c, kw: F.flatten(t["x"]),
    "concat": lambda t, c, kw: F.concat([t["a"], t["b"], t["c"]], **kw),
    "relu": lambda t, c, kw: F.relu(t["x"]),
    "leaky_relu": lambda t, c, kw: F.leaky_relu(t["x"], **kw),
    "sigmoid": lambda t, c, kw: F.sigmoid(t["x"]),
    "tanh": lambda t, c, kw: F.tanh(t["x"]),
    "softmax": lambda t, c, kw: F.softmax(t["x"], **kw),
    "log_softmax": lambda t, c, kw: F.log_softmax(t["x"], **kw),
    "batch_norm": lambda t, c, kw: F.batch_norm(t["x"], t["gamma"], t["beta"], c["running_mean"], c["running_var"], **kw),
    "local_response_norm": lambda t, c, kw: F.local_response_norm(t["x"], **kw),
    "cross_entropy": lambda t, c, kw: F.cross_entropy(t["logits"], c["labels"], **kw),
    "mse_loss": lambda t, c, kw: F.mse_loss(t["pred"], t["target"]),
    "binary_cross_entropy_with_logits": lambda t, c, kw: F.binary_cross_entropy_with_logits(t["logits"], t["target"]),
    "conv_transpose2d": lambda t, c, kw: F.conv_transpose2d(t["x"], t["w"], t.get("b"), **kw),
    "upsample": lambda t, c, kw: F.upsample(t["x"], **kw),
    "max_unpool2d": lambda t, c, kw: F.max_unpool2d(t["x"], c["indices"], **kw),
    "smooth_l1_loss": lambda t, c, kw: F.smooth_l1_loss(t["pred"], t["target"], **kw),
    "huber_loss": lambda t, c, kw: F.huber_loss(t["pred"], t["target"], **kw),
    "sigmoid_focal_loss": lambda t, c, kw: F.sigmoid_focal_loss(t["logits"], t["targets"], **kw),
    "dice_loss": lambda t, c, kw: F.dice_loss(t["logits"], c["labels"], **kw),
}


@pytest.fixture
def golden_ops():
    """Op name -> how striate computes it, for tests/golden/<op>*.npz."""
    return GOLDEN_OPS


def _check_golden(path):
    """striate reproduces the outputs, gradients and updated constants of one golden file."""
    data = np.load(path)  # no pickles: meta is a plain unicode array
    meta = json.loads(str(data["meta"]))
    dtype = np.dtype(meta["dtype"])
    rtol = RTOL[dtype]
    inputs = {k: st.Tensor(data[f"in_{k}"], requires_grad=True) for k in meta["inputs"]}
    consts = {k: data[f"const_{k}"].copy() for k in meta["consts"]}  # copies: batch norm updates in place
    out = GOLDEN_OPS[meta["op"]](inputs, consts, meta["kwargs"])
    assert out.dtype == dtype
    _assert_close(np.asarray(out.data), data["out"], rtol, what="output")
    out.backward(data["gy"])
    for k, t in inputs.items():
        assert t.grad is not None, f"no gradient for {k}"
        assert t.grad.dtype == dtype
        _assert_close(t.grad, data[f"grad_{k}"], rtol, what=f"gradient of {k}")
    for k in meta["consts"]:
        if f"after_{k}" in data:
            _assert_close(consts[k], data[f"after_{k}"], rtol, what=f"{k} after the call")


@pytest.fixture
def check_golden():
    """``check_golden(path)``: assert striate matches one tests/golden/*.npz file (PyTorch's answers)."""
    return _check_golden
