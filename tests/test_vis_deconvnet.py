"""st.vis.deconvnet (Zeiler & Fergus) against a hand-written loop reference, receptive fields and
errors; st.vis.guided_backprop against PyTorch with a guided ReLU."""
import copy

import numpy as np
import pytest

import striate as st
import striate.vis  # noqa: F401
from striate import functional as F
from striate import nn


def _set(layer, **arrays):
    for name, a in arrays.items():
        getattr(layer, name).data[...] = a


def _small_net(rng):
    """conv(3x3, pad 1) -> relu -> pool 2 -> conv(3x3, stride 2, pad 1) -> relu -> pool(3, stride 2), float64.
    An odd 9-row map under the stride-2 conv and a 3x3/2 pooling exercise output sizes and overlaps."""
    net = nn.Sequential(nn.Conv2D(4, 3, padding=1, in_channels=2), nn.ReLU(), nn.MaxPool2D(2),
                        nn.Conv2D(5, 3, stride=2, padding=1, in_channels=4), nn.ReLU(),
                        nn.MaxPool2D(3, stride=2)).astype(np.float64)
    for conv in (net[0], net[3]):
        _set(conv, w=rng.normal(size=conv.w.shape), b=rng.normal(0, 0.1, size=conv.b.shape))
    return net


# ---- hand-written reference: plain loops, no striate op --------------------------------------------------
def _conv(x, w, b, s, p):
    """x (h, w, c), HWIO w: (oh, ow, o) by loops over output pixels."""
    kh, kw, _, o = w.shape
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    oh, ow = (xp.shape[0] - kh) // s + 1, (xp.shape[1] - kw) // s + 1
    y = np.zeros((oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            y[i, j] = np.tensordot(xp[i * s:i * s + kh, j * s:j * s + kw], w, axes=3) + b
    return y


def _deconv(r, w, s, p, in_hw):
    """The conv's adjoint: each output value scatters value * w back onto the input window."""
    kh, kw, c, _ = w.shape
    out = np.zeros((in_hw[0] + 2 * p + kh, in_hw[1] + 2 * p + kw, c))
    for i in range(r.shape[0]):
        for j in range(r.shape[1]):
            out[i * s:i * s + kh, j * s:j * s + kw] += w @ r[i, j]          # (kh, kw, c)
    return out[p:p + in_hw[0], p:p + in_hw[1]]


def _pool(x, k, s):
    """Max pooling with switches: the first maximum of each window in row-major order."""
    oh, ow = (x.shape[0] - k) // s + 1, (x.shape[1] - k) // s + 1
    y, where = np.zeros((oh, ow, x.shape[2])), np.zeros((oh, ow, x.shape[2], 2), int)
    for i in range(oh):
        for j in range(ow):
            for c in range(x.shape[2]):
                win = x[i * s:i * s + k, j * s:j * s + k, c]
                a, b = np.unravel_index(np.argmax(win), win.shape)
                y[i, j, c], where[i, j, c] = win[a, b], (i * s + a, j * s + b)
    return y, where


def _unpool(r, where, in_hw):
    out = np.zeros(in_hw + (r.shape[2],))
    for i, j, c in np.ndindex(*r.shape):
        out[where[i, j, c, 0], where[i, j, c, 1], c] += r[i, j, c]
    return out


def _reference(net, x, channel, unit):
    """Forward with switches, then the deconvnet's way down, by hand."""
    c1, c2 = net[0], net[3]
    a1 = np.maximum(_conv(x, c1.w.data, c1.b.data, 1, 1), 0)
    p1, sw1 = _pool(a1, 2, 2)
    a2 = np.maximum(_conv(p1, c2.w.data, c2.b.data, 2, 1), 0)
    p2, sw2 = _pool(a2, 3, 2)
    r = np.zeros_like(p2)
    r[unit + (channel,)] = p2[unit + (channel,)]
    r = np.maximum(_unpool(r, sw2, a2.shape[:2]), 0)               # pool 2, relu 2
    r = _deconv(r, c2.w.data, 2, 1, p1.shape[:2])                  # conv 2
    r = np.maximum(_unpool(r, sw1, a1.shape[:2]), 0)               # pool 1, relu 1
    return _deconv(r, c1.w.data, 1, 1, x.shape[:2]), p2             # conv 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deconvnet_equals_the_loop_reference(seed):
    rng = np.random.default_rng(seed)
    net = _small_net(rng)
    x = rng.normal(size=(18, 19, 2))
    _, p2 = _reference(net, x, 0, (0, 0))
    assert p2.shape == (2, 2, 5)
    for channel in range(5):
        for unit in [(0, 0), (1, 1), (0, 1)]:
            want, _ = _reference(net, x, channel, unit)
            got = st.vis.deconvnet(net, x, "5", channel, unit=unit)
            assert got.shape == (18, 19, 2) and got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # unit=None is the channel's strongest unit
    best = np.unravel_index(np.argmax(p2[:, :, 3]), p2.shape[:2])
    np.testing.assert_array_equal(st.vis.deconvnet(net, x, "5", 3), st.vis.deconvnet(net, x, "5", 3, unit=best))
    assert st.vis.deconvnet_unit(net, x, "5", 3) == (tuple(int(v) for v in best), pytest.approx(p2[best + (3,)]))


def test_deconvnet_through_a_conv_with_its_own_relu():
    """Conv2D(activation='relu') is a conv and a ReLU in one layer: rectified, then transposed."""
    rng = np.random.default_rng(5)
    net = _small_net(rng)
    fused = nn.Sequential(nn.Conv2D(4, 3, padding=1, activation="relu", in_channels=2), nn.MaxPool2D(2),
                          nn.Conv2D(5, 3, stride=2, padding=1, activation="relu", in_channels=4),
                          nn.MaxPool2D(3, stride=2)).astype(np.float64)
    for mine, theirs in [(fused[0], net[0]), (fused[2], net[3])]:
        _set(mine, w=theirs.w.data, b=theirs.b.data)
    x = rng.normal(size=(18, 19, 2))
    for channel in range(5):
        np.testing.assert_array_equal(st.vis.deconvnet(fused, x, "3", channel), st.vis.deconvnet(net, x, "5", channel))
    fused[0].activation = st.functional.tanh
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2D\) has an activation other than ReLU"):
        st.vis.deconvnet(fused, x, "3", 0)


def test_deconvnet_at_a_middle_layer_and_nonzero():
    rng = np.random.default_rng(3)
    net = _small_net(rng)
    x = rng.normal(size=(18, 19, 2))
    a1 = np.maximum(_conv(x, net[0].w.data, net[0].b.data, 1, 1), 0)
    i, j = np.unravel_index(np.argmax(a1[:, :, 2]), a1.shape[:2])
    r = np.zeros_like(a1)
    r[i, j, 2] = a1[i, j, 2]
    want = _deconv(r, net[0].w.data, 1, 1, x.shape[:2])
    got = st.vis.deconvnet(net, x, "1", 2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.abs(got).max() > 0


@pytest.mark.parametrize("layer,unit", [("features.3", (2, 3)), ("features.4", (5, 1)), ("features.5", (1, 2)),
                                        ("features.5", (4, 4))])
def test_deconvnet_support_lies_in_the_receptive_field(layer, unit):
    model = st.models.lenet5()
    x = np.random.default_rng(0).normal(size=(28, 28, 1)).astype(np.float32)
    fy, fx = st.vis.layer_field(model, layer, (28, 28, 1))
    nonzero = np.zeros((28, 28), bool)
    for channel in range(16):
        nonzero |= np.abs(st.vis.deconvnet(model, x, layer, channel, unit=unit)).max(axis=-1) > 0
    top, left = fy.start + unit[0] * fy.jump, fx.start + unit[1] * fx.jump
    inside = np.zeros((28, 28), bool)
    inside[max(top, 0):top + fy.size, max(left, 0):left + fx.size] = True
    assert nonzero.any()
    assert not (nonzero & ~inside).any()


def test_deconvnet_batch_norm_is_its_scale_like_a_folded_conv():
    """Projecting through a batch norm multiplies by its scale: the same as the conv with the batch
    norm folded into its filters."""
    rng = np.random.default_rng(4)
    model = st.models.mnist_cnn()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm):
            m.gamma.data[...] = rng.uniform(0.5, 2, m.gamma.shape)
            m.running_var[...] = rng.uniform(0.5, 2, m.running_var.shape)
            m.running_mean[...] = rng.normal(0, 0.2, m.running_mean.shape)
    # the fold runs in float32; both then project in float64
    folded = nn.fold_batch_norm(model, (28, 28, 1)).astype(np.float64)
    model = copy.deepcopy(model).astype(np.float64)
    x = rng.normal(size=(28, 28, 1))
    for layer, channel in [("features.6", 7), ("features.10", 3)]:
        got = st.vis.deconvnet(model, x, layer, channel)
        assert got.shape == (28, 28, 1) and np.abs(got).max() > 0
        want = st.vis.deconvnet(folded, x, layer, channel)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(got).max())


