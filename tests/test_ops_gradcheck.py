"""Finite-difference gradient checks (float64) of every op, and of st.gradcheck itself.

These need no PyTorch: each backward is checked against central differences of its own forward.
Shapes are tiny because gradcheck runs the forward twice per input element.
"""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F


def _randn(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def _distinct(rng, *shape):
    """Values at least 0.05 apart, so max/relu/ties never flip under a 1e-6 nudge."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025 + 0.0123).reshape(shape)


# --------------------------------------------------------------------------- conv2d
CONV_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2)),
    dict(stride=2, padding="same"),
    dict(stride=3, padding="same"),
    dict(stride=1, padding="valid", dilation=2),
    dict(stride=1, padding="same", dilation=(2, 1)),
    dict(stride=1, padding=1, groups=2),
    dict(stride=2, padding="same", groups=4),  # depthwise
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kwargs", CONV_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_conv2d_gradcheck(kwargs, bias, rng):
    g = kwargs.get("groups", 1)
    x = _randn(rng, 2, 5, 4, 4)
    w = _randn(rng, 3, 2, 4 // g, 4)
    inputs = [x, w] + ([_randn(rng, 4)] if bias else [])
    assert st.gradcheck(lambda x, w, *b: F.conv2d(x, w, *b, **kwargs), inputs)


# --------------------------------------------------------------------------- pooling
POOL_CASES = [(2, None, 0), (3, 2, 0), (3, 2, 1), (3, 2, "same"), (2, 1, "same"), ((2, 3), (1, 2), (1, 1))]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradcheck(kind, kernel, stride, padding, rng):
    op = F.max_pool2d if kind == "max" else F.avg_pool2d
    x = _distinct(rng, 2, 5, 6, 2)
    assert st.gradcheck(lambda x: op(x, kernel, stride, padding), [x])


def test_global_avg_pool_gradcheck(rng):
    assert st.gradcheck(F.global_avg_pool2d, [_randn(rng, 2, 3, 4, 3)])


# --------------------------------------------------------------------------- dense, shape, activations
def test_linear_gradcheck(rng):
    assert st.gradcheck(F.linear, [_randn(rng, 3, 4), _randn(rng, 4, 2), _randn(rng, 2)])
    assert st.gradcheck(F.linear, [_randn(rng, 3, 4), _randn(rng, 4, 2)])


def test_flatten_and_concat_gradcheck(rng):
    assert st.gradcheck(F.flatten, [_randn(rng, 2, 2, 3, 2)])
    assert st.gradcheck(lambda a, b, c: F.concat([a, b, c], axis=-1),
                        [_randn(rng, 2, 2, 2, 1), _randn(rng, 2, 2, 2, 3), _randn(rng, 2, 2, 2, 2)])
    assert st.gradcheck(lambda a, b: F.concat([a, b], axis=0), [_randn(rng, 1, 3), _randn(rng, 2, 3)])


ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": F.softmax,
    "softmax_axis0": lambda x: F.softmax(x, axis=0),
    "log_softmax": F.log_softmax,
    "log_softmax_axis1": lambda x: F.log_softmax(x, axis=1),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradcheck(name, rng):
    assert st.gradcheck(ACTIVATIONS[name], [_distinct(rng, 2, 3, 4) * 10])


def test_dropout_gradcheck(rng):
    # an int seed gives the same mask on every call, which finite differences need
    assert st.gradcheck(lambda x: F.dropout(x, 0.4, True, rng=3), [_randn(rng, 4, 5)])


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (5, 4)], ids=["nhwc", "dense"])
def test_batch_norm_train_gradcheck(shape, rng):
    c = shape[-1]
    inputs = [_randn(rng, *shape, scale=2.0), rng.uniform(0.5, 2, c), _randn(rng, c)]
    # no running statistics: every call must see the same function
    assert st.gradcheck(lambda x, g, b: F.batch_norm(x, g, b, None, None, True), inputs)


def test_batch_norm_eval_gradcheck(rng):
    rm, rv = _randn(rng, 3), rng.uniform(0.5, 2, 3)
    inputs = [_randn(rng, 2, 2, 2, 3), rng.uniform(0.5, 2, 3), _randn(rng, 3)]
    assert st.gradcheck(lambda x, g, b: F.batch_norm(x, g, b, rm, rv, False), inputs)


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (5, 1.0, 0.75, 2.0), (2, 1.0, 0.75, 1.0),
                                               (3, 0.5, 1.0, 1.0), (4, 2.0, 0.5, 1.0)], ids=str)
def test_local_response_norm_gradcheck(size, alpha, beta, k, rng):
    assert st.gradcheck(lambda x: F.local_response_norm(x, size, alpha, beta, k), [_randn(rng, 2, 2, 2, 6, scale=2)])


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck(smoothing, rng):
    labels = np.array([0, 3, 1, 3])
    assert st.gradcheck(lambda z: F.cross_entropy(z, labels, smoothing), [_randn(rng, 4, 5, scale=2)])


def test_mse_loss_gradcheck(rng):
    assert st.gradcheck(F.mse_loss, [_randn(rng, 3, 4), _randn(rng, 3, 4)])


def test_binary_cross_entropy_with_logits_gradcheck(rng):
    # both the logits and the (soft) targets are differentiable
    assert st.gradcheck(F.binary_cross_entropy_with_logits, [_randn(rng, 3, 4, scale=3), rng.uniform(0, 1, (3, 4))])


# --------------------------------------------------------------------------- tensor primitives
PRIMITIVES = {
    "add_broadcast": (lambda a, b: a + b, [(3, 4), (4,)]),
    "sub_broadcast": (lambda a, b: a - b, [(2, 1, 3), (4, 1)]),
    "mul_broadcast": (lambda a, b: a * b, [(3, 4), (3, 1)]),
    "div_broadcast": (lambda a, b: a / (b * b + 1.0), [(3, 4), (4,)]),
    "pow": (lambda a: (a * a + 1.0) ** 1.5, [(3, 4)]),
    "neg": (lambda a: -a, [(3,)]),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
    "sum_axis": (lambda a: a.sum(axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    "mean": (lambda a: a.mean(axis=-1), [(2, 3, 4)]),
    "reshape_transpose": (lambda a: a.reshape(4, 6).T.transpose(1, 0)[::2], [(2, 3, 4)]),
    "getitem_repeated": (lambda a: a[[0, 0, 2], [1, 1, 0]] * a[1:, ::-1].sum(), [(3, 4)]),
    "getitem_basic": (lambda a: a[..., 1:3] * a[1, None, ::2].sum() + a[np.int64(2), 0], [(3, 4)]),
    "getitem_mask_and_bool": (lambda a: a[a.data > 0].sum() * a[True][0, 1], [(3, 4)]),
    "exp_log": (lambda a: (a.exp() + 1.0).log(), [(3, 4)]),
    "abs": (lambda a: (a + 0.01).abs(), [(3, 4)]),
    "max": (lambda a: a.max(axis=1), None),
    "cast": (lambda a: a.astype(np.float64) * 2.0, [(3,)]),
}


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_tensor_primitive_gradcheck(name, rng):
    fn, shapes = PRIMITIVES[name]
    inputs = [_distinct(rng, 3, 4)] if shapes is None else [_randn(rng, *s) for s in shapes]
    assert st.gradcheck(fn, inputs)


def test_composite_network_gradcheck(rng):
    def net(x, w, g, b, wl):
        h = F.relu(F.batch_norm(F.conv2d(x, w, padding="same", stride=2), g, b, None, None, True))
        h = F.local_response_norm(F.max_pool2d(h, 2, 1), 3, 0.5)
        return F.cross_entropy(F.linear(F.flatten(h), wl), np.array([1, 0]), 0.1)

    inputs = [_randn(rng, 2, 5, 5, 2), _randn(rng, 3, 3, 2, 3), rng.uniform(0.5, 2, 3), _randn(rng, 3),
              _randn(rng, 12, 3)]
    assert st.gradcheck(net, inputs)


# --------------------------------------------------------------------------- gradcheck itself
class _BrokenSquare(st.Function):
    """x ** 2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (3 * self.x * gy,)


class _ForgetsSecondInput(st.Function):
    """a * b whose backward wrongly says b has no gradient."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, None


def test_gradcheck_detects_a_wrong_backward(rng):
    x = _randn(rng, 3, 2) + 2.0
    with pytest.raises(ValueError, match=r"gradcheck failed for input 0 \(shape \(3, 2\)\).*analytic=.*numeric="):
        st.gradcheck(lambda x: _BrokenSquare().apply(x), [x])
    assert st.gradcheck(lambda x: _BrokenSquare().apply(x), [x], raise_exception=False) is False


def test_gradcheck_detects_a_missing_gradient(rng):
    a, b = _randn(rng, 4) + 3.0, _randn(rng, 4) + 3.0
    with pytest.raises(ValueError, match="gradcheck failed for input 1"):
        st.gradcheck(lambda a, b: _ForgetsSecondInput().apply(a, b), [a, b])


def test_gradcheck_passes_a_correct_custom_function_and_skips_constant_inputs(rng):
    class Square(st.Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return (2 * self.x * gy,)

    assert st.gradcheck(lambda x: Square().apply(x), [_randn(rng, 3, 2)])
    const = st.Tensor(_randn(rng, 4))  # requires_grad=False: not checked, still used
    assert st.gradcheck(lambda a, c: a * c, [_randn(rng, 4), const])


def test_gradcheck_refuses_float32(rng):
    with pytest.raises(TypeError, match="gradcheck needs float64 inputs; input 0 has dtype float32"):
        st.gradcheck(F.relu, [rng.standard_normal(3).astype(np.float32)])
