"""Fused pairs of ops: ReLU then max pooling (F.relu_max_pool2d), batch norm then ReLU
(F.batch_norm_relu), and Sequential and the ResNet blocks running such pairs.

A fused op must give what the two ops give one after the other, values and gradients, on both
paths (compiled and NumPy) and split over threads; PyTorch's answers for relu_max_pool2d are in the
golden fixtures (tests/golden/relu_max_pool2d_*.npz), batch norm + ReLU is compared with torch here.
"""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
import striate.nn as nn
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, stride, padding", CASES)
def test_relu_max_pool2d_is_relu_then_max_pool2d(kernel, stride, padding, dtype, compiled_loops):
    x = mixed_signs((3, 9, 8, 4), dtype)
    probe = F.max_pool2d(x, kernel, stride, padding)
    gy = np.random.default_rng(1).standard_normal(probe.shape).astype(dtype)
    (y0, g0), (y1, g1) = unfused_and_fused(x, gy, kernel, stride, padding)
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


# --------------------------------------------------------------------------- batch norm + ReLU
def bn_pair(x, gy, training, fused, dtype):
    """[y, gx, ggamma, gbeta, running mean, running var] of relu(batch_norm(x)) or batch_norm_relu."""
    c = x.shape[-1]
    rng = np.random.default_rng(7)
    gamma = st.Tensor(rng.uniform(0.5, 2.0, c).astype(dtype), requires_grad=True)
    beta = st.Tensor(rng.standard_normal(c).astype(dtype), requires_grad=True)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
    t = st.Tensor(x, requires_grad=True)
    if fused:
        y = F.batch_norm_relu(t, gamma, beta, rm, rv, training)
    else:
        y = F.relu(F.batch_norm(t, gamma, beta, rm, rv, training))
    y.backward(gy)
    return [np.asarray(y.data), t.grad, gamma.grad, beta.grad, rm, rv]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 6, 5, 8), (16, 3)])
def test_batch_norm_relu_is_batch_norm_then_relu(shape, training, dtype, compiled_loops, assert_close):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    unfused = bn_pair(x, gy, training, False, dtype)
    fused = bn_pair(x, gy, training, True, dtype)
    assert (fused[0] == 0).mean() > 0.2  # the ReLU cut a good share of the outputs
    for what, a, e in zip(["y", "gx", "ggamma", "gbeta", "running_mean", "running_var"], fused, unfused):
        assert a.dtype == dtype
        assert_close(a, e, what=what)


def test_batch_norm_relu_split_matches_whole(whole_and_split, assert_close):
    rng = np.random.default_rng(9)
    x, gy = rng.standard_normal((6, 5, 4, 3)), rng.standard_normal((6, 5, 4, 3))
    whole, split = whole_and_split(lambda: bn_pair(x, gy, True, True, np.float64))
    for a, e in zip(split, whole):
        assert_close(a, e)


def test_batch_norm_relu_gradcheck():
    rng = np.random.default_rng(10)
    x, gamma, beta = rng.standard_normal((3, 4, 4, 2)), rng.uniform(0.5, 2, 2), rng.standard_normal(2)
    rm, rv = np.zeros(2), np.ones(2)
    assert st.gradcheck(lambda x, g, b: F.batch_norm_relu(x, g, b, rm.copy(), rv.copy(), True), [x, gamma, beta])


