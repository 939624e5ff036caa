"""striate.vis maps are right: saliency is the input gradient (PyTorch twin, finite differences),
Grad-CAM is the hand computation (and PyTorch's), occlusion matches finite differences, the maps find
the quadrant a synthetic label depends on, top patches crop exactly the receptive field, and the
conv-arithmetic frames put the window where the geometry says with the values of F.conv2d."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
import striate.vis as vis
from striate import nn


def small_model(channels=2, seed=0):
    """conv 3x3 (pad 1) + ReLU -> max pool 2 -> conv 3x3 'same' + ReLU -> flatten -> dense 3, float64."""
    m = nn.Sequential(nn.Conv2D(4, 3, padding=1, rng=seed), nn.ReLU(), nn.MaxPool2D(2),
                      nn.Conv2D(6, 3, padding="same", rng=seed + 1), nn.ReLU(), nn.Flatten(),
                      nn.Dense(3, rng=seed + 2)).build((8, 8, channels))
    return m.astype(np.float64)


def torch_twin(m):
    """The same network in PyTorch (NCHW inside, NHWC at the border); returns f(x) -> (logits, A)
    where A is the second ReLU's output (NHWC) with its gradient retained."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF

    w1, b1 = (torch.tensor(m[0].w.data).permute(3, 2, 0, 1), torch.tensor(m[0].b.data))
    w2, b2 = (torch.tensor(m[3].w.data).permute(3, 2, 0, 1), torch.tensor(m[3].b.data))
    wd, bd = torch.tensor(m[6].w.data), torch.tensor(m[6].b.data)

    def f(x):
        h = TF.relu(TF.conv2d(x.permute(0, 3, 1, 2), w1, b1, padding=1))
        h = TF.max_pool2d(h, 2)
        a = TF.relu(TF.conv2d(h, w2, b2, padding=1))
        a.retain_grad()
        flat = a.permute(0, 2, 3, 1).reshape(len(a), -1)     # NHWC flatten order, as striate
        return flat @ wd + bd, a

    return torch, f


@pytest.fixture
def model_and_image(rng):
    return small_model(), rng.normal(size=(8, 8, 2))


