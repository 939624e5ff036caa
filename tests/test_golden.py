"""striate against golden outputs and gradients recorded from PyTorch (scripts/make_golden.py).

Runs without torch: the oracle's answers are stored in tests/golden/*.npz, so the suite keeps an
independent reference on every machine. Regenerate with ``python scripts/make_golden.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import striate as st
import striate.functional as F

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))

# op name -> how to call striate with (differentiable Tensors, constant arrays, kwargs)
OPS = {
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
}
RTOL = {"float64": 1e-9, "float32": 2e-4}


def _close(actual, expected, rtol, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-12), err_msg=what)


def test_golden_fixtures_are_present_and_small():
    assert len(FILES) >= 30, f"golden fixtures missing in {GOLDEN}: run python scripts/make_golden.py"
    total = sum(f.stat().st_size for f in FILES)
    assert total < 300 * 1024, f"golden fixtures take {total / 1024:.0f} KiB"


def test_every_op_has_a_golden_case():
    ops = {json.loads(str(np.load(f)["meta"]))["op"] for f in FILES}
    assert ops == set(OPS)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_matches_golden(path):
    data = np.load(path)  # no pickles: meta is a plain unicode array
    meta = json.loads(str(data["meta"]))
    dtype = np.dtype(meta["dtype"])
    rtol = RTOL[meta["dtype"]]
    inputs = {k: st.Tensor(data[f"in_{k}"], requires_grad=True) for k in meta["inputs"]}
    consts = {k: data[f"const_{k}"].copy() for k in meta["consts"]}  # copies: batch norm updates in place
    out = OPS[meta["op"]](inputs, consts, meta["kwargs"])
    assert out.dtype == dtype
    _close(np.asarray(out.data), data["out"], rtol, "output")
    out.backward(data["gy"])
    for k, t in inputs.items():
        assert t.grad is not None, f"no gradient for {k}"
        assert t.grad.dtype == dtype
        _close(t.grad, data[f"grad_{k}"], rtol, f"gradient of {k}")
    for k in meta["consts"]:
        if f"after_{k}" in data:
            _close(consts[k], data[f"after_{k}"], rtol, f"{k} after the call")


def test_max_pool_ties_golden_is_first_max_rule():
    # a direct reading of the fixture: 3x3 windows at stride 2 over a 5x5 field of ones; each of the
    # 4 windows sends its gradient to its top-left cell (0,0), (0,2), (2,0), (2,2)
    data = np.load(GOLDEN / "max_pool2d_ties.npz")
    gy = data["gy"]
    expected = np.zeros((1, 5, 5, 2))
    for i in range(2):
        for j in range(2):
            expected[0, 2 * i, 2 * j] = gy[0, i, j]
    np.testing.assert_array_equal(data["grad_x"], expected)
