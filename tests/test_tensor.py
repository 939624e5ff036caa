"""Tensor and the autograd engine: every elementary op's forward and adjoint against PyTorch,
gradient accumulation, no_grad, graph freeing, error cases and dtype preservation."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F

DTYPES = [np.float32, np.float64]


def _torch():
    return pytest.importorskip("torch")


def _compare(st_fn, torch_fn, arrays, assert_close, seed=0):
    """Run ``fn`` on Tensors and on torch leaves, pull back a random cotangent, compare all.

    ``arrays`` are the differentiable inputs; the cotangent is random so every output element
    (and its adjoint) is tested, not just their sum.
    """
    torch = _torch()
    xs = [st.Tensor(a, requires_grad=True) for a in arrays]
    y = st_fn(*xs)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(gy)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch_fn(*ts)
    ty.backward(torch.tensor(gy))
    assert y.dtype == arrays[0].dtype, "output dtype changed"
    assert_close(y.data, ty.detach().numpy(), what="forward")
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None, f"no gradient for input {i}"
        assert x.grad.dtype == arrays[i].dtype, f"gradient of input {i} has dtype {x.grad.dtype}"
        assert_close(x.grad, t.grad.numpy(), what=f"grad of input {i}")


# --------------------------------------------------------------------------- broadcasting arithmetic
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3, 4), ()), ((1,), (2, 3)),
                    ((2, 3, 1, 5), (1, 4, 1))]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("op", list(BINARY))
def test_binary_broadcasting_matches_torch(op, shapes, dtype, rng, assert_close):
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    if op == "div":
        b = (np.sign(b) * (np.abs(b) + 0.5)).astype(dtype)  # keep away from zero
    _compare(BINARY[op], BINARY[op], [a, b], assert_close)


UNARY = {
    "neg": (lambda x: -x, lambda x: -x),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3),
    "pow_half": (lambda x: x ** 0.5, lambda x: x ** 0.5),
    "pow_neg": (lambda x: x ** -1.5, lambda x: x ** -1.5),
    "sqrt": (lambda x: x.sqrt(), lambda x: x.sqrt()),
    "exp": (lambda x: x.exp(), lambda x: x.exp()),
    "log": (lambda x: x.log(), lambda x: x.log()),
    "abs": (lambda x: (x - 1.0).abs(), lambda x: (x - 1.0).abs()),
    "rsub_scalar": (lambda x: 2.0 - x, lambda x: 2.0 - x),
    "rdiv_scalar": (lambda x: 3.0 / x, lambda x: 3.0 / x),
    "radd_rmul": (lambda x: 0.5 + 2.0 * x, lambda x: 0.5 + 2.0 * x),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_matches_torch(op, dtype, rng, assert_close):
    # positive inputs so that log, sqrt and negative powers are defined; abs is shifted by 1
    x = rng.uniform(0.2, 2.0, size=(3, 5)).astype(dtype)
    _compare(UNARY[op][0], UNARY[op][1], [x], assert_close)


MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_matches_torch(shapes, dtype, rng, assert_close):
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    _compare(lambda a, b: a @ b, lambda a, b: a @ b, [a, b], assert_close)


def test_matmul_with_array_on_the_left(rng):
    w = st.Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    a = rng.standard_normal((3, 4))
    y = a @ w  # ndarray @ Tensor dispatches to Tensor.__rmatmul__
    assert isinstance(y, st.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(w.grad, a.sum(axis=0)[:, None].repeat(2, axis=1))


REDUCTIONS = [
    ("sum_all", lambda x: x.sum(), lambda x: x.sum()),
    ("sum_axis0", lambda x: x.sum(axis=0), lambda x: x.sum(dim=0)),
    ("sum_neg_axis_keep", lambda x: x.sum(axis=-1, keepdims=True), lambda x: x.sum(dim=-1, keepdim=True)),
    ("sum_tuple", lambda x: x.sum(axis=(0, 2)), lambda x: x.sum(dim=(0, 2))),
    ("mean_all", lambda x: x.mean(), lambda x: x.mean()),
    ("mean_axis1", lambda x: x.mean(axis=1), lambda x: x.mean(dim=1)),
    ("mean_tuple_keep", lambda x: x.mean(axis=(1, -1), keepdims=True), lambda x: x.mean(dim=(1, -1), keepdim=True)),
    ("max_all", lambda x: x.max(), lambda x: x.amax()),
    ("max_axis", lambda x: x.max(axis=1), lambda x: x.amax(dim=1)),
    ("max_neg_axis_keep", lambda x: x.max(axis=-1, keepdims=True), lambda x: x.amax(dim=-1, keepdim=True)),
    ("max_tuple", lambda x: x.max(axis=(0, 2)), lambda x: x.amax(dim=(0, 2))),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,st_fn,torch_fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reductions_match_torch(name, st_fn, torch_fn, dtype, rng, assert_close):
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    _compare(st_fn, torch_fn, [x], assert_close)


def test_max_splits_gradient_among_ties_like_torch_amax(assert_close):
    # the documented rule of Tensor.max: tied maxima share the gradient evenly (torch.amax does too)
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    _compare(lambda t: t.max(axis=1), lambda t: t.amax(dim=1), [x], assert_close)
    t = st.Tensor(x, requires_grad=True)
    t.max(axis=1).sum().backward()
    np.testing.assert_array_equal(t.grad, [[0, 0.5, 0.5, 0], [0.25, 0.25, 0.25, 0.25]])


SHAPE_OPS = [
    ("reshape", lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
    ("reshape_tuple_infer", lambda x: x.reshape((2, -1)), lambda x: x.reshape(2, -1)),
    ("transpose_axes", lambda x: x.transpose(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    ("transpose_neg_axes", lambda x: x.transpose((0, -1, -2)), lambda x: x.permute(0, 2, 1)),
    ("transpose_reverse", lambda x: x.transpose(), lambda x: x.permute(2, 1, 0)),
    ("T", lambda x: x.reshape(6, 4).T, lambda x: x.reshape(6, 4).T),
    ("slice", lambda x: x[:, 1:, ::2], lambda x: x[:, 1:, ::2]),
    ("int_index", lambda x: x[1, :, -1], lambda x: x[1, :, -1]),
    ("negative_step", lambda x: x[:, ::-1], lambda x: x.flip(1)),
    ("repeated_index", lambda x: x[[0, 0, 1, 0]], lambda x: x[[0, 0, 1, 0]]),
    ("repeated_pairs", lambda x: x[[0, 1, 0, 0], [2, 1, 2, 2]], lambda x: x[[0, 1, 0, 0], [2, 1, 2, 2]]),
    ("repeated_last_axis", lambda x: x[..., [3, 3, 0]], lambda x: x[..., [3, 3, 0]]),
    ("bool_mask", lambda x: x[x.data > 0], lambda x: x[x > 0]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,st_fn,torch_fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_and_indexing_ops_match_torch(name, st_fn, torch_fn, dtype, rng, assert_close):
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    _compare(st_fn, torch_fn, [x], assert_close)


def test_repeated_advanced_index_accumulates_exact_counts():
    # x[[0, 0, 2, 0]] reads row 0 three times: its gradient must be 3, not 1 (plain fancy
    # assignment would silently keep only one of the writes).
    x = st.Tensor(np.arange(4.0), requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0, 0.0])
    x.zero_grad()
    x[st.Tensor(np.array([1, 1]))].sum().backward()  # a Tensor of indices works as an index too
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 0.0, 0.0])


def test_composite_expression_matches_torch(rng, assert_close):
    # a small network-like expression mixing most primitives
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    c = rng.uniform(0.5, 1.5, (2,))

    def expr(a, b, c, amax):
        h = (a @ b) / c - (a[:, :2] * 0.5) ** 2
        return (h.exp() + 1.0).log().mean(axis=0) * amax(h)

    _compare(lambda a, b, c: expr(a, b, c, lambda h: h.max(axis=0)),
             lambda a, b, c: expr(a, b, c, lambda h: h.amax(dim=0)), [a, b, c], assert_close)


# --------------------------------------------------------------------------- accumulation
def test_tensor_used_twice_gets_the_sum_of_both_paths():
    x = st.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_residual_connection_gradient_matches_torch(rng, assert_close):
    # y = x + f(x): the skip path adds the identity to f's Jacobian
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 4))

    _compare(lambda x, w: x + F.tanh(x @ w), lambda x, w: x + (x @ w).tanh(), [x, w], assert_close)


def test_diamond_graph_and_three_uses(rng):
    torch = _torch()
    x0 = rng.standard_normal(5)
    x = st.Tensor(x0, requires_grad=True)
    a = x * 2.0
    y = (a * a + a.exp() + x).sum()  # a used three times, x reached by two paths
    y.backward()
    t = torch.tensor(x0, requires_grad=True)
    ta = t * 2.0
    (ta * ta + ta.exp() + t).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_gradients_accumulate_across_backward_calls_until_zero_grad():
    x = st.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_only_leaves_keep_grad_unless_retain_grad():
    x = st.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2.0
    k = (x * 3.0).retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad, h.data)
    np.testing.assert_array_equal(x.grad, 2 * 3 * x.data * 2)


def test_input_without_requires_grad_gets_no_gradient():
    x = st.Tensor(np.ones(3), requires_grad=True)
    c = st.Tensor(np.full(3, 2.0))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = st.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + x
    y.backward()
    assert x.grad == 3001.0


def test_detach_cuts_the_graph():
    x = st.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # d acted as a constant


# --------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing():
    x = st.Tensor(np.ones((2, 3)), requires_grad=True)
    with st.no_grad():
        assert not st.is_grad_enabled()
        y = F.relu(x * 2.0 + 1.0).sum()
    assert st.is_grad_enabled()
    assert y.requires_grad is False
    assert y._ctx is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_enable_grad_inside_no_grad_and_state_restored_after_error():
    x = st.Tensor(np.ones(2), requires_grad=True)
    with st.no_grad():
        with st.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and y._ctx is not None
    assert not z.requires_grad
    with pytest.raises(ZeroDivisionError):
        with st.no_grad():
            1 / 0
    assert st.is_grad_enabled()


def test_no_grad_parameter_update_keeps_a_leaf():
    w = st.Tensor(np.ones(3), requires_grad=True)
    (w * w).sum().backward()
    with st.no_grad():
        w.data -= 0.1 * w.grad
    assert w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.data, 0.8)


# --------------------------------------------------------------------------- backward errors
def test_backward_twice_without_retain_graph_raises():
    x = st.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_backward_twice_with_retain_graph_accumulates():
    x = st.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    np.testing.assert_allclose(first, np.exp(x.data) * (1 + x.data))


def test_backward_on_non_scalar_needs_grad():
    x = st.Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"single-element tensor.*shape=\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match="grad must have the tensor's shape"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


# --------------------------------------------------------------------------- dtypes
DTYPE_OPS = {
    "mul_scalar": lambda x: x * 2.0,
    "rmul_scalar": lambda x: 2.0 * x,
    "add_int": lambda x: x + 1,
    "radd": lambda x: 1.5 + x,
    "rsub": lambda x: 1.5 - x,
    "div_scalar": lambda x: x / 3.0,
    "rdiv": lambda x: 1.0 / (x + 3.0),
    "pow": lambda x: x ** 2,
    "pow_float": lambda x: (x * x + 1.0) ** 0.5,
    "neg": lambda x: -x,
    "exp_log": lambda x: (x.exp() + 1.0).log(),
    "abs": lambda x: x.abs(),
    "mean": lambda x: x.mean(),
    "mean_axis": lambda x: x.mean(axis=(1, 2)),
    "sum": lambda x: x.sum(axis=0),
    "max": lambda x: x.max(axis=-1),
    "matmul": lambda x: x.reshape(2, -1) @ x.reshape(-1, 2),
    "numpy_left": lambda x: np.float64(2.0) * x,
    "array_left": lambda x: np.ones(3) + x,
    "getitem": lambda x: x[:, [0, 0]],
    "transpose": lambda x: x.transpose(3, 2, 1, 0),
    "conv2d": lambda x: F.conv2d(x, np.ones((2, 2, 3, 2), x.dtype), padding="same", stride=2),
    "max_pool": lambda x: F.max_pool2d(x, 2, 1),
    "avg_pool": lambda x: F.avg_pool2d(x, 2, 1, padding=1),
    "global_avg_pool": lambda x: F.global_avg_pool2d(x),
    "linear": lambda x: F.linear(F.flatten(x), np.ones((18, 2), x.dtype), np.ones(2, x.dtype)),
    "activations": lambda x: F.tanh(F.sigmoid(F.leaky_relu(F.relu(x) - 0.5))),
    "softmax": lambda x: F.softmax(x) * F.log_softmax(x, axis=1),
    "dropout": lambda x: F.dropout(x, 0.5, True, rng=0),
    "batch_norm": lambda x: F.batch_norm(x, np.ones(3, x.dtype), np.zeros(3, x.dtype),
                                         np.zeros(3, x.dtype), np.ones(3, x.dtype), True),
    "lrn": lambda x: F.local_response_norm(x, 3),
    "concat": lambda x: F.concat([x, x * 2.0]),
    "cross_entropy": lambda x: F.cross_entropy(F.flatten(x), np.array([0, 5])),
    "mse": lambda x: F.mse_loss(x, x.data * 0.5),
    "bce": lambda x: F.binary_cross_entropy_with_logits(x, np.full(x.shape, 0.3, x.dtype)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(DTYPE_OPS))
def test_dtype_is_preserved_through_forward_and_backward(op, dtype, rng):
    x = st.Tensor(rng.uniform(-1, 1, (2, 2, 3, 3)).astype(dtype), requires_grad=True)
    y = DTYPE_OPS[op](x)
    assert y.dtype == dtype, f"{op}: {dtype.__name__} became {y.dtype}"
    y.backward(np.ones(y.shape, dtype))
    assert x.grad.dtype == dtype, f"{op}: gradient is {x.grad.dtype}"
    # the scalar loss itself, once detached, must keep the dtype too (NumPy scalars are not arrays)
    assert y.detach().dtype == dtype


def test_python_data_becomes_float32_and_arrays_keep_their_dtype():
    assert st.Tensor([1.0, 2.0]).dtype == np.float32
    assert st.Tensor([[1, 2], [3, 4.5]]).dtype == np.float32
    assert st.Tensor(3.0).dtype == np.float32
    assert st.Tensor(np.zeros(2, np.float64)).dtype == np.float64
    assert st.Tensor(np.zeros(2, np.float16)).dtype == np.float16
    assert st.Tensor(np.float64(1.0)).dtype == np.float64
    assert st.Tensor(np.arange(3)).dtype.kind == "i"
    assert st.Tensor([1.0], dtype=np.float64).dtype == np.float64


def test_astype_casts_and_its_gradient_casts_back():
    x = st.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("data", [np.arange(3), np.array([True, False]), [1, 2, 3]])
def test_requires_grad_on_non_float_raises(data):
    with pytest.raises(TypeError, match="Only floating-point tensors can require gradients"):
        st.Tensor(data, requires_grad=True)


def test_requires_grad_setter_refuses_int_but_accepts_float():
    t = st.Tensor(np.arange(3))
    with pytest.raises(TypeError, match=r"dtype=int64.*astype\(np.float32\)"):
        t.requires_grad = True
    f = st.Tensor([1.0, 2.0, 3.0])  # a Python list of floats becomes float32, so it may require grad
    f.requires_grad = True
    assert f.requires_grad and f.dtype == np.float32
    # a list of Python ints stays integer (as in torch.tensor): indices and labels keep working
    assert st.Tensor([1, 2]).dtype.kind == "i"


def test_pow_with_tensor_exponent_is_refused():
    x = st.Tensor(np.ones(2))
    with pytest.raises(TypeError, match="Python number exponent"):
        x ** st.Tensor(np.ones(2))


# --------------------------------------------------------------------------- array-like behaviour
def test_array_like_properties_and_comparisons():
    x = st.Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    np.testing.assert_array_equal(x > 2.0, x.data > 2.0)
    np.testing.assert_array_equal(x <= st.Tensor(np.full((2, 3), 3.0)), x.data <= 3.0)
    assert x.argmax() == 5
    assert x.numpy() is x.data
    assert x[1, 2].item() == 5.0
    assert "requires_grad=True" in repr(st.Tensor(np.ones(2), requires_grad=True))