# ----------------------------------------------------------------------------------------- saliency
def test_input_gradient_matches_pytorch_twin(model_and_image):
    m, x = model_and_image
    torch, f = torch_twin(m)
    xt = torch.tensor(x[None], requires_grad=True)
    logits, _ = f(xt)
    target = int(logits.argmax())
    logits[0, target].backward()
    g = xt.grad[0].numpy()
    np.testing.assert_allclose(vis.input_gradient(m, x, target), g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vis.saliency(m, x, target), np.abs(g).max(axis=-1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vis.saliency(m, x, target, method="grad_x_input"), np.abs((g * x).sum(-1)),
                               rtol=1e-9, atol=1e-12)
    assert vis.predicted_class(m, x) == target


def test_input_gradient_matches_finite_differences(model_and_image):
    m, x = model_and_image
    target = 1
    g = vis.input_gradient(m, x, target)
    eps = 1e-6
    fd = np.zeros_like(x)

    def score(z):
        with st.no_grad():
            return m.eval()(st.Tensor(z[None])).data[0, target]

    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        fd[idx] = (score(x + e) - score(x - e)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_the_mean_noisy_gradient(model_and_image):
    m, x = model_and_image
    sg = vis.saliency(m, x, 0, method="smoothgrad", samples=5, noise=0.1, rng=3)
    gen = np.random.default_rng(3)
    sigma = 0.1 * (x.max() - x.min())
    noisy = x[None] + gen.normal(0, sigma, size=(5,) + x.shape)
    mean = np.mean([vis.input_gradient(m, z, 0) for z in noisy], axis=0)
    np.testing.assert_allclose(sg, np.abs(mean).max(-1), rtol=1e-9, atol=1e-12)
    assert not np.allclose(sg, vis.saliency(m, x, 0))  # the noise changed something


def test_maps_leave_the_model_as_they_found_it(model_and_image):
    m, x = model_and_image
    m.train()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    vis.saliency(m, x, 0)
    vis.grad_cam(m, x, 0, layer="4")
    vis.occlusion(m, x, 0, window=2, stride=2)
    assert m.training and all(p.grad is None and p.requires_grad for p in m.parameters())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_float32_models_give_float32_maps(rng):
    m = small_model().astype(np.float32)
    x = rng.normal(size=(1, 8, 8, 2))  # float64 image for a float32 model: cast, not an error
    for fn in (vis.saliency, vis.grad_cam, vis.occlusion):
        out = fn(m, x, 0)
        assert out.shape == (8, 8) and out.dtype == np.float32 and np.isfinite(out).all()


# ----------------------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_equals_the_hand_computation_and_pytorch(model_and_image):
    m, x = model_and_image
    target = 2
    # by hand: layer "4" (the second ReLU, 4x4x6) feeds flatten -> dense, so d score / d A is the
    # dense layer's column for the target, reshaped to the feature maps (NHWC flatten order)
    acts = vis.activations(m, x, ["4"])["4"]                                  # (4, 4, 6)
    grad = m[6].w.data[:, target].reshape(4, 4, 6)
    alpha = grad.mean(axis=(0, 1))
    cam_small = np.maximum((acts * alpha).sum(-1), 0)
    torch, f = torch_twin(m)
    import torch.nn.functional as TF

    logits, a = f(torch.tensor(x[None], requires_grad=True))
    logits[0, target].backward()
    np.testing.assert_allclose(a.grad[0].permute(1, 2, 0).numpy(), grad, rtol=1e-9, atol=1e-12)
    t_alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    t_cam = TF.relu((t_alpha * a).sum(1, keepdim=True))
    t_up = TF.interpolate(t_cam, size=(8, 8), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    np.testing.assert_allclose(t_cam[0, 0].detach().numpy(), cam_small, rtol=1e-9, atol=1e-12)
    cam = vis.grad_cam(m, x, target, layer="4")
    np.testing.assert_allclose(cam, t_up, rtol=1e-9, atol=1e-12)
    assert vis.default_cam_layer(m, (8, 8, 2)) == "4"
    np.testing.assert_allclose(vis.grad_cam(m, x, target), cam)  # the default layer


def test_grad_cam_refuses_a_dense_layer(model_and_image):
    m, x = model_and_image
    with pytest.raises(ValueError, match=r"layer '6' \(Dense\) outputs a vector .* Layers with feature maps: 0, 1, 2, 3, 4"):
        vis.grad_cam(m, x, 0, layer="6")
    with pytest.raises(ValueError, match=r"no layer named 'conv9'. Layers: 0, 1, 2, 3, 4, 5, 6"):
        vis.grad_cam(m, x, 0, layer="conv9")


# ---------------------------------------------------------------------------------------- occlusion
def test_occlusion_with_one_pixel_matches_finite_differences(rng):
    m = small_model(channels=1, seed=5)
    x = rng.normal(size=(8, 8, 1))
    target = 0
    eps = 1e-4
    occ = vis.occlusion(m, x, target, window=1, stride=1, baseline=x - eps)  # each pixel lowered by eps

    def prob(z):
        with st.no_grad():
            return F.softmax(m.eval()(st.Tensor(z[None]))).data[0, target]

    fd = np.zeros((8, 8))
    for i in range(8):
        for j in range(8):
            e = np.zeros_like(x)
            e[i, j] = 1e-6
            fd[i, j] = (prob(x + e) - prob(x - e)) / 2e-6
    # drop = p(x) - p(x - eps e_ij) ~ eps * dp/dx_ij
    big = np.abs(fd) > 1e-3 * np.abs(fd).max()
    assert big.sum() > 20
    np.testing.assert_array_equal(np.sign(occ[big]), np.sign(fd[big]))
    rank = lambda a: np.argsort(np.argsort(a.ravel()))
    spearman = np.corrcoef(rank(occ), rank(fd))[0, 1]
    assert spearman > 0.99
    np.testing.assert_allclose(occ / eps, fd, rtol=2e-3, atol=2e-3 * np.abs(fd).max())


def test_occlusion_is_the_mean_drop_over_covering_windows(model_and_image):
    m, x = model_and_image
    occ = vis.occlusion(m, x, 1, window=4, stride=4, baseline=0.0)          # 4 windows, no overlap

    def prob(z):
        with st.no_grad():
            return F.softmax(m.eval()(st.Tensor(z[None]))).data[0, 1]

    for i in (0, 4):
        for j in (0, 4):
            z = x.copy()
            z[i:i + 4, j:j + 4] = 0
            np.testing.assert_allclose(occ[i:i + 4, j:j + 4], prob(x) - prob(z), rtol=1e-12)


def test_occlusion_rejects_a_window_bigger_than_the_image(model_and_image):
    m, x = model_and_image
    with pytest.raises(ValueError, match=r"the window must fit in the image. Received: window=\(9, 9\) for an image of 8 x 8"):
        vis.occlusion(m, x, 0, window=9)


# ------------------------------------------------------------------------- synthetic quadrant task
def quadrant_data(n, rng):
    """Bright 3x3 blobs in each quadrant with probability 1/2; the label is "a blob in the top-left".
    Channel 1 marks the top-left quadrant (a CoordConv-like 'where' channel, so that a model with a
    global-average-pool head can tell the quadrants apart)."""
    x = rng.normal(0, 0.3, size=(n, 12, 12, 2))
    x[..., 1] = 0
    x[:, :6, :6, 1] = 1
    present = rng.random((n, 4)) < 0.5
    for i, q in zip(*np.nonzero(present)):
        r, c = (q // 2) * 6 + rng.integers(0, 4), (q % 2) * 6 + rng.integers(0, 4)
        x[i, r:r + 3, c:c + 3, 0] += 1.5
    return x.astype(np.float32), present[:, 0].astype(np.int64)


def test_occlusion_and_grad_cam_find_the_quadrant_the_label_depends_on():
    rng = np.random.default_rng(0)
    x, y = quadrant_data(1000, rng)
    xt, yt = quadrant_data(200, rng)
    m = nn.Sequential(nn.Conv2D(8, 3, padding="same", activation="relu", rng=1),
                      nn.Conv2D(8, 3, padding="same", activation="relu", rng=2),
                      nn.GlobalAvgPool2D(), nn.Dense(2, rng=3)).build((12, 12, 2))
    opt = st.optim.Adam(m.parameters(), lr=0.01)
    for _ in range(8):
        perm = rng.permutation(len(x))
        for b in range(0, len(x), 32):
            idx = perm[b:b + 32]
            loss = F.cross_entropy(m(st.Tensor(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with st.no_grad():
        accuracy = (m.eval()(st.Tensor(xt)).data.argmax(1) == yt).mean()
    assert accuracy > 0.95
    cam_share, occ_share = [], []
    for i in np.nonzero(yt == 1)[0][:20]:
        cam = vis.grad_cam(m, xt[i], target=1)
        base = xt[i].copy()
        base[..., 0] = 0  # cover the pixels, keep the 'where' channel
        occ = np.maximum(vis.occlusion(m, xt[i], target=1, window=3, stride=1, baseline=base), 0)
        cam_share.append(cam[:6, :6].sum() / cam.sum())
        occ_share.append(occ[:6, :6].sum() / occ.sum())
    # a quarter of the image would get a quarter of the mass by chance
    assert np.mean(cam_share) > 0.75 and min(cam_share) > 0.5, cam_share
    assert np.mean(occ_share) > 0.85 and min(occ_share) > 0.6, occ_share


# ------------------------------------------------------------------------------------- top patches
def test_top_patches_crop_exactly_the_receptive_field(rng):
    # convs only (no pooling, no ReLU): every input pixel of a unit's field has a nonzero gradient,
    # so the field is where the gradient of the unit is nonzero
    m = nn.Sequential(nn.Conv2D(3, 3, padding=1, rng=0), nn.Conv2D(4, 3, stride=2, padding=1, rng=1),
                      nn.Conv2D(5, 3, stride=2, rng=2)).build((13, 13, 1))
    row = st.summary(m, (13, 13, 1)).row("2")
    m.astype(np.float64)
    data = rng.normal(size=(12, 13, 13, 1))
    top = vis.top_patches(m, data, "2", channel=3, k=5, fill=np.nan)
    assert top.patches.shape == (5, row.rf[0], row.rf[1], 1) == (5, 9, 9, 1)   # 3 -> 3 + 2 = 5 (jump 2) -> 5 + 2 * 2 = 9
    assert np.all(np.diff(top.values) <= 0)
    for patch, idx, (i, j), (t, left, b, r) in zip(top.patches, top.indices, top.positions, top.boxes):
        x = st.Tensor(data[idx][None], requires_grad=True)
        y = m.eval()(x)
        assert y.data[0, i, j, 3] == pytest.approx(top.values[list(top.indices).index(idx)])
        g = np.zeros(y.shape)
        g[0, i, j, 3] = 1
        y.backward(g)
        support = np.abs(x.grad[0, :, :, 0]) > 0
        box = np.zeros_like(support)
        box[max(t, 0):b, max(left, 0):r] = True
        np.testing.assert_array_equal(support, box)
        inside = ~np.isnan(patch[..., 0])
        np.testing.assert_array_equal(patch[inside][:, 0], data[idx][max(t, 0):b, max(left, 0):r, 0].ravel())
        assert b - t == 9 and r - left == 9


def test_top_patches_picks_the_strongest_images(rng):
    m = small_model(channels=2)
    data = rng.normal(size=(30, 8, 8, 2))
    top = vis.top_patches(m, data, "4", channel=1, k=4)
    acts = np.stack([vis.activations(m, d, ["4"])["4"][..., 1].max() for d in data])
    np.testing.assert_array_equal(top.indices, np.argsort(-acts, kind="stable")[:4])
    np.testing.assert_allclose(top.values, np.sort(acts)[::-1][:4])
    with pytest.raises(ValueError, match=r"channel must be in \[0, 6\) for layer '4'"):
        vis.top_patches(m, data, "4", channel=6)


# ------------------------------------------------------------------------ maximisation, filters
def test_maximize_activation_raises_the_channel():
    m = small_model(channels=1, seed=2)
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.1, size=(8, 8, 1))
    img = vis.maximize_activation(m, "4", 2, (8, 8, 1), steps=60, rng=0)
    assert img.shape == (8, 8, 1) and np.isfinite(img).all()
    assert vis.channel_activation(m, "4", 2, img) > 5 * max(vis.channel_activation(m, "4", 2, start), 1e-3)


def test_filter_grid_tiles(rng):
    w = rng.normal(size=(5, 5, 3, 10))
    g = vis.filter_grid(w)
    assert g.shape == (3 * 6 + 1, 4 * 6 + 1, 3)          # 10 filters -> 3 x 4 grid of 5x5 tiles, 1-px borders
    tile0 = g[1:6, 1:6]
    np.testing.assert_allclose(tile0, (w[..., 0] - w[..., 0].min()) / np.ptp(w[..., 0]))
    assert np.all(g[0] == 1) and np.all(g[:, 0] == 1)
    s = vis.filter_grid(rng.normal(size=(3, 3, 4, 6)))
    assert s.shape == (4 * 4 + 1, 6 * 4 + 1)              # a row per input channel, a column per filter
    mean = vis.filter_grid(rng.normal(size=(3, 3, 4, 6)), mode="mean")
    assert mean.shape == (2 * 4 + 1, 3 * 4 + 1)
    with pytest.raises(ValueError, match="mode='rgb' needs filters with 3 input channels"):
        vis.filter_grid(rng.normal(size=(3, 3, 4, 6)), mode="rgb")
    with pytest.raises(ValueError, match=r"weight must be a conv kernel \(kh, kw, in_channels, out_channels\)"):
        vis.filter_grid(np.zeros((3, 3)))


def test_activations_are_the_layer_outputs(model_and_image):
    m, x = model_and_image
    acts = vis.activations(m, x)
    assert list(acts) == ["0", "1", "2", "3", "4", "5", "6"]
    assert acts["2"].shape == (4, 4, 4) and acts["6"].shape == (3,)
    with st.no_grad():
        np.testing.assert_allclose(acts["6"], m.eval()(st.Tensor(x[None])).data[0])
        np.testing.assert_allclose(acts["2"], m[:3](st.Tensor(x[None])).data[0])
    g = vis.activation_grid(acts["0"])
    assert g.shape == (2 * 9 + 1, 2 * 9 + 1) and 0 <= g.min() and g.max() <= 1
    with pytest.raises(ValueError, match=r"x must have 2 channel\(s\).*Received: x.shape=\(8, 8, 3\)"):
        vis.activations(m, np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=r"one image \(h, w, c\) or a batch of one"):
        vis.saliency(m, np.zeros((2, 8, 8, 2)))


def test_resize_bilinear_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF

    a = rng.normal(size=(3, 5))
    for size in ((8, 8), (7, 11), (3, 5), (2, 2)):
        expected = TF.interpolate(torch.tensor(a)[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(vis.resize_bilinear(a, size), expected.numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------- conv animation
@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (5, 3, 2, 1, 1), (5, 3, 1, 0, 1), (7, 3, 1, 0, 2), ((5, 7), (3, 2), (2, 1), (1, 0), 1), (6, 4, 3, 2, 1),
])
def test_conv_animation_windows_and_values(size, kernel, stride, padding, dilation):
    a = vis.conv_animation(size, kernel, stride, padding, dilation, rng=1)
    (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation
    y = F.conv2d(a.x[None, :, :, None], a.w[:, :, None, None], stride=stride, padding=padding, dilation=dilation).data
    assert len(a.frames) == y.shape[1] * y.shape[2]
    padded = np.pad(a.x, ((ph, ph), (pw, pw)))
    for fr in a.frames:
        p, q = fr.cell
        assert fr.origin == (p * sh - ph, q * sw - pw)
        # the highlighted window times the kernel is the op's value at that cell
        taps = np.array([padded[r + ph, c + pw] for r, c in fr.taps]).reshape(a.w.shape)
        assert (taps * a.w).sum() == y[0, p, q, 0] == fr.output[p, q]
        assert fr.taps[-1] == (fr.origin[0] + (a.kernel[0] - 1) * dh, fr.origin[1] + (a.kernel[1] - 1) * dw)
    np.testing.assert_array_equal(a.frames[-1].output, y[0, :, :, 0])
    assert len({f.cell for f in a.frames}) == len(a.frames)


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (3, 3, 2, 1, 1), (2, 3, 1, 0, 1), ((3, 2), (3, 2), (2, 3), (0, 1), 1), (3, 2, 2, 0, 2),
])
def test_transposed_animation_spreads_each_input_cell(size, kernel, stride, padding, dilation):
    a = vis.conv_animation(size, kernel, stride, padding, dilation, transposed=True, rng=2)
    (ih, iw), (sh, sw), (ph, pw) = a.input_size, a.stride, a.padding
    assert len(a.frames) == ih * iw
    acc = np.zeros(a.output_size)
    for fr in a.frames:
        i, j = fr.cell
        assert fr.origin == (i * sh - ph, j * sw - pw)
        for k, (r, c) in enumerate(fr.taps):
            if 0 <= r < a.output_size[0] and 0 <= c < a.output_size[1]:
                acc[r, c] += a.x[i, j] * a.w.ravel()[k]
        written = ~np.isnan(fr.output)
        np.testing.assert_array_equal(fr.output[written], acc[written])
    np.testing.assert_array_equal(a.frames[-1].output, a.y)
    np.testing.assert_array_equal(acc, a.y)
    # the transposed conv is the adjoint of F.conv2d: <conv(z), x> == <z, y> for any z
    z = np.random.default_rng(0).normal(size=a.output_size)
    conv = F.conv2d(z[None, :, :, None], a.w[:, :, None, None], stride=stride, padding=padding, dilation=dilation).data
    assert conv.shape[1:3] == a.input_size
    np.testing.assert_allclose((conv[0, :, :, 0] * a.x).sum(), (z * a.y).sum(), rtol=1e-12)
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.conv_transpose2d(torch.tensor(a.x)[None, None], torch.tensor(a.w)[None, None],
                                             stride=a.stride, padding=a.padding, dilation=a.dilation)
    np.testing.assert_array_equal(t[0, 0].numpy(), a.y)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_animation_values(mode):
    a = vis.pool_animation((5, 6), 2, 2, padding=1, mode=mode, rng=4)
    op = F.max_pool2d if mode == "max" else F.avg_pool2d
    y = op(a.x[None, :, :, None], 2, 2, padding=1).data[0, :, :, 0]
    padded = np.pad(a.x, 1, constant_values=-np.inf if mode == "max" else 0)
    for fr in a.frames:
        window = np.array([padded[r + 1, c + 1] for r, c in fr.taps])
        assert (window.max() if mode == "max" else window.mean()) == y[fr.cell] == fr.output[fr.cell]
    assert len(a.frames) == y.size


def test_animation_geometry_errors():
    with pytest.raises(ValueError, match="larger than the padded input"):
        vis.conv_animation(3, 5)
    with pytest.raises(ValueError, match="output would be empty"):
        vis.conv_animation(1, 1, padding=1, transposed=True)
    with pytest.raises(ValueError, match=r"stride must be an int >= 1 or a pair"):
        vis.conv_animation(5, 3, stride=0)


def test_overlay_blends_the_colour_map_over_the_image(rng):
    pytest.importorskip("matplotlib")
    image = rng.random((6, 5))
    heat = np.zeros((3, 3))
    heat[1, 1] = 2.0
    out = vis.overlay(image, heat, alpha=0.0)
    np.testing.assert_allclose(out, np.repeat(vis.normalize(image)[..., None], 3, -1))
    full = vis.overlay(image, heat, alpha=1.0, cmap="gray")      # the map alone: resized to 6 x 5, / its max
    resized = vis.resize_bilinear(heat, (6, 5))
    np.testing.assert_allclose(full[..., 0], resized / resized.max(), atol=1 / 255)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        vis.overlay(image, heat, alpha=2)


def test_importing_vis_loads_no_drawing_library():
    import subprocess
    import sys

    code = "import sys, striate.vis; print(sorted(m for m in ('PIL', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_maximize_activation_wakes_a_channel_that_is_off_everywhere():
    m = small_model(channels=1, seed=2)
    m[3].b.data[1] = -2.0                       # the ReLU after it is 0 everywhere for a small input
    start = np.random.default_rng(0).normal(0, 0.1, size=(8, 8, 1))
    assert vis.channel_activation(m, "4", 1, start) == 0
    img = vis.maximize_activation(m, "4", 1, (8, 8, 1), steps=100, rng=0)
    assert vis.channel_activation(m, "4", 1, img) > 0.2   # without the fallback: 0 at every step
    assert not m[4]._forward_hooks              # the extra hook is gone


def test_activation_grid_of_several_layers(model_and_image):
    m, x = model_and_image
    acts = vis.activations(m, x, ["0", "4", "6"])             # 8x8x4, 4x4x6 (enlarged to 8x8), a vector (left out)
    g = vis.activation_grid(acts, ncols=4, gap=3)
    one, two = vis.activation_grid(acts["0"], ncols=4), vis.activation_grid(np.repeat(np.repeat(acts["4"], 2, 0), 2, 1), ncols=4)
    assert g.shape == (one.shape[0] + 3 + two.shape[0], max(one.shape[1], two.shape[1]))
    np.testing.assert_array_equal(g[:one.shape[0], :one.shape[1]], one)


def test_drawn_frames_shade_the_window_where_the_frame_says():
    pytest.importorskip("PIL")
    a = vis.conv_animation((5, 6), 3, stride=2, padding=1, dilation=1, rng=0)
    cell = 20
    images = vis.draw_frames(a, numbers=False, cell=cell)
    assert len(images) == len(a.frames) == 3 * 3
    window = (0x2F, 0x6D, 0xB3)
    rows = a.input_size[0] + 2 * a.padding[0]        # the padded input is the taller panel here
    for img, fr in zip(images, a.frames):
        px = np.asarray(img.convert("RGB"))
        for r in range(rows):
            for c in range(a.input_size[1] + 2 * a.padding[1]):
                centre = px[48 + r * cell + cell // 2, 16 + c * cell + cell // 2]
                in_window = (r - a.padding[0], c - a.padding[1]) in fr.taps
                assert (tuple(centre) == window) == in_window, (fr.cell, r, c)
