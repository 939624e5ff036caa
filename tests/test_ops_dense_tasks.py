"""Ops for localisation, detection and segmentation without PyTorch: float64 finite-difference
gradient checks, the identities that define them (a transposed convolution is the conv's input
gradient) and what their layers promise. The comparisons with PyTorch are in
test_ops_dense_tasks_torch.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F


def _randn(rng, *shape):
    return rng.standard_normal(shape)


# --------------------------------------------------------------------------- conv_transpose2d
ADJOINT_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1),
    dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2)),
    dict(stride=3, padding=(2, 1, 0, 1)),  # explicit (top, bottom, left, right)
    dict(stride=2, padding=1, groups=2),
    dict(stride=2, padding=0, groups=4),  # depthwise
    dict(stride=1, padding=2, dilation=2, groups=2),
]


@pytest.mark.parametrize("kwargs", ADJOINT_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("hw", [(9, 8), (10, 11)], ids=str)
def test_conv_transpose2d_is_the_input_gradient_of_conv2d(kwargs, hw, rng):
    # conv2d maps several input sizes to one output size; output_padding picks the input's
    g = kwargs.get("groups", 1)
    x = st.Tensor(_randn(rng, 2, *hw, 4), requires_grad=True)
    w = _randn(rng, 3, 2, 4 // g, 8)
    y = F.conv2d(x, w, **kwargs)
    gy = _randn(rng, *y.shape)
    y.backward(gy)
    natural = F.conv_transpose2d(gy, w, **kwargs).shape[1:3]
    output_padding = (hw[0] - natural[0], hw[1] - natural[1])
    gx = F.conv_transpose2d(gy, w, output_padding=output_padding, **kwargs)
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx.data, x.grad, rtol=1e-12, atol=1e-12)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(rng):
    # <conv(x), y> == <x, conv_transpose(y)> for the same weight and geometry
    kwargs = dict(stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2)
    x = _randn(rng, 2, 11, 13, 4)
    w = _randn(rng, 3, 3, 2, 6)
    cx = F.conv2d(x, w, **kwargs).data
    y = _randn(rng, *cx.shape)
    ty = F.conv_transpose2d(y, w, output_padding=(0, 2), **kwargs).data
    assert ty.shape == x.shape
    assert np.isclose((cx * y).sum(), (x * ty).sum(), rtol=1e-12)


CT_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2)),
    dict(stride=1, padding=1, output_padding=1, dilation=2),  # output_padding below the dilation
    dict(stride=2, padding=(0, 1, 1, 0), groups=2),
    dict(stride=3, padding=1, groups=4),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kwargs", CT_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_conv_transpose2d_gradcheck(kwargs, bias, rng):
    g = kwargs.get("groups", 1)
    x = _randn(rng, 2, 3, 4, 4)
    w = _randn(rng, 3, 2, 6 // g if g != 4 else 1, 4)
    c_out = w.shape[2] * g
    inputs = [x, w] + ([_randn(rng, c_out)] if bias else [])
    assert st.gradcheck(lambda x, w, *b: F.conv_transpose2d(x, w, *b, **kwargs), inputs)


def test_conv_transpose2d_output_size_formula(rng):
    # H = (h - 1) * s - pt - pb + d * (k - 1) + output_padding + 1
    x = np.zeros((1, 7, 5, 3))
    w = np.zeros((4, 3, 2, 3))
    y = F.conv_transpose2d(x, w, stride=(3, 2), padding=(2, 1), output_padding=(2, 1), dilation=(1, 2))
    assert y.shape == (1, (7 - 1) * 3 - 4 + 3 + 2 + 1, (5 - 1) * 2 - 2 + 2 * 2 + 1 + 1, 2)


def test_conv_transpose2d_keeps_float32(rng):
    x = _randn(rng, 1, 3, 3, 2).astype(np.float32)
    w = _randn(rng, 2, 2, 3, 2).astype(np.float32)
    assert F.conv_transpose2d(x, w, stride=2).dtype == np.float32


def test_conv_transpose2d_errors():
    x = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv_transpose2d: channel mismatch between input and weights: x has 3 "
                                         r"channels, but w of shape \(2, 2, 4, 5\)"):
        F.conv_transpose2d(x, np.zeros((2, 2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"output_padding must be smaller than the stride or the dilation along "
                                         r"each axis\. Received: output_padding=2, stride=\(2, 2\)"):
        F.conv_transpose2d(x, np.zeros((2, 2, 4, 3), np.float32), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"the padding is larger than the output.*output would be \(-1, -1\)"):
        F.conv_transpose2d(x, np.zeros((2, 2, 4, 3), np.float32), padding=3)
    with pytest.raises(ValueError, match=r"input channels must be evenly divisible by groups\. Received: groups=2"):
        F.conv_transpose2d(x, np.zeros((2, 2, 4, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match=r"bias must have shape \(out_channels,\) = \(4,\)\. Received: b.shape=\(3,\)"):
        F.conv_transpose2d(x, np.zeros((2, 2, 4, 3), np.float32), np.zeros(3, np.float32))


# --------------------------------------------------------------------------- ConvTranspose2D
@pytest.mark.parametrize("s", [2, 3, 4])
def test_bilinear_conv_transpose_upsamples_a_constant_to_a_constant_interior(s):
    # kernel 2s, stride s, padding s // 2: FCN's initial upsampling by s
    up = st.nn.ConvTranspose2D(3, 2 * s, stride=s, padding=s // 2, kernel_initializer="bilinear")
    x = np.full((2, 5, 6, 3), 0.7, np.float32)
    x[:, :, :, 1] = -1.5  # each channel keeps its own value: no mixing
    y = up(st.Tensor(x)).data
    assert y.shape[1] >= 5 * s and y.shape[2] >= 6 * s
    interior = y[:, s:-s, s:-s]
    np.testing.assert_allclose(interior[..., 0], 0.7, rtol=1e-6)
    np.testing.assert_allclose(interior[..., 1], -1.5, rtol=1e-6)
    np.testing.assert_allclose(interior[..., 2], 0.7, rtol=1e-6)
    assert abs(y[0, 0, 0, 0]) < 0.7  # the border sees part of the kernel only


def test_bilinear_kernel_taps():
    # size 4 (factor 2): 1 - |t - 1.5| / 2; size 3 (factor 2): 1 - |t - 1| / 2
    w = st.nn.init.get("bilinear")((4, 3, 1, 2), np.float64)
    expected = np.outer([0.25, 0.75, 0.75, 0.25], [0.5, 1.0, 0.5])
    np.testing.assert_allclose(w[:, :, 0, 0], expected)
    np.testing.assert_allclose(w[:, :, 0, 1], expected)


def test_bilinear_conv_transpose_interpolates_a_ramp_linearly():
    # a linear ramp stays linear inside (bilinear interpolation reproduces affine images)
    up = st.nn.ConvTranspose2D(1, 4, stride=2, padding=1, kernel_initializer="bilinear", use_bias=False)
    ramp = np.arange(8.0)[None, :, None, None] * np.ones((1, 8, 8, 1))
    y = up(st.Tensor(ramp)).data[0, 2:-2, 2:-2, 0]
    np.testing.assert_allclose(np.diff(y, axis=0), 0.5)
    np.testing.assert_allclose(np.diff(y, axis=1), 0.0, atol=1e-12)


def test_conv_transpose_layer_shapes_and_grouped_weights():
    layer = st.nn.ConvTranspose2D(6, 3, stride=2, padding=1, output_padding=1, groups=2)
    y = layer(st.Tensor(np.zeros((2, 5, 4, 4), np.float32)))
    assert y.shape == (2, 10, 8, 6)
    assert layer.w.shape == (3, 3, 3, 4) and layer.b.shape == (6,)
    assert len(list(layer.parameters())) == 2


def test_conv_transpose_layer_errors():
    with pytest.raises(ValueError, match=r"filters must equal the input channels\. Received: filters=4, input channels=3"):
        st.nn.ConvTranspose2D(4, 4, stride=2, kernel_initializer="bilinear")(np.zeros((1, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"filters must be evenly divisible by the number of groups"):
        st.nn.ConvTranspose2D(5, 3, groups=2)


# --------------------------------------------------------------------------- upsample
UPSAMPLE_CASES = [
    dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=1.7), dict(scale_factor=(0.6, 2.5)),
    dict(size=(7, 4)), dict(size=3), dict(size=(2, 9)),
]


@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("kwargs", UPSAMPLE_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_upsample_gradcheck(kwargs, mode, align_corners, rng):
    x = _randn(rng, 2, 4, 5, 2)
    assert st.gradcheck(lambda x: F.upsample(x, mode=mode, align_corners=align_corners, **kwargs), [x])


def test_upsample_nearest_integer_scale_repeats_pixels(rng):
    x = _randn(rng, 2, 3, 4, 2)
    y = F.upsample(x, scale_factor=(2, 3)).data
    np.testing.assert_array_equal(y, x.repeat(2, axis=1).repeat(3, axis=2))


def test_upsample_bilinear_align_corners_keeps_the_corners(rng):
    x = _randn(rng, 1, 4, 5, 3)
    y = F.upsample(x, size=(9, 13), mode="bilinear", align_corners=True).data
    for i, j in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        np.testing.assert_allclose(y[0, i, j], x[0, i, j], rtol=1e-14)


def test_upsample_same_size_is_identity(rng):
    x = _randn(rng, 2, 4, 5, 3)
    for mode in ("nearest", "bilinear"):
        np.testing.assert_allclose(F.upsample(x, size=(4, 5), mode=mode).data, x, rtol=1e-15)


def test_bilinear_conv_transpose_equals_bilinear_upsample_inside(rng):
    # FCN's stride-2 bilinear kernel (taps 1/4, 3/4, 3/4, 1/4) is 2x bilinear interpolation with
    # align_corners=False away from the border
    x = _randn(rng, 1, 6, 7, 2)
    up = st.nn.ConvTranspose2D(2, 4, stride=2, padding=1, kernel_initializer="bilinear", use_bias=False)
    y = up(st.Tensor(x)).data
    z = F.upsample(x, scale_factor=2, mode="bilinear").data
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], z[:, 1:-1, 1:-1], rtol=1e-12, atol=1e-12)


def test_upsample_layer_and_errors():
    layer = st.nn.Upsample(scale_factor=2, mode="bilinear")
    assert layer(st.Tensor(np.zeros((1, 8, 8, 3), np.float32))).shape == (1, 16, 16, 3)
    assert layer(st.Tensor(np.zeros((1, 8, 8, 3), np.float32))).dtype == np.float32
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match=r"upsample: give exactly one of scale_factor and size\. "
                                         r"Received: scale_factor=2, size=\(3, 3\)"):
        F.upsample(x, scale_factor=2, size=(3, 3))
    with pytest.raises(ValueError, match=r"upsample: mode must be 'nearest' or 'bilinear'\. Received: mode='bicubic'"):
        F.upsample(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match=r"align_corners applies to mode='bilinear' only"):
        F.upsample(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"upsample: the output would be empty: floor\(\(4, 4\) \* \(0.2, 0.2\)\)"):
        F.upsample(x, scale_factor=0.2)
    with pytest.raises(ValueError, match=r"scale_factor must be a number > 0 or a pair of them\. Received: scale_factor=-1"):
        F.upsample(x, scale_factor=-1)
    with pytest.raises(ValueError, match=r"Upsample: give exactly one of scale_factor and size"):
        st.nn.Upsample()


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
def test_smooth_l1_and_huber_gradcheck(beta, reduction, rng):
    # differences kept away from +-beta and 0, where the loss has a kink
    d = rng.uniform(0.1, 2.5, (3, 4)) * rng.choice([-1, 1], (3, 4))
    d[np.abs(np.abs(d) - beta) < 0.05] += 0.1
    pred = _randn(rng, 3, 4)
    assert st.gradcheck(lambda p, t: F.smooth_l1_loss(p, t, beta, reduction), [pred, pred - d])
    if beta:
        assert st.gradcheck(lambda p, t: F.huber_loss(p, t, beta, reduction), [pred, pred - d])


def test_huber_is_delta_times_smooth_l1(rng):
    p, t = _randn(rng, 20), _randn(rng, 20) * 3
    for delta in (0.3, 1.0, 2.0):
        np.testing.assert_allclose(F.huber_loss(p, t, delta, "none").data,
                                   delta * F.smooth_l1_loss(p, t, delta, "none").data, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.75, 1.0), (0.25, 1.5), (0.25, 3.0)])
def test_sigmoid_focal_loss_gradcheck(alpha, gamma, reduction, rng):
    logits = _randn(rng, 4, 3) * 3
    targets = rng.uniform(0, 1, (4, 3))  # soft targets exercise the target gradient everywhere
    assert st.gradcheck(lambda z, t: F.sigmoid_focal_loss(z, t, alpha, gamma, reduction), [logits, targets])


def test_sigmoid_focal_loss_follows_its_formula(rng):
    z = _randn(rng, 50) * 4
    t = (rng.random(50) < 0.3).astype(float)
    p = 1 / (1 + np.exp(-z))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    expected = (0.25 * t + 0.75 * (1 - t)) * (1 - p_t) ** 2 * ce
    np.testing.assert_allclose(F.sigmoid_focal_loss(z, t).data, expected, rtol=1e-10)
    # gamma = 0 and no alpha: plain binary cross-entropy
    np.testing.assert_allclose(F.sigmoid_focal_loss(z, t, -1, 0, "mean").data,
                               F.binary_cross_entropy_with_logits(z, t).data, rtol=1e-12)


def _heatmap(rng, shape):
    """A target heatmap: values in [0, 1), some exactly 1 (centres), some 0."""
    y = rng.random(shape) * (rng.random(shape) < 0.7)
    y[rng.random(shape) < 0.15] = 1.0
    return y


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("alpha,beta", [(2.0, 4.0), (0.0, 0.0), (1.5, 0.5), (3.0, 1.0)])
def test_heatmap_focal_loss_gradcheck(alpha, beta, reduction, rng):
    logits, heatmap = rng.standard_normal((2, 3, 4, 3)) * 3, _heatmap(rng, (2, 3, 4, 3))
    assert st.gradcheck(lambda z: F.heatmap_focal_loss(z, heatmap, alpha, beta, reduction), [logits])
    # the heatmap's gradient, where a small step keeps it inside [0, 1) (a centre's 1 is a label)
    inside = 0.05 + 0.9 * rng.random((2, 3, 4, 3))
    assert st.gradcheck(lambda z, y: F.heatmap_focal_loss(z, y, alpha, beta, reduction), [logits, inside])


def test_heatmap_focal_loss_follows_its_formula(rng):
    z, y = rng.standard_normal((3, 5, 4)) * 3, _heatmap(rng, (3, 5, 4))
    p = 1 / (1 + np.exp(-z))
    expected = np.where(y == 1, -(1 - p) ** 2 * np.log(p), -(1 - y) ** 4 * p ** 2 * np.log(1 - p))
    np.testing.assert_allclose(F.heatmap_focal_loss(z, y, reduction="none").data, expected, rtol=1e-10)
    np.testing.assert_allclose(F.heatmap_focal_loss(z, y).data, expected.sum(), rtol=1e-10)
    # saturated logits: finite loss and gradient
    z = st.Tensor(np.array([-800.0, 800.0, -800.0, 800.0]), requires_grad=True)
    loss = F.heatmap_focal_loss(z, np.array([1.0, 1.0, 0.0, 0.5]))
    loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(z.grad).all()


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 5, 8, 2.5, 9, 0.5, -1])
def test_loss_power_by_squaring_equals_numpy_power(exponent, rng):
    from striate.ops.loss import power
    a = rng.random((4, 5)).astype(np.float32) + 0.1
    np.testing.assert_allclose(power(a, exponent), a ** exponent, rtol=1e-6)
    assert power(a, exponent).dtype == np.float32


def test_heatmap_focal_loss_errors():
    with pytest.raises(ValueError, match=r"heatmap_focal_loss: heatmap values must lie in \[0, 1\]. Received values "
                                         r"from 0.0 to 2.0."):
        F.heatmap_focal_loss(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"heatmap_focal_loss: logits and heatmap must have the same shape"):
        F.heatmap_focal_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"heatmap_focal_loss: beta must lie in \[0.0, inf\)"):
        F.heatmap_focal_loss(np.zeros(3), np.zeros(3), beta=-1)


def test_sigmoid_focal_loss_saturated_logits_stay_finite():
    z = st.Tensor(np.array([-800.0, 800.0, 40.0, -40.0]), requires_grad=True)
    loss = F.sigmoid_focal_loss(z, np.array([0.0, 1.0, 0.0, 1.0]), reduction="sum")
    loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(z.grad).all()


CE_CASES = [dict(), dict(ignore_index=255), dict(weight=True), dict(weight=True, ignore_index=255),
            dict(weight=True, ignore_index=255, label_smoothing=0.2), dict(ignore_index=255, label_smoothing=0.1)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kwargs", CE_CASES, ids=lambda d: ",".join(d) or "plain")
def test_per_pixel_cross_entropy_gradcheck(kwargs, reduction, rng):
    logits = _randn(rng, 2, 3, 2, 4)
    labels = rng.integers(0, 4, (2, 3, 2))
    labels[0, 1] = 255 if "ignore_index" in kwargs else labels[0, 1]
    kw = dict(kwargs, weight=rng.uniform(0.2, 2.0, 4)) if "weight" in kwargs else kwargs
    assert st.gradcheck(lambda z: F.cross_entropy(z, labels, reduction=reduction, **kw), [logits])


def test_cross_entropy_weighted_mean_against_numpy(rng):
    z = _randn(rng, 2, 5, 5, 3)
    y = rng.integers(0, 3, (2, 5, 5))
    y[1, :2] = 255
    w = np.array([0.2, 1.0, 3.0])
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = y != 255
    yk = y[keep]
    nll = -np.take_along_axis(logp[keep], yk[:, None], 1)[:, 0]
    expected = (w[yk] * nll).sum() / w[yk].sum()
    np.testing.assert_allclose(F.cross_entropy(z, y, weight=w, ignore_index=255).data, expected, rtol=1e-12)
    per_pixel = F.cross_entropy(z, y, weight=w, ignore_index=255, reduction="none").data
    assert per_pixel.shape == (2, 5, 5) and (per_pixel[1, :2] == 0).all()


def test_cross_entropy_all_ignored_is_zero_with_zero_gradient(rng):
    z = st.Tensor(_randn(rng, 1, 2, 2, 3), requires_grad=True)
    loss = F.cross_entropy(z, np.full((1, 2, 2), 255), ignore_index=255)
    loss.backward()
    assert loss.data == 0 and (z.grad == 0).all()


def test_cross_entropy_new_argument_errors():
    z = np.zeros((2, 4, 4, 3), np.float32)
    bad = np.zeros((2, 4, 4), int)
    bad[1, 2, 3] = 254
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\) for 3 classes \(or ignore_index=255\)\. "
                                         r"Received: min=0, max=254"):
        F.cross_entropy(z, bad, ignore_index=255)
    with pytest.raises(ValueError, match=r"labels' shape must be logits\.shape\[:-1\] = \(2, 4, 4\)"):
        F.cross_entropy(z, np.zeros((2, 4), int))
    with pytest.raises(ValueError, match=r"weight must hold one finite weight >= 0 per class, shape \(3,\)"):
        F.cross_entropy(z, np.zeros((2, 4, 4), int), weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"reduction must be 'mean', 'sum' or 'none'\. Received: reduction='avg'"):
        F.cross_entropy(z, np.zeros((2, 4, 4), int), reduction="avg")


def ref_dice(probs, labels, smooth, ignore=None):
    """Soft Dice, written out with loops over classes."""
    k = probs.shape[-1]
    keep = np.ones(labels.shape, bool) if ignore is None else labels != ignore
    scores = []
    for c in range(k):
        p = probs[..., c][keep]
        q = (labels[keep] == c).astype(float)
        scores.append((2 * (p * q).sum() + smooth) / (p.sum() + q.sum() + smooth))
    return 1 - np.mean(scores)


@pytest.mark.parametrize("smooth", [1.0, 1e-3])
def test_dice_loss_against_numpy_and_gradcheck(smooth, rng):
    z = _randn(rng, 2, 3, 4, 3)
    y = rng.integers(0, 3, (2, 3, 4))
    y[0, 0] = 255
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(F.dice_loss(z, y, smooth, ignore_index=255).data, ref_dice(probs, y, smooth, 255),
                               rtol=1e-12)
    np.testing.assert_allclose(F.dice_loss(probs, y, smooth, from_logits=False, ignore_index=255).data,
                               ref_dice(probs, y, smooth, 255), rtol=1e-12)
    assert st.gradcheck(lambda z: F.dice_loss(z, y, smooth, ignore_index=255), [z])
    assert st.gradcheck(lambda p: F.dice_loss(p, y, smooth, from_logits=False, ignore_index=255), [probs])


def test_dice_loss_of_a_perfect_prediction_is_zero():
    y = np.array([[0, 1], [2, 2]])[None]
    probs = np.eye(3)[y]  # one-hot, (1, 2, 2, 3)
    assert F.dice_loss(probs, y, from_logits=False).data == pytest.approx(0.0, abs=1e-12)
    assert F.dice_loss(probs, y, from_logits=False).dtype == np.float64


def test_loss_argument_errors():
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must lie in \[0.0, inf\)\. Received: beta=-1"):
        F.smooth_l1_loss(a, a, beta=-1)
    with pytest.raises(ValueError, match=r"huber_loss: delta must lie in \(0.0, inf\)\. Received: delta=0"):
        F.huber_loss(a, a, delta=0)
    with pytest.raises(ValueError, match=r"sigmoid_focal_loss: gamma must lie in \[0.0, inf\)"):
        F.sigmoid_focal_loss(a, a, gamma=-2)
    with pytest.raises(ValueError, match=r"dice_loss: expected logits \(\.\.\., num_classes\) and integer labels"):
        F.dice_loss(a, np.zeros(3))


# --------------------------------------------------------------------------- max pooling switches, unpooling
def _distinct(rng, *shape):
    """Values at least 0.05 apart: no ties, and no maximum changes under a 1e-6 nudge."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025 + 0.0123).reshape(shape)


