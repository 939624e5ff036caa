"""ReLU followed by max pooling as one op (F.relu_max_pool2d), and Sequential running such pairs.

The fused op must give what the two ops give one after the other, values and gradients, on both
pooling paths (compiled and NumPy) and split over threads; PyTorch's answers for it are in the
golden fixtures (tests/golden/relu_max_pool2d_*.npz).
"""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
import striate.nn as nn
from striate.backend import compiled as accel
from striate.tensor import Function

CASES = [  # kernel_size, stride, padding
    (2, None, 0),
    (3, 2, 0),        # overlapping windows
    (3, 2, "same"),   # -inf padding
    ((2, 3), (1, 2), 0),
]


def unfused_and_fused(x, gy, kernel, stride, padding):
    """[value, gradient] of max_pool2d(relu(x)) and of relu_max_pool2d(x)."""
    results = []
    for fn in (lambda t: F.max_pool2d(F.relu(t), kernel, stride, padding),
               lambda t: F.relu_max_pool2d(t, kernel, stride, padding)):
        t = st.Tensor(x, requires_grad=True)
        y = fn(t)
        y.backward(gy)
        results.append([np.asarray(y.data), t.grad])
    return results


def mixed_signs(shape, dtype, seed=0):
    """Random values with whole windows <= 0 and exact ties, where the two could differ."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    x[0, :3, :3] = -np.abs(x[0, :3, :3])   # windows with no positive value
    x[-1, 2:4, 2:4] = 0.0                  # zeros tied with each other
    x[-1, 4:6, 4:6, 0] = [[0.0, -1.0], [2.0, 2.0]]  # a positive tie
    return x


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, stride, padding", CASES)
def test_relu_max_pool2d_is_relu_then_max_pool2d(kernel, stride, padding, dtype, compiled, monkeypatch):
    if compiled:
        pytest.importorskip("numba")
        monkeypatch.setattr(accel, "MIN_SIZE", 0)
    old = accel.set_enabled(compiled)
    try:
        x = mixed_signs((3, 9, 8, 4), dtype)
        probe = F.max_pool2d(x, kernel, stride, padding)
        gy = np.random.default_rng(1).standard_normal(probe.shape).astype(dtype)
        (y0, g0), (y1, g1) = unfused_and_fused(x, gy, kernel, stride, padding)
    finally:
        accel.set_enabled(old)
    assert y1.dtype == dtype and g1.dtype == dtype
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(g1, g0)  # the same routing, the same zeros: exactly equal
    assert (y1 >= 0).all() and (g1[0, :3, :3] == 0).all()


def test_relu_max_pool2d_split_matches_whole(whole_and_split):
    x = mixed_signs((5, 12, 12, 3), np.float32)
    gy = np.random.default_rng(2).standard_normal((5, 6, 6, 3)).astype(np.float32)

    def run():
        return unfused_and_fused(x, gy, 2, None, 0)[1]

    whole, split = whole_and_split(run)
    np.testing.assert_array_equal(split[0], whole[0])
    np.testing.assert_array_equal(split[1], whole[1])


def test_relu_max_pool2d_gradcheck():
    # values well away from 0 and from each other: finite differences do not cross a kink
    x = np.random.default_rng(3).permutation(np.arange(-40, 40) + 0.5).reshape(1, 4, 5, 4) / 10
    assert st.gradcheck(lambda t: F.relu_max_pool2d(t, 2, padding="same"), [x])


def test_relu_max_pool2d_matches_torch():
    torch = pytest.importorskip("torch")
    x = mixed_signs((2, 8, 8, 3), np.float64)
    t = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(torch.relu(t.permute(0, 3, 1, 2)), 3, 2).permute(0, 2, 3, 1)
    gy = np.random.default_rng(4).standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(gy))
    s = st.Tensor(x, requires_grad=True)
    y = F.relu_max_pool2d(s, 3, 2)
    y.backward(gy)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.grad, t.grad.numpy(), rtol=1e-12)


def test_relu_max_pool2d_validates_like_max_pool2d():
    with pytest.raises(ValueError, match="relu_max_pool2d: padding must not exceed dilation"):
        F.relu_max_pool2d(np.zeros((1, 4, 4, 1), np.float32), 2, padding=2)


# --------------------------------------------------------------------------- Sequential
def _ops_in_graph(y):
    """Types (and the relu flag of max pooling) of every op behind tensor y."""
    seen, stack, found = set(), [y._ctx], []
    while stack:
        fn = stack.pop()  # a Function; its parents are Functions, leaf Tensors or None
        if not isinstance(fn, Function) or id(fn) in seen:
            continue
        seen.add(id(fn))
        found.append((type(fn).__name__, getattr(fn, "relu", None)))
        stack.extend(fn.parents)
    return found


def lenet_and_batch():
    model = st.models.lenet5(rng=0)
    x = np.random.default_rng(5).random((4, 28, 28, 1), dtype=np.float32)
    return model, x


def test_sequential_runs_relu_then_max_pool_as_one_op():
    model, x = lenet_and_batch()
    layers = list(model.features) + list(model.classifier)
    # the reference: every layer called on its own, outside any Sequential
    t = st.Tensor(x)
    for layer in layers:
        t = layer(t)
    y = model(st.Tensor(x))
    np.testing.assert_array_equal(y.data, t.data)
    ops = _ops_in_graph(y)
    assert ops.count(("MaxPool2dOp", True)) == 2, ops      # both conv blocks fused
    assert [name for name, _ in ops].count("ReLUOp") == 2  # the two dense ReLUs stay ReLUs


def test_sequential_gradients_are_those_of_the_unfused_layers():
    model, x = lenet_and_batch()
    labels = np.arange(4)
    F.cross_entropy(model(st.Tensor(x)), labels).backward()
    fused = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    t = st.Tensor(x)
    for layer in list(model.features) + list(model.classifier):
        t = layer(t)
    F.cross_entropy(t, labels).backward()
    for a, b in zip(fused, [p.grad for p in model.parameters()]):
        np.testing.assert_array_equal(a, b)


def test_sequential_does_not_fuse_a_layer_with_a_hook():
    model, x = lenet_and_batch()
    seen = []
    model.features[1].register_forward_hook(lambda m, i, out: seen.append(out.shape))  # conv1's ReLU
    y = model(st.Tensor(x))
    assert seen == [(4, 28, 28, 6)]
    assert _ops_in_graph(y).count(("MaxPool2dOp", True)) == 1  # the other block is still fused


def test_sequential_fuses_only_exact_relu_and_max_pool():
    class MyReLU(nn.ReLU):  # a subclass may do anything in forward
        def forward(self, x):
            return F.relu(x) * 2

    x = np.random.default_rng(6).standard_normal((2, 4, 4, 1)).astype(np.float32)
    y = nn.Sequential(MyReLU(), nn.MaxPool2D(2))(st.Tensor(x, requires_grad=True))  # record the graph
    np.testing.assert_allclose(y.data, F.max_pool2d(np.maximum(x, 0) * 2, 2).data)
    assert ("ReLUOp", None) in _ops_in_graph(y)
    z = nn.Sequential(nn.ReLU(), nn.AvgPool2D(2))(st.Tensor(x, requires_grad=True))
    assert ("ReLUOp", None) in _ops_in_graph(z)


def test_summary_still_lists_the_fused_layers():
    model, _ = lenet_and_batch()
    rows = [line.split()[:3] for line in str(st.summary(model, (28, 28, 1))).splitlines()]
    assert ["features.1", "ReLU", "28x28x6"] in rows and ["features.2", "MaxPool2D", "14x14x6"] in rows
    assert ["features.4", "ReLU", "10x10x16"] in rows and ["features.5", "MaxPool2D", "5x5x16"] in rows
