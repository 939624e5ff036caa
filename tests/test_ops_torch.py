"""Every op against PyTorch CPU: forward and every gradient, float64 (rtol 1e-9) and float32 (2e-4).

striate is NHWC / HWIO, PyTorch NCHW / OIHW. The torch leaves are created in striate's layout and
permuted *inside* torch's graph, so torch's ``.grad`` comes back in striate's layout and the two
are compared directly. Every comparison pulls back a random cotangent ``gy`` (not ``sum``), so
each output element and its adjoint are tested.

'same' padding follows Keras/TensorFlow (extra row/column bottom/right); it is emulated in torch
with an explicit, possibly asymmetric ``F.pad``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import striate as st
import striate.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
from torch_compare import compare  # noqa: E402
from torch_layout import explicit_pads, nchw, nhwc, oihw, torch_pad  # noqa: E402

DTYPES = [np.float64, np.float32]


# --------------------------------------------------------------------------- conv2d
CONV_PADDINGS = [0, 1, (1, 2), "valid", "same"]
CONV_GROUPS = ["1", "2", "depthwise"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("groups", CONV_GROUPS)
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("padding", CONV_PADDINGS, ids=str)
@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1)], ids=str)
def test_conv2d_matches_torch(stride, padding, dilation, groups, bias, dtype, rng, assert_close):
    n, h, w, c = 2, 9, 8, 4
    kh, kw = 3, 2  # non-square and even kernel width: 'same' needs odd total padding even at stride 1
    g = {"1": 1, "2": 2, "depthwise": c}[groups]
    o = 8  # depthwise: channel multiplier 2
    x = rng.standard_normal((n, h, w, c))
    wt = rng.standard_normal((kh, kw, c // g, o))
    b = rng.standard_normal(o) if bias else None
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    pads = explicit_pads(padding, (h, w), (kh, kw), (sh, sw), (dilation, dilation))

    def st_fn(x, w, b):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=g)

    def torch_fn(x, w, b):
        y = TF.conv2d(torch_pad(nchw(x), pads), oihw(w), b, stride=(sh, sw), dilation=dilation, groups=g)
        return nhwc(y)

    y, _ = compare(st_fn, torch_fn, [x, wt, b], assert_close, dtype)
    if padding == "same":
        assert y.shape[1:3] == (math.ceil(h / sh), math.ceil(w / sw))


def test_conv2d_same_stride2_puts_the_extra_padding_bottom_right():
    # Hand-computed: 4x4 input, 3x3 ones kernel, stride 2, 'same' -> 2x2 output, total padding
    # (2-1)*2 + 3 - 4 = 1 per axis, all of it bottom/right (TensorFlow's rule). So window (0, 0)
    # covers rows/cols 0..2 (not -1..1), and window (1, 1) covers rows/cols 2..3 plus a zero pad.
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y = F.conv2d(x, np.ones((3, 3, 1, 1)), stride=2, padding="same").data[0, :, :, 0]
    img = x[0, :, :, 0]
    expected = np.array([[img[0:3, 0:3].sum(), img[0:3, 2:4].sum()],
                         [img[2:4, 0:3].sum(), img[2:4, 2:4].sum()]])
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("h,kernel,stride", [(7, 3, 3), (8, 3, 3), (6, 4, 3), (5, 1, 2), (2, 5, 1)])
def test_conv2d_same_output_is_ceil_of_input_over_stride(h, kernel, stride, rng, assert_close):
    # including kernels larger than the input and stride-3 cases with odd total padding
    x = rng.standard_normal((1, h, h + 1, 2))
    w = rng.standard_normal((kernel, kernel, 2, 3))
    pads = explicit_pads("same", (h, h + 1), (kernel, kernel), (stride, stride))
    y, _ = compare(lambda x, w: F.conv2d(x, w, stride=stride, padding="same"),
                   lambda x, w: nhwc(TF.conv2d(torch_pad(nchw(x), pads), oihw(w), stride=stride)),
                   [x, w], assert_close, np.float64)
    assert y.shape == (1, math.ceil(h / stride), math.ceil((h + 1) / stride), 3)


def test_conv2d_one_by_one_and_full_size_kernels(rng, assert_close):
    x = rng.standard_normal((3, 5, 5, 6))
    for kernel in (1, 5):
        w = rng.standard_normal((kernel, kernel, 6, 4))
        compare(lambda x, w: F.conv2d(x, w), lambda x, w: nhwc(TF.conv2d(nchw(x), oihw(w))),
                [x, w], assert_close, np.float64)


def test_conv2d_without_weight_gradient(rng, assert_close):
    # only the input requires grad (a frozen layer): backward must still give the right gx
    x = rng.standard_normal((2, 6, 6, 3))
    w = rng.standard_normal((3, 3, 3, 5))
    xs = st.Tensor(x, requires_grad=True)
    F.conv2d(xs, w, padding=1, stride=2).backward(np.ones((2, 3, 3, 5)))
    xt = torch.tensor(x, requires_grad=True)
    nhwc(TF.conv2d(nchw(xt), oihw(torch.tensor(w)), padding=1, stride=2)).sum().backward()
    assert_close(xs.grad, xt.grad.numpy())


# --------------------------------------------------------------------------- pooling
POOL_CASES = [
    # (kernel, stride, padding)
    (2, None, 0),
    (3, 2, 0),        # AlexNet's overlapping pooling
    (3, 2, 1),
    (3, 2, "same"),
    (3, 1, "same"),
    (2, 2, "same"),
    (2, 1, 0),
    (3, 3, "valid"),
    ((2, 3), (1, 2), (1, 1)),
    ((3, 2), (2, 1), (1, 0)),
]


def _pool_reference(kind, x, kernel, stride, padding, hw):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    s = k if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    pads = explicit_pads(padding, hw, k, s)
    if kind == "max":
        return nhwc(TF.max_pool2d(torch_pad(nchw(x), pads, value=-math.inf), k, s))
    return nhwc(TF.avg_pool2d(torch_pad(nchw(x), pads), k, s))  # padded zeros count, as documented


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_torch(kind, kernel, stride, padding, dtype, rng, assert_close):
    hw = (7, 6)
    x = rng.standard_normal((2, *hw, 3))
    st_op = F.max_pool2d if kind == "max" else F.avg_pool2d
    compare(lambda x: st_op(x, kernel, stride, padding),
            lambda x: _pool_reference(kind, x, kernel, stride, padding, hw), [x], assert_close, dtype)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_symmetric_padding_matches_torch_native_padding(kind, rng, assert_close):
    # torch's own padding argument (not F.pad): max pads with -inf, avg counts pads (count_include_pad)
    x = rng.standard_normal((2, 7, 7, 3))
    st_op = F.max_pool2d if kind == "max" else F.avg_pool2d
    t_op = TF.max_pool2d if kind == "max" else TF.avg_pool2d
    compare(lambda x: st_op(x, 3, 2, 1), lambda x: nhwc(t_op(nchw(x), 3, 2, 1)), [x], assert_close, np.float64)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1)])
def test_max_pool_ties_send_gradient_to_first_max_like_torch(kernel, stride, assert_close):
    # all-equal input: every window is one big tie
    x = np.ones((1, 5, 5, 2))
    y, _ = compare(lambda x: F.max_pool2d(x, kernel, stride), lambda x: nhwc(TF.max_pool2d(nchw(x), kernel, stride)),
                   [x], assert_close, np.float64)
    # the documented rule, independently: each window's gradient goes to its top-left cell
    xs = st.Tensor(x, requires_grad=True)
    out = F.max_pool2d(xs, kernel, stride)
    out.backward(np.ones(out.shape))
    expected = np.zeros((5, 5))
    oh = out.shape[1]
    for i in range(oh):
        for j in range(oh):
            expected[i * stride, j * stride] += 1
    np.testing.assert_array_equal(xs.grad[0, :, :, 0], expected)
    np.testing.assert_array_equal(xs.grad[0, :, :, 1], expected)


def test_max_pool_tie_rule_is_row_major_within_the_window():
    # window 2x2 holding [[0, 5], [5, 5]]: the first max in row-major order is (0, 1)
    x = np.array([[0.0, 5.0], [5.0, 5.0]]).reshape(1, 2, 2, 1)
    xs = st.Tensor(x, requires_grad=True)
    F.max_pool2d(xs, 2).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(xs.grad[0, :, :, 0], [[0, 1], [0, 0]])
    xt = torch.tensor(x, requires_grad=True)
    TF.max_pool2d(nchw(xt), 2).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), xs.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_matches_torch(dtype, rng, assert_close):
    x = rng.standard_normal((3, 5, 4, 6))
    y, _ = compare(F.global_avg_pool2d, lambda x: TF.adaptive_avg_pool2d(nchw(x), 1).flatten(1),
                   [x], assert_close, dtype)
    assert y.shape == (3, 6)


# --------------------------------------------------------------------------- dense and shape ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_matches_torch(bias, dtype, rng, assert_close):
    x, w = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    b = rng.standard_normal(3) if bias else None
    compare(lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w.T, b), [x, w, b], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten_is_nhwc_order_and_matches_torch(dtype, rng, assert_close):
    x = rng.standard_normal((2, 3, 4, 5))
    y, _ = compare(F.flatten, lambda x: x.reshape(2, -1), [x], assert_close, dtype)
    # channels vary fastest: element (0, 0, 1, 2) sits at (1 * 5 + 2)
    assert y.data[0, 7] == x.astype(dtype)[0, 0, 1, 2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_concat_matches_torch(axis, dtype, rng, assert_close):
    shapes = [[2, 3, 3, 4] for _ in range(3)]
    for i, s in enumerate(shapes):
        s[axis] = i + 1
    arrays = [rng.standard_normal(s) for s in shapes]
    compare(lambda *xs: F.concat(list(xs), axis=axis), lambda *xs: torch.cat(xs, dim=axis), arrays,
            assert_close, dtype)


# --------------------------------------------------------------------------- activations
ACTIVATIONS = [
    ("relu", F.relu, TF.relu),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu),
    ("leaky_relu_0.2", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
    ("softmax", F.softmax, lambda x: TF.softmax(x, dim=-1)),
    ("softmax_axis1", lambda x: F.softmax(x, axis=1), lambda x: TF.softmax(x, dim=1)),
    ("log_softmax", F.log_softmax, lambda x: TF.log_softmax(x, dim=-1)),
    ("log_softmax_axis0", lambda x: F.log_softmax(x, axis=0), lambda x: TF.log_softmax(x, dim=0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["unit", "large"])
@pytest.mark.parametrize("name,st_fn,torch_fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_torch(name, st_fn, torch_fn, scale, dtype, rng, assert_close):
    x = rng.standard_normal((4, 3, 5)) * scale
    compare(st_fn, torch_fn, [x], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sigmoid", "cross_entropy"])
def test_large_logits_are_stable(name, dtype, assert_close):
    # exp(1000) overflows: a naive implementation returns nan/inf here
    x = np.array([[1000.0, 999.0, 990.0], [-1000.0, 0.0, 1000.0], [5.0, 5.0, 5.0]])
    fns = {
        "softmax": (F.softmax, lambda x: TF.softmax(x, dim=-1)),
        "log_softmax": (F.log_softmax, lambda x: TF.log_softmax(x, dim=-1)),
        "sigmoid": (F.sigmoid, torch.sigmoid),
        "cross_entropy": (lambda x: F.cross_entropy(x, np.array([1, 0, 2])),
                          lambda x: TF.cross_entropy(x, torch.tensor([1, 0, 2]))),
    }
    y, _ = compare(*fns[name], [x], assert_close, dtype)
    assert np.isfinite(y.data).all()


# --------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_training_mask_statistics_and_gradient(rate, dtype):
    x = st.Tensor(np.full((200, 500), 2.0, dtype), requires_grad=True)
    y = F.dropout(x, rate, training=True, rng=np.random.default_rng(0))
    assert y.dtype == dtype
    kept = y.data != 0
    n = kept.size
    # fraction kept is Binomial(n, 1 - rate)/n: allow 5 standard deviations
    assert abs(kept.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / n)
    # survivors are scaled by 1 / (1 - rate) (inverted dropout), so the mean is preserved
    np.testing.assert_allclose(y.data[kept], 2.0 / (1 - rate), rtol=1e-6)
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    y.backward(gy)
    np.testing.assert_allclose(x.grad, gy * kept / (1 - rate), rtol=1e-6)


def test_dropout_matches_torch_in_distribution():
    # the RNGs differ, so compare what a mask does, not which mask: same kept fraction and scale
    x = np.ones((400, 400))
    ys = F.dropout(x, 0.3, True, rng=0).data
    yt = TF.dropout(torch.tensor(x), 0.3, training=True).numpy()
    assert set(np.unique(ys)) == set(np.unique(yt)) == {0.0, 1 / 0.7}
    assert abs((ys != 0).mean() - (yt != 0).mean()) < 0.01
    assert abs(ys.mean() - 1.0) < 0.01


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_dropout_eval_is_identity(rate, rng):
    x = st.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = F.dropout(x, rate, training=False)
    np.testing.assert_array_equal(y.data, x.data)
    y.backward(np.full((3, 4), 2.0))
    np.testing.assert_array_equal(x.grad, np.full((3, 4), 2.0))
    np.testing.assert_array_equal(F.dropout(x, 0.0, training=True).data, x.data)


def test_dropout_same_seed_same_mask_and_fresh_draws_differ():
    x = np.ones((50, 50))
    a = F.dropout(x, 0.5, True, rng=7).data
    b = F.dropout(x, 0.5, True, rng=7).data
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(7)
    assert (F.dropout(x, 0.5, True, rng=g).data != F.dropout(x, 0.5, True, rng=g).data).any()


# --------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 6)], ids=["nhwc", "dense"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_matches_torch(training, shape, dtype, rng, assert_close):
    c = shape[-1]
    x = rng.standard_normal(shape) * 3 + 1.5
    gamma, beta = rng.uniform(0.5, 2.0, c), rng.standard_normal(c)
    rm0, rv0 = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
    rm_s, rv_s = rm0.copy(), rv0.copy()
    rm_t, rv_t = torch.tensor(rm0), torch.tensor(rv0)
    to_torch_layout = (lambda t: t.permute(0, 3, 1, 2)) if len(shape) == 4 else (lambda t: t)
    from_torch_layout = (lambda t: t.permute(0, 2, 3, 1)) if len(shape) == 4 else (lambda t: t)

    compare(lambda x, g, b: F.batch_norm(x, g, b, rm_s, rv_s, training, momentum=0.1, eps=1e-5),
            lambda x, g, b: from_torch_layout(TF.batch_norm(to_torch_layout(x), rm_t, rv_t, g, b, training, 0.1, 1e-5)),
            [x, gamma, beta], assert_close, dtype)
    # running statistics: updated in place in training (unbiased variance), untouched in eval
    assert_close(rm_s, rm_t.numpy(), dtype=dtype, what="running_mean")
    assert_close(rv_s, rv_t.numpy(), dtype=dtype, what="running_var")
    if not training:
        np.testing.assert_array_equal(rm_s, rm0)
        np.testing.assert_array_equal(rv_s, rv0)
    else:
        assert not np.allclose(rm_s, rm0)


def test_batch_norm_running_stats_over_several_steps_with_momentum(rng, assert_close):
    c = 3
    rm_s, rv_s = np.zeros(c), np.ones(c)
    rm_t, rv_t = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    g, b = np.ones(c), np.zeros(c)
    for step in range(4):
        x = rng.standard_normal((6, 2, 2, c)) * (step + 1) + step
        F.batch_norm(x, g, b, rm_s, rv_s, True, momentum=0.3)
        TF.batch_norm(torch.tensor(x).permute(0, 3, 1, 2), rm_t, rv_t, torch.tensor(g), torch.tensor(b), True, 0.3)
    assert_close(rm_s, rm_t.numpy())
    assert_close(rv_s, rv_t.numpy())


# --------------------------------------------------------------------------- local response norm
LRN_CASES = [
    # (size, alpha, beta, k): AlexNet defaults, then stronger settings where the
    # normalisation actually bends the output (alpha=1e-4 is nearly the identity)
    (5, 1e-4, 0.75, 2.0),
    (5, 1.0, 0.75, 2.0),
    (3, 0.5, 0.75, 1.0),
    (4, 0.5, 0.6, 1.0),
    (2, 1.0, 1.0, 1.5),
    (1, 0.3, 0.75, 1.0),
    (7, 2.0, 0.5, 1.0),
    (9, 1.0, 0.75, 2.0),  # window wider than the 7 channels
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,alpha,beta,k", LRN_CASES, ids=str)
def test_local_response_norm_matches_torch(size, alpha, beta, k, dtype, rng, assert_close):
    x = rng.standard_normal((2, 3, 4, 7)) * 2
    compare(lambda x: F.local_response_norm(x, size, alpha, beta, k),
            lambda x: nhwc(TF.local_response_norm(nchw(x), size, alpha, beta, k)), [x], assert_close, dtype)


def test_local_response_norm_defaults_are_alexnet(rng, assert_close):
    x = rng.standard_normal((1, 2, 2, 8)) * 10
    compare(F.local_response_norm, lambda x: nhwc(TF.local_response_norm(nchw(x), 5, 1e-4, 0.75, 2.0)),
            [x], assert_close, np.float64)


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("n,k", [(6, 4), (1, 10), (9, 2)])
def test_cross_entropy_matches_torch(n, k, smoothing, dtype, rng, assert_close):
    z = rng.standard_normal((n, k)) * 3
    labels = rng.integers(0, k, n)
    compare(lambda z: F.cross_entropy(z, labels, label_smoothing=smoothing),
            lambda z: TF.cross_entropy(z, torch.tensor(labels), label_smoothing=smoothing), [z], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 3, 2)], ids=str)
def test_mse_loss_matches_torch(shape, dtype, rng, assert_close):
    compare(F.mse_loss, TF.mse_loss, [rng.standard_normal(shape), rng.standard_normal(shape)], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["unit", "large"])
def test_binary_cross_entropy_with_logits_matches_torch(scale, dtype, rng, assert_close):
    z = rng.standard_normal((6, 3)) * scale
    t = rng.uniform(0, 1, (6, 3))
    t[0] = [0.0, 1.0, 1.0]  # hard targets too
    y, _ = compare(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, [z, t],
                   assert_close, dtype)
    assert np.isfinite(y.data)


# --------------------------------------------------------------------------- a whole forward/backward
@pytest.mark.parametrize("dtype", DTYPES)
def test_small_network_end_to_end_matches_torch(dtype, rng, assert_close):
    """conv -> bn -> relu -> lrn -> maxpool -> conv(groups) -> avgpool -> flatten -> linear -> CE."""
    x = rng.standard_normal((4, 8, 8, 3))
    # conv1 has no bias: batch norm right after it cancels a bias, whose gradient is then pure
    # rounding noise (~1e-18) that no relative tolerance can judge.
    w1 = rng.standard_normal((3, 3, 3, 6)) * 0.3
    g, be = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6)
    w2 = rng.standard_normal((3, 3, 3, 6)) * 0.3
    wl, bl = rng.standard_normal((24, 5)) * 0.3, rng.standard_normal(5)
    labels = np.array([0, 4, 2, 1])

    def st_net(x, w1, g, be, w2, wl, bl):
        h = F.conv2d(x, w1, padding="same")
        h = F.relu(F.batch_norm(h, g, be, None, None, True))
        h = F.max_pool2d(F.local_response_norm(h, 3, 0.1), 3, 2, padding="same")
        h = F.avg_pool2d(F.conv2d(h, w2, stride=1, padding=1, groups=2), 2)
        return F.cross_entropy(F.linear(F.flatten(h), wl, bl), labels)

    def torch_net(x, w1, g, be, w2, wl, bl):
        h = TF.conv2d(nchw(x), oihw(w1), padding=1)
        h = TF.relu(TF.batch_norm(h, None, None, g, be, True))
        pads = explicit_pads("same", (8, 8), (3, 3), (2, 2))
        h = TF.max_pool2d(torch_pad(TF.local_response_norm(h, 3, 0.1, 0.75, 2.0), pads, -math.inf), 3, 2)
        h = TF.avg_pool2d(TF.conv2d(h, oihw(w2), padding=1, groups=2), 2)
        return TF.cross_entropy(TF.linear(nhwc(h).reshape(4, -1), wl.T, bl), torch.tensor(labels))

    compare(st_net, torch_net, [x, w1, g, be, w2, wl, bl], assert_close, dtype)