SWITCH_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=(1, 2)),
                dict(kernel_size=3, stride=2, dilation=2), dict(kernel_size=2, ceil_mode=True), dict(kernel_size=1, stride=2)]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("kwargs", SWITCH_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_switches_point_at_each_window_maximum(kwargs, fast, rng):
    x = _distinct(rng, 2, 7, 9, 3).astype(np.float32)
    from striate.backend import reference_only
    import contextlib
    with (contextlib.nullcontext() if fast else reference_only()):
        y, idx = F.max_pool2d(x, return_indices=True, **kwargs)
    assert idx.shape == y.shape and idx.dtype == np.int64
    np.testing.assert_array_equal(y.data, F.max_pool2d(x, **kwargs).data)  # the signature without indices still works
    # the value at each switch is the pooled value: gather from the (n, h*w, c) planes
    planes = x.reshape(2, 7 * 9, 3)
    np.testing.assert_array_equal(np.take_along_axis(planes, idx.reshape(2, -1, 3), axis=1).reshape(y.shape), y.data)


def test_switches_take_the_first_maximum_on_ties():
    x = np.ones((1, 2, 2, 1))  # all four cells tie: the top-left wins, as the gradient's rule
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.ravel().tolist() == [0]


@pytest.mark.parametrize("kwargs", SWITCH_CASES[:4], ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_max_unpool2d_gradcheck(kwargs, rng):
    x = _distinct(rng, 2, 6, 8, 2)
    pool = {k: v for k, v in kwargs.items() if k != "dilation"}
    y, idx = F.max_pool2d(x, return_indices=True, **pool)
    unpool = {k: v for k, v in pool.items() if k != "ceil_mode"}
    assert st.gradcheck(lambda y: F.max_unpool2d(y, idx, output_size=(6, 8), **unpool), [y.data.copy()])
    # pooling then unpooling, as one function of x
    assert st.gradcheck(lambda x: F.max_unpool2d(*F.max_pool2d(x, return_indices=True, **pool), output_size=(6, 8),
                                                 **unpool), [x])


def test_max_unpool2d_puts_each_maximum_back_in_place(rng):
    x = _distinct(rng, 1, 4, 6, 2)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    z = F.max_unpool2d(y, idx, 2).data
    assert z.shape == x.shape
    window_max = x.reshape(1, 2, 2, 3, 2, 2).max(axis=(2, 4))  # (n, oh, ow, c)
    kept = z != 0
    assert kept.sum() == y.size  # one survivor per window
    np.testing.assert_array_equal(z[kept], x[kept])
    np.testing.assert_array_equal(np.sort(z[kept]), np.sort(window_max.ravel()))


def test_max_unpool2d_errors(rng):
    y, idx = F.max_pool2d(np.zeros((1, 7, 7, 1)), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"max_unpool2d: indices must be integers of x's shape \(1, 3, 3, 1\)"):
        F.max_unpool2d(y, idx[:, :2], 2)
    idx[0, 2, 2, 0] = 48  # the last cell of the 7x7 input: outside the default 6x6 output
    with pytest.raises(ValueError, match=r"indices must lie in \[0, h \* w\) of the output \(h, w\) = \(6, 6\).*"
                                         r"Give output_size"):
        F.max_unpool2d(y, idx, 2)
    assert F.max_unpool2d(y, idx, 2, output_size=(7, 7)).shape == (1, 7, 7, 1)


# --------------------------------------------------------------------------- the pieces together
def _squares(rng, n, size=16):
    """Images of a noisy background with one square of class 1 or 2 (brighter for 2); masks with
    the top row ignored (255)."""
    x = rng.uniform(0, 0.3, (n, size, size, 1)).astype(np.float32)
    y = np.zeros((n, size, size), np.int64)
    for i in range(n):
        top, left = rng.integers(0, size - 6, 2)
        side, cls = rng.integers(4, 7), rng.integers(1, 3)
        x[i, top:top + side, left:left + side, 0] += 0.5 * cls
        y[i, top:top + side, left:left + side] = cls
    y[:, 0, :] = 255
    return x, y


def test_a_tiny_fcn_learns_to_segment_squares():
    # conv, pool, 1x1 class scores, bilinear-initialised 2x transposed conv; weighted per-pixel
    # cross-entropy with an ignore index: the segmentation pieces train together
    rng = np.random.default_rng(0)
    model = st.nn.Sequential(st.nn.Conv2D(8, 3, padding="same", activation="relu", rng=0), st.nn.MaxPool2D(2),
                             st.nn.Conv2D(3, 1, rng=1),
                             st.nn.ConvTranspose2D(3, 4, stride=2, padding=1, kernel_initializer="bilinear"))
    model.build((16, 16, 1))
    opt = st.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(60):
        x, y = _squares(rng, 16)
        loss = F.cross_entropy(model(st.Tensor(x)), y, weight=np.array([0.5, 1.0, 1.0], np.float32), ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    x, y = _squares(np.random.default_rng(1), 32)
    with st.no_grad():
        pred = model(st.Tensor(x)).data.argmax(-1)
    keep = y != 255
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:3])
    assert (pred[keep] == y[keep]).mean() > 0.93