@pytest.mark.parametrize("name,shape,layer", [("lenet5", (28, 28, 1), "features.5"),
                                              ("digits_cnn", (8, 8, 1), "features.9"),
                                              ("mnist_cnn", (28, 28, 1), "features.10"),
                                              ("zfnet", (224, 224, 3), "features.4")])
def test_deconvnet_zoo_shapes(name, shape, layer):
    model = getattr(st.models, name)()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    r = st.vis.deconvnet(model, x, layer, 0)
    assert r.shape == shape and r.dtype == np.float32 and np.isfinite(r).all()


def test_deconvnet_errors_are_one_line():
    x = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"layer 'layer1\.0\.relu2' \(ReLU\) does not take the previous layer's "
                                         r"output .* chains of layers only"):
        st.vis.deconvnet(st.models.resnet20(), x, "layer2.0.conv1", 0)
    net = nn.Sequential(nn.Conv2D(3, 3, in_channels=1), nn.AvgPool2D(2), nn.Conv2D(2, 3, in_channels=3))
    with pytest.raises(ValueError, match=r"cannot project back through layer '1' \(AvgPool2D\)"):
        st.vis.deconvnet(net, np.ones((12, 12, 1), np.float32), "2", 0)
    lenet, img = st.models.lenet5(), np.zeros((28, 28, 1), np.float32)
    with pytest.raises(ValueError, match=r"channel must be in \[0, 6\)"):
        st.vis.deconvnet(lenet, img, "features.0", 6)
    with pytest.raises(ValueError, match=r"unit must be a position \(i, j\) in the 28 x 28 maps"):
        st.vis.deconvnet(lenet, img, "features.0", 0, unit=(28, 0))
    with pytest.raises(ValueError, match="not feature maps"):
        st.vis.deconvnet(lenet, img, "classifier.1", 0)


