"""Ops for localisation, detection and segmentation against PyTorch CPU: forward and every
gradient, float64 (rtol 1e-9) and float32 (2e-4), swept over their settings.

As in test_ops_torch.py, torch leaves are made in striate's layout (NHWC, HWIO) and permuted inside
torch's graph, so torch's gradients come back in striate's layout; a random cotangent is pulled back.
"""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
from torch_compare import compare  # noqa: E402
from torch_layout import nchw, nhwc  # noqa: E402

DTYPES = [np.float64, np.float32]


def torch_weight(w):
    """striate's HWIO (kh, kw, c_out // groups, c_in) -> PyTorch's (c_in, c_out // groups, kh, kw)."""
    return w.permute(3, 2, 0, 1)


# --------------------------------------------------------------------------- conv_transpose2d
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("groups", [1, 2, 4], ids=lambda g: f"groups={g}")
@pytest.mark.parametrize("dilation", [1, 2, (1, 2)], ids=str)
@pytest.mark.parametrize("padding", [0, 1, (2, 1)], ids=str)
@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1)], ids=str)
def test_conv_transpose2d_matches_torch(stride, padding, dilation, groups, bias, dtype, rng, assert_close):
    n, h, w, c_in, c_out = 2, 5, 4, 4, 8
    kh, kw = 3, 2
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    # the largest output_padding allowed: exercises the rows no window reaches
    output_padding = (max(sh, dh) - 1, max(sw, dw) - 1)
    x = rng.standard_normal((n, h, w, c_in))
    wt = rng.standard_normal((kh, kw, c_out // groups, c_in))
    b = rng.standard_normal(c_out) if bias else None

    def st_fn(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                                  dilation=dilation, groups=groups)

    def torch_fn(x, w, b):
        return nhwc(TF.conv_transpose2d(nchw(x), torch_weight(w), b, stride=(sh, sw), padding=padding,
                                        output_padding=output_padding, groups=groups, dilation=(dh, dw)))

    compare(st_fn, torch_fn, [x, wt, b], assert_close, dtype)


def test_conv_transpose2d_asymmetric_padding_matches_cropped_torch(rng, assert_close):
    # (top, bottom, left, right): torch with no padding, then the padding cut off the output
    x, w = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((3, 4, 2, 3))
    compare(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=(2, 0, 1, 3)),
            lambda x, w: nhwc(TF.conv_transpose2d(nchw(x), torch_weight(w), stride=2))[:, 2:, 1:-3],
            [x, w], assert_close, np.float64)


def test_conv_transpose_layer_matches_torch_module(rng, assert_close):
    layer = st.nn.ConvTranspose2D(6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=0)
    x = rng.standard_normal((2, 5, 4, 4)).astype(np.float32)
    y = layer(st.Tensor(x)).data
    ref = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.w.data.transpose(3, 2, 0, 1)))
        ref.bias.copy_(torch.tensor(layer.b.data))
        expected = nhwc(ref(nchw(torch.tensor(x)))).numpy()
    assert_close(y, expected)


# --------------------------------------------------------------------------- upsample
UPSAMPLE_SIZES = [dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=1.5), dict(scale_factor=(0.7, 2.3)),
                  dict(scale_factor=0.5), dict(size=(11, 6)), dict(size=(3, 17)), dict(size=(7, 7)), dict(size=1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("kwargs", UPSAMPLE_SIZES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("hw", [(5, 7), (8, 8)], ids=str)
def test_upsample_matches_torch_interpolate(hw, kwargs, mode, align_corners, dtype, rng, assert_close):
    x = rng.standard_normal((2, *hw, 3))
    corners = align_corners if mode == "bilinear" else None

    def torch_fn(x):
        return nhwc(TF.interpolate(nchw(x), mode=mode, align_corners=corners, **kwargs))

    compare(lambda x: F.upsample(x, mode=mode, align_corners=align_corners, **kwargs), torch_fn, [x],
            assert_close, dtype)


def test_upsample_layer_matches_torch_module(rng, assert_close):
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    y = st.nn.Upsample(scale_factor=2.5, mode="bilinear", align_corners=True)(st.Tensor(x)).data
    ref = torch.nn.Upsample(scale_factor=2.5, mode="bilinear", align_corners=True)
    assert_close(y, nhwc(ref(nchw(torch.tensor(x)))).numpy())


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 2.5])
def test_smooth_l1_and_huber_match_torch(beta, reduction, dtype, rng, assert_close):
    pred, target = rng.standard_normal((4, 6)), rng.standard_normal((4, 6)) * 2
    compare(lambda p, t: F.smooth_l1_loss(p, t, beta, reduction),
            lambda p, t: TF.smooth_l1_loss(p, t, beta=beta, reduction=reduction), [pred, target], assert_close, dtype)
    if beta:
        compare(lambda p, t: F.huber_loss(p, t, beta, reduction),
                lambda p, t: TF.huber_loss(p, t, delta=beta, reduction=reduction), [pred, target], assert_close, dtype)