def test_batch_norm_relu_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x, gy = rng.standard_normal((4, 5, 5, 3)), rng.standard_normal((4, 5, 5, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    ty = torch.relu(torch.nn.functional.batch_norm(tx.permute(0, 3, 1, 2), trm, trv, tg, tb, training=True))
    ty = ty.permute(0, 2, 3, 1)
    ty.backward(torch.tensor(gy))
    sx, sg, sb = (st.Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    rm, rv = np.zeros(3), np.ones(3)
    y = F.batch_norm_relu(sx, sg, sb, rm, rv, True)
    y.backward(gy)
    for a, e in ((y.data, ty.detach()), (sx.grad, tx.grad), (sg.grad, tg.grad), (sb.grad, tb.grad), (rm, trm), (rv, trv)):
        np.testing.assert_allclose(a, e.numpy(), rtol=1e-10, atol=1e-12)


def test_sequential_runs_batch_norm_then_relu_as_one_op():
    model = nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.Flatten(), nn.Dense(3))
    x = np.random.default_rng(12).standard_normal((4, 6, 6, 2)).astype(np.float32)
    y = model(st.Tensor(x))
    t = st.Tensor(x)
    for layer in model:
        t = layer(t)
    np.testing.assert_array_equal(y.data, t.data)
    ops = _ops_in_graph(model(st.Tensor(x, requires_grad=True)))
    assert ("BatchNormOp", True) in ops and ("ReLUOp", None) not in ops


def test_resnet_blocks_fuse_and_keep_their_values_and_gradients(monkeypatch):
    from striate.nn import fusion

    model = st.models.get("resnet20", rng=0)
    x = np.random.default_rng(13).standard_normal((4, 32, 32, 3)).astype(np.float32)
    labels = np.arange(4)

    def run():
        model.zero_grad()
        t = st.Tensor(x, requires_grad=True)
        loss = F.cross_entropy(model(t), labels)
        ops = _ops_in_graph(loss)  # (before backward frees the ops' state)
        loss.backward()
        return [loss.data] + [p.grad.copy() for p in model.parameters()], ops

    fused, ops = run()
    assert ops.count(("BatchNormOp", True)) == 10  # the stem and the first BN of each of 9 blocks
    monkeypatch.setattr(fusion, "RULES", {})       # every layer on its own
    unfused, ops = run()
    assert ("BatchNormOp", True) not in ops
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * float(np.abs(b).max()))


# --------------------------------------------------------------------------- add + ReLU
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_relu_is_relu_of_the_sum(dtype, split_everything, assert_close):
    rng = np.random.default_rng(14)
    a, b = rng.standard_normal((6, 5, 4, 3)).astype(dtype), rng.standard_normal((6, 5, 4, 3)).astype(dtype)
    gy = rng.standard_normal(a.shape).astype(dtype)
    results = []
    for fn in (lambda x, y: F.relu(x + y), F.add_relu):
        ta, tb = st.Tensor(a, requires_grad=True), st.Tensor(b, requires_grad=True)
        out = fn(ta, tb)
        out.backward(gy)
        results.append([out.data, ta.grad, tb.grad])
    for what, x, e in zip(["y", "ga", "gb"], results[1], results[0]):
        assert x.dtype == dtype
        assert_close(x, e, what=what)
    assert (results[1][0] == 0).mean() > 0.2


def test_add_relu_gradcheck_and_refusals():
    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((2, 3, 3, 2))
    assert st.gradcheck(F.add_relu, [a, b])
    with pytest.raises(ValueError, match="add_relu: a and b must have the same shape"):
        F.add_relu(a, b[:, :1])


def test_resnet_blocks_end_with_one_add_relu_op():
    model = st.models.get("resnet20", rng=0)
    y = model(st.Tensor(np.zeros((2, 32, 32, 3), np.float32), requires_grad=True))
    names = [name for name, _ in _ops_in_graph(y)]
    assert names.count("AddReLUOp") == 9 and "AddOp" not in names and "ReLUOp" not in names


def test_fused_ops_export_to_onnx_as_their_parts(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2D(4, 3, padding=1), nn.BatchNorm()

        def forward(self, x):
            y = self.conv(x)
            z = self.bn.normalize(y, relu=True)  # F.batch_norm_relu
            return F.flatten(F.add_relu(z, y))

    model = Net()
    x = np.random.default_rng(16).standard_normal((2, 5, 5, 3)).astype(np.float32)
    model(st.Tensor(x))
    model.bn.running_mean[:] = 0.3
    model.eval()
    path = tmp_path / "net.onnx"
    st.onnx.export(model, str(path), input_shape=(5, 5, 3))
    session = ort.InferenceSession(str(path))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]  # (NHWC input by default)
    np.testing.assert_allclose(got, model(st.Tensor(x)).data, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("stride", [2, (2, 3), 1])
def test_one_by_one_max_pool_is_a_strided_copy(stride, relu):
    # ResNet's option-A shortcut subsamples with a 1x1 max pool: the strided copy must be exactly it
    rng = np.random.default_rng(17)
    x = rng.standard_normal((3, 7, 9, 4))
    gy_shape = F.max_pool2d(x, 1, stride).shape
    gy = rng.standard_normal(gy_shape)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    t = st.Tensor(x, requires_grad=True)
    y = (F.relu_max_pool2d if relu else F.max_pool2d)(t, 1, stride)
    y.backward(gy)
    expected = x[:, ::sh, ::sw]
    np.testing.assert_array_equal(y.data, np.maximum(expected, 0) if relu else expected)
    gx = np.zeros_like(x)
    gx[:, ::sh, ::sw] = gy * (expected > 0) if relu else gy
    np.testing.assert_array_equal(t.grad, gx)


# --------------------------------------------------------------------------- conv + BN (+ ReLU), inference
def _op_names_applied(fn):
    """Names of the op classes applied while fn() runs."""
    from striate.tensor import observe_ops

    names = []
    with observe_ops(lambda op, inputs, out: names.append(type(op).__name__)):
        out = fn()
    return names, out


def _eval_bn(channels, seed, dtype=np.float32):
    bn = nn.BatchNorm(num_features=channels)
    rng = np.random.default_rng(seed)
    bn.gamma.data[:] = rng.uniform(0.5, 2.0, channels)
    bn.beta.data[:] = rng.standard_normal(channels)
    bn.running_mean[:] = rng.standard_normal(channels)
    bn.running_var[:] = rng.uniform(0.5, 2.0, channels)
    bn.eval()
    return bn


CONV_CASES = [  # x shape, Conv2D kwargs: a Winograd, a strided (im2col) and a planar (3-channel) conv
    ((4, 12, 12, 16), dict(filters=16, kernel_size=3, padding="same")),
    ((4, 12, 12, 16), dict(filters=24, kernel_size=3, stride=2, padding="same")),
    ((4, 12, 12, 3), dict(filters=16, kernel_size=3, padding="same")),
]


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("x_shape, kwargs", CONV_CASES)
def test_conv_bn_relu_in_inference_is_one_conv(x_shape, kwargs, use_bias, relu, monkeypatch, assert_close):
    from striate.backend import winograd
    from striate.nn.fusion import conv_bn_relu

    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    x = np.random.default_rng(18).standard_normal(x_shape).astype(np.float32)
    conv = nn.Conv2D(**kwargs, use_bias=use_bias, rng=0)
    conv(st.Tensor(x))  # build
    if use_bias:
        conv.b.data[:] = np.random.default_rng(19).standard_normal(conv.filters)
    bn, act = _eval_bn(conv.filters, 20), (nn.ReLU() if relu else None)
    expected = bn(conv(st.Tensor(x)))
    expected = F.relu(expected) if relu else expected
    with st.no_grad():
        names, got = _op_names_applied(lambda: conv_bn_relu(conv, bn, act, st.Tensor(x)))
    assert names == ["Conv2dOp"]
    assert_close(got, expected.data)
    with st.enable_grad():  # recording: the layers one after another
        names, again = _op_names_applied(lambda: conv_bn_relu(conv, bn, act, st.Tensor(x)))
    assert "BatchNormOp" in names
    assert_close(again, expected.data)


def test_a_fused_conv_refuses_to_record_a_gradient():
    w = st.Tensor(np.ones((3, 3, 2, 2), np.float32), requires_grad=True)
    fused = (np.ones(2, np.float32), np.zeros(2, np.float32), True)
    with pytest.raises(RuntimeError, match="for inference"):
        F._conv2d(np.ones((1, 4, 4, 2), np.float32), w, None, 1, 1, 1, 1, fused)


def test_resnet_inference_runs_each_conv_with_its_batch_norm(assert_close):
    model = st.models.get("resnet20", rng=0)
    x = np.random.default_rng(21).standard_normal((4, 32, 32, 3)).astype(np.float32)
    model(st.Tensor(x))  # move the running statistics off their initial values
    model.eval()
    expected = model(st.Tensor(x)).data  # recording: unfused
    with st.no_grad():
        names, got = _op_names_applied(lambda: model(st.Tensor(x)))
    assert "BatchNormOp" not in names and names.count("Conv2dOp") == 19
    assert_close(got, expected)
    folded = st.nn.fold_batch_norm(model)  # Conv2D, Identity, ReLU: the ReLU goes into the conv too
    with st.no_grad():
        names, got = _op_names_applied(lambda: folded(st.Tensor(x)))
    assert "ReLUOp" not in names
    assert_close(got, expected, rtol=1e-4)


def test_sequential_inference_fuses_conv_bn_relu_triples(assert_close):
    model = st.models.vgg_cifar(11, rng=0)
    x = np.random.default_rng(22).standard_normal((2, 32, 32, 3)).astype(np.float32)
    model.eval()
    expected = model(st.Tensor(x)).data
    with st.no_grad():
        names, got = _op_names_applied(lambda: model(st.Tensor(x)))
    assert "BatchNormOp" not in names and "ReLUOp" not in names and names.count("Conv2dOp") == 8
    assert_close(got, expected)


def test_add_relu_compiled_and_numpy_agree_and_keep_nan(compiled_loops, split_everything):
    rng = np.random.default_rng(23)
    a, b = rng.standard_normal((5, 4, 4, 3)), rng.standard_normal((5, 4, 4, 3))
    a[0, 0, 0, 0] = np.nan
    gy = rng.standard_normal(a.shape)
    ta, tb = st.Tensor(a, requires_grad=True), st.Tensor(b, requires_grad=True)
    y = F.add_relu(ta, tb)
    y.backward(gy)
    expected = np.maximum(a + b, 0)
    np.testing.assert_array_equal(y.data, expected)  # (NaN where a + b is NaN, as NumPy's maximum)
    np.testing.assert_array_equal(ta.grad, np.where(expected > 0, gy, 0))
    np.testing.assert_array_equal(tb.grad, ta.grad)