# ---- guided backprop against PyTorch ---------------------------------------------------------------------
class _Residual(nn.Module):
    """A block whose ReLUs are F.relu / F.add_relu calls in its forward."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2D(c, 3, padding=1, in_channels=c), nn.Conv2D(c, 3, padding=1, in_channels=c)

    def forward(self, x):
        return F.add_relu(self.conv2(F.relu(self.conv1(x))), x)


def _striate_net(rng, dtype):
    net = nn.Sequential(nn.Conv2D(4, 3, padding=1, in_channels=2), nn.BatchNorm(num_features=4), nn.ReLU(),
                        nn.MaxPool2D(3, stride=2), nn.Conv2D(6, 3, activation="relu", in_channels=4),
                        _Residual(6), nn.ReLU(), nn.Flatten(), nn.Dense(5, in_features=6 * 5 * 5))
    net = net.astype(np.float64)
    for p in net.parameters():
        p.data[...] = rng.normal(0, 0.5, p.data.shape)
    bn = net[1]
    bn.gamma.data[...] = rng.uniform(0.5, 1.5, 4)
    bn.running_mean[...] = rng.normal(0, 0.2, 4)
    bn.running_var[...] = rng.uniform(0.5, 1.5, 4)
    return net.astype(dtype)


def _torch_guided(net, x, target):
    import torch
    import torch.nn.functional as TF

    class GuidedReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g * (t > 0) * (g > 0)

    relu = GuidedReLU.apply
    T = lambda a: torch.tensor(np.asarray(a, np.float64))  # noqa: E731
    oihw = lambda w: T(w).permute(3, 2, 0, 1)  # noqa: E731
    xt = T(x).permute(2, 0, 1)[None].requires_grad_(True)
    c1, bn, c2, res, dense = net[0], net[1], net[4], net[5], net[8]
    h = TF.conv2d(xt, oihw(c1.w.data), T(c1.b.data), padding=1)
    h = TF.batch_norm(h, T(bn.running_mean), T(bn.running_var), T(bn.gamma.data), T(bn.beta.data), False, 0.0, bn.eps)
    h = TF.max_pool2d(relu(h), 3, 2)
    h = relu(TF.conv2d(h, oihw(c2.w.data), T(c2.b.data)))
    a = relu(TF.conv2d(h, oihw(res.conv1.w.data), T(res.conv1.b.data), padding=1))
    h = relu(relu(TF.conv2d(a, oihw(res.conv2.w.data), T(res.conv2.b.data), padding=1) + h))
    logits = h.permute(0, 2, 3, 1).reshape(1, -1) @ T(dense.w.data) + T(dense.b.data)
    logits[0, target].backward()
    return xt.grad[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("seed,dtype,tol", [(0, np.float64, 1e-10), (1, np.float64, 1e-10), (2, np.float32, 1e-5)])
def test_guided_backprop_equals_pytorch(seed, dtype, tol):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    net = _striate_net(rng, dtype)
    x = rng.normal(size=(15, 15, 2))
    plain_before = st.vis.input_gradient(net, x, target=2)
    for target in range(5):
        got = st.vis.guided_backprop(net, x, target=target)
        want = _torch_guided(net, x.astype(dtype), target)
        assert got.shape == (15, 15, 2) and got.dtype == dtype
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    # the guided gradient is not the plain one, and ReLU's own backward is untouched afterwards
    assert not np.allclose(st.vis.guided_backprop(net, x, target=2), plain_before)
    np.testing.assert_array_equal(st.vis.input_gradient(net, x, target=2), plain_before)


def test_guided_backprop_default_target_and_errors():
    model = st.models.lenet5()
    x = np.random.default_rng(0).normal(size=(28, 28, 1)).astype(np.float32)
    k = st.vis.predicted_class(model, x)
    np.testing.assert_array_equal(st.vis.guided_backprop(model, x), st.vis.guided_backprop(model, x, target=k))
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 10\)"):
        st.vis.guided_backprop(model, x, target=10)
    assert st.vis.guided_backprop(st.models.resnet20(), np.ones((32, 32, 3), np.float32)).shape == (32, 32, 3)