def torchvision_sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision itself may be absent)."""
    p = torch.sigmoid(inputs)
    ce_loss = TF.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def torch_heatmap_focal_loss(z, y, alpha, beta, reduction):
    """CenterNet's penalty-reduced focal loss, written in PyTorch as its paper states it."""
    p = torch.sigmoid(z)
    pos = (y == 1).to(z.dtype)
    loss = -(pos * (1 - p) ** alpha * TF.logsigmoid(z)
             + (1 - pos) * (1 - y) ** beta * p ** alpha * TF.logsigmoid(-z))
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,beta", [(2.0, 4.0), (1.0, 2.0), (2.5, 1.5)])
def test_heatmap_focal_loss_matches_torch(alpha, beta, reduction, dtype, rng, assert_close):
    logits = rng.standard_normal((2, 4, 5, 3)) * 4
    heatmap = rng.random((2, 4, 5, 3)) * (rng.random((2, 4, 5, 3)) < 0.6)
    heatmap[rng.random(heatmap.shape) < 0.1] = 1.0
    compare(lambda z, y: F.heatmap_focal_loss(z, y, alpha, beta, reduction),
            lambda z, y: torch_heatmap_focal_loss(z, y, alpha, beta, reduction), [logits, heatmap], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.9, 1.0), (0.25, 0.5), (0.25, 5.0)])
@pytest.mark.parametrize("targets", ["hard", "soft"])
def test_sigmoid_focal_loss_matches_torchvision_formula(targets, alpha, gamma, reduction, dtype, rng, assert_close):
    logits = rng.standard_normal((6, 5)) * 4
    t = (rng.random((6, 5)) < 0.3).astype(float) if targets == "hard" else rng.random((6, 5))
    compare(lambda z, t: F.sigmoid_focal_loss(z, t, alpha, gamma, reduction),
            lambda z, t: torchvision_sigmoid_focal_loss(z, t, alpha, gamma, reduction), [logits, t], assert_close, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ignore", [None, 255, 1], ids=lambda v: f"ignore={v}")
@pytest.mark.parametrize("per_pixel", [True, False], ids=["nhwc", "rows"])
def test_cross_entropy_weight_ignore_index_match_torch(per_pixel, ignore, weighted, smoothing, reduction, dtype,
                                                      rng, assert_close):
    k = 5
    shape = (2, 4, 3) if per_pixel else (12,)
    logits = rng.standard_normal((*shape, k)) * 2
    labels = rng.integers(0, k, shape)
    if ignore == 255:
        labels.reshape(-1)[::4] = 255  # a quarter of the pixels ignored
    weight = rng.uniform(0.1, 3.0, k) if weighted else None
    tweight = None if weight is None else torch.tensor(weight.astype(dtype))
    kwargs = {} if ignore is None else {"ignore_index": ignore}

    def torch_fn(z):
        z = z.permute(0, 3, 1, 2) if per_pixel else z  # torch puts classes on axis 1
        return TF.cross_entropy(z, torch.tensor(labels), weight=tweight, label_smoothing=smoothing,
                                reduction=reduction, **kwargs)

    compare(lambda z: F.cross_entropy(z, labels, smoothing, weight, reduction=reduction, **kwargs), torch_fn,
            [logits], assert_close, dtype)


# --------------------------------------------------------------------------- max pooling switches, unpooling
UNPOOL_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=(1, 2)),
                dict(kernel_size=3, stride=3), dict(kernel_size=2, stride=1)]


def overlaps(kwargs):
    k = kwargs["kernel_size"]
    s = kwargs.get("stride", k)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    return any(si < ki for si, ki in zip(pair(s), pair(k)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(8, 8), (7, 9)], ids=str)
@pytest.mark.parametrize("kwargs", UNPOOL_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_max_pool_switches_and_unpool_match_torch(kwargs, hw, dtype, rng, assert_close):
    x = rng.standard_normal((2, *hw, 3)).astype(dtype)
    y, idx = F.max_pool2d(x, return_indices=True, **kwargs)
    ty, tidx = TF.max_pool2d(nchw(torch.tensor(x)), return_indices=True, **kwargs)
    assert_close(y.data, nhwc(ty).numpy(), dtype=dtype)
    # the same positions (row * w + col of the input plane), in NHWC order
    np.testing.assert_array_equal(idx, nhwc(tidx).numpy())
    v = rng.standard_normal(y.shape)  # unpool arbitrary values through the switches, as a deconvnet does
    if not overlaps(kwargs):
        compare(lambda v: F.max_unpool2d(v, idx, output_size=hw, **kwargs),
                lambda v: nhwc(TF.max_unpool2d(nchw(v), tidx, output_size=hw, **kwargs)), [v], assert_close, dtype)
    # always: unpooling v is max pooling's backward pass with cotangent v (torch's autograd)
    tx = torch.tensor(x, requires_grad=True)
    nhwc(TF.max_pool2d(nchw(tx), **kwargs)).backward(torch.tensor(v.astype(dtype)))
    assert_close(F.max_unpool2d(v.astype(dtype), idx, output_size=hw, **kwargs).data, tx.grad.numpy(), dtype=dtype)
    # and its gradient is the gather at the switches, as torch's max_unpool2d backward, overlap or not
    sv = st.Tensor(v.astype(dtype), requires_grad=True)
    out = F.max_unpool2d(sv, idx, output_size=hw, **kwargs)
    gy = rng.standard_normal(out.shape).astype(dtype)
    out.backward(gy)
    tv = torch.tensor(v.astype(dtype), requires_grad=True)
    nhwc(TF.max_unpool2d(nchw(tv), tidx, output_size=hw, **kwargs)).backward(torch.tensor(gy))
    assert_close(sv.grad, tv.grad.numpy(), dtype=dtype)
