"""Layers and Module: a small CNN learns a synthetic image task, a residual block matches PyTorch
with copied weights, and the Module API (names, counts, modes, freezing, state, build, init, seeds)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.nn import init


# --------------------------------------------------------------------------- (a) learning
def make_bars(n, rng, size=12):
    """4 classes on noise: horizontal bar, vertical bar, diagonal, blob, at random positions.

    Returns x (n, size, size, 1) float32 and labels (n,) int64.
    """
    x = rng.normal(0.0, 0.35, (n, size, size)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    for img, label in zip(x, labels):
        length = rng.integers(5, 8)
        r, c = rng.integers(1, size - length, 2)
        if label == 0:
            img[r, c:c + length] += 1.0
        elif label == 1:
            img[r:r + length, c] += 1.0
        elif label == 2:
            idx = np.arange(length)
            img[r + idx, c + idx] += 1.0
        else:
            img[r:r + 3, c:c + 3] += 1.0
    return x[..., None], labels


def small_cnn(rng):
    return nn.Sequential(
        nn.Conv2D(8, 3, padding="same", kernel_initializer="he_normal", rng=rng), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(16, 3, padding="same", kernel_initializer="he_normal", rng=rng), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(4, rng=rng),
    )


def accuracy(model, x, y):
    with st.no_grad():
        return float((model(st.Tensor(x)).data.argmax(axis=1) == y).mean())


def test_small_cnn_learns_synthetic_bars_with_plain_gradient_descent():
    rng = np.random.default_rng(0)
    x_train, y_train = make_bars(1024, rng)
    x_test, y_test = make_bars(400, np.random.default_rng(1))  # held out: a different stream
    model = small_cnn(np.random.default_rng(2))
    model.build((12, 12, 1))
    start = accuracy(model, x_test, y_test)
    lr, losses = 0.1, []
    for step in range(250):
        idx = rng.integers(0, len(x_train), 64)
        loss = F.cross_entropy(model(st.Tensor(x_train[idx])), y_train[idx])
        model.zero_grad()
        loss.backward()
        with st.no_grad():
            for p in model.parameters():
                p.data -= lr * p.grad
        losses.append(loss.item())
    acc = accuracy(model, x_test, y_test)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert acc >= 0.85, f"held-out accuracy {acc:.3f} (started at {start:.3f}, chance 0.25)"


# --------------------------------------------------------------------------- (b) residual block vs torch
class ResidualBlock(nn.Module):
    """relu(x + bn2(conv2(relu(bn1(conv1(x)))))) — ResNet's basic block, identity skip."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2D(channels, 3, padding="same", use_bias=False)
        self.bn1 = nn.BatchNorm()
        self.conv2 = nn.Conv2D(channels, 3, padding="same", use_bias=False)
        self.bn2 = nn.BatchNorm()

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(h)))


class ResidualNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2D(4, 3, padding=1)
        self.block = ResidualBlock(4)
        self.pool = nn.GlobalAvgPool2D()
        self.head = nn.Dense(3)

    def forward(self, x):
        return self.head(self.pool(self.block(self.stem(x))))


def test_residual_model_matches_torch_with_copied_weights(rng, assert_close):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    st.manual_seed(5)
    model = ResidualNet().build((6, 6, 3), dtype=np.float64)
    # make batch-norm parameters non-trivial so their gradients are tested meaningfully
    for bn in (model.block.bn1, model.block.bn2):
        bn.gamma.data = rng.uniform(0.5, 1.5, 4)
        bn.beta.data = rng.standard_normal(4)

    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(4)
            self.conv2 = tnn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(4)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(h)))

    tmodel = tnn.ModuleDict(dict(stem=tnn.Conv2d(3, 4, 3, padding=1), block=TorchBlock(), head=tnn.Linear(4, 3))).double()

    def to_t(a):
        return torch.tensor(a)

    with torch.no_grad():
        tmodel["stem"].weight.copy_(to_t(model.stem.w.data).permute(3, 2, 0, 1))
        tmodel["stem"].bias.copy_(to_t(model.stem.b.data))
        for name in ("conv1", "conv2"):
            getattr(tmodel["block"], name).weight.copy_(to_t(getattr(model.block, name).w.data).permute(3, 2, 0, 1))
        for name in ("bn1", "bn2"):
            getattr(tmodel["block"], name).weight.copy_(to_t(getattr(model.block, name).gamma.data))
            getattr(tmodel["block"], name).bias.copy_(to_t(getattr(model.block, name).beta.data))
        tmodel["head"].weight.copy_(to_t(model.head.w.data).T)
        tmodel["head"].bias.copy_(to_t(model.head.b.data))

    x = rng.standard_normal((5, 6, 6, 3))
    labels = np.array([0, 2, 1, 1, 0])
    xs = st.Tensor(x, requires_grad=True)
    model.train()
    out = model(xs)
    loss = F.cross_entropy(out, labels)
    loss.backward()

    xt = torch.tensor(x, requires_grad=True)
    tmodel.train()
    h = tmodel["block"](tmodel["stem"](xt.permute(0, 3, 1, 2)))
    tout = tmodel["head"](h.mean(dim=(2, 3)))
    tloss = torch.nn.functional.cross_entropy(tout, torch.tensor(labels))
    tloss.backward()

    assert out.dtype == np.float64
    assert_close(out.data, tout.detach().numpy(), what="logits")
    assert_close(loss.data, tloss.detach().numpy(), what="loss")
    assert_close(xs.grad, xt.grad.numpy(), what="input gradient")
    tb = tmodel["block"]
    pairs = {
        "stem.w": tmodel["stem"].weight.grad.permute(2, 3, 1, 0), "stem.b": tmodel["stem"].bias.grad,
        "block.conv1.w": tb.conv1.weight.grad.permute(2, 3, 1, 0), "block.bn1.gamma": tb.bn1.weight.grad,
        "block.bn1.beta": tb.bn1.bias.grad, "block.conv2.w": tb.conv2.weight.grad.permute(2, 3, 1, 0),
        "block.bn2.gamma": tb.bn2.weight.grad, "block.bn2.beta": tb.bn2.bias.grad,
        "head.w": tmodel["head"].weight.grad.T, "head.b": tmodel["head"].bias.grad,
    }
    params = dict(model.named_parameters())
    assert set(params) == set(pairs)
    for name, tgrad in pairs.items():
        assert_close(params[name].grad, tgrad.numpy(), what=f"gradient of {name}")
    # the running statistics moved exactly as torch's did
    assert_close(model.block.bn1.running_mean, tb.bn1.running_mean.numpy(), what="bn1.running_mean")
    assert_close(model.block.bn2.running_var, tb.bn2.running_var.numpy(), what="bn2.running_var")
    # and evaluation mode (running statistics) agrees too
    model.eval()
    tmodel.eval()
    with st.no_grad(), torch.no_grad():
        y_eval = model(st.Tensor(x)).data
        t_eval = tmodel["head"](tmodel["block"](tmodel["stem"](torch.tensor(x).permute(0, 3, 1, 2))).mean(dim=(2, 3)))
    assert_close(y_eval, t_eval.numpy(), what="eval logits")


# --------------------------------------------------------------------------- (c) Module API
def lenet5():
    return nn.Sequential(
        nn.Conv2D(6, 5, padding=2), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(16, 5), nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(120), nn.ReLU(), nn.Dense(84), nn.ReLU(), nn.Dense(10),
    )


def test_lenet5_parameter_count_and_names():
    model = lenet5().build((28, 28, 1))
    assert model.num_parameters() == 61_706
    assert sum(p.size for p in model.parameters()) == 61_706
    assert len(model.parameters()) == 10
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.w", "0.b", "3.w", "3.b", "7.w", "7.b", "9.w", "9.b", "11.w", "11.b"]
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes["0.w"] == (5, 5, 1, 6) and shapes["3.w"] == (5, 5, 6, 16)
    assert shapes["7.w"] == (400, 120)  # 5 * 5 * 16 inferred, not hard-coded
    assert model(st.Tensor(np.zeros((3, 28, 28, 1), np.float32))).shape == (3, 10)


def test_named_parameters_of_a_subclassed_module_are_qualified():
    model = ResidualNet().build((6, 6, 3))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["stem.w", "stem.b", "block.conv1.w", "block.bn1.gamma", "block.bn1.beta",
                     "block.conv2.w", "block.bn2.gamma", "block.bn2.beta", "head.w", "head.b"]
    buffers = dict(model.named_buffers())
    assert set(buffers) == {"block.bn1.running_mean", "block.bn1.running_var",
                            "block.bn2.running_mean", "block.bn2.running_var"}


def test_shared_parameter_is_listed_once():
    conv = nn.Conv2D(3, 3, padding="same")
    model = nn.Sequential(conv, nn.ReLU(), conv).build((5, 5, 3))
    assert len(model.parameters()) == 2
    assert model.num_parameters() == 3 * 3 * 3 * 3 + 3


def test_train_eval_propagates_to_every_descendant():
    model = ResidualNet()
    model.eval()
    assert all(not m.training for m in model.modules())
    assert len(model.modules()) == 9  # net, stem, block, conv1, bn1, conv2, bn2, pool, head
    model.train()
    assert all(m.training for m in model.modules())
    model.block.eval()
    assert not model.block.bn1.training and model.stem.training


def test_freeze_and_unfreeze():
    st.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(2, 3), nn.ReLU(), nn.Flatten(), nn.Dense(3)).build((5, 5, 1))
    model[0].freeze()
    assert model.num_parameters(trainable_only=True) == 3 * 3 * 2 * 3 + 3
    x = st.Tensor(np.random.default_rng(0).standard_normal((4, 5, 5, 1)).astype(np.float32))
    F.cross_entropy(model(x), np.array([0, 1, 2, 0])).backward()
    assert model[0].w.grad is None and model[0].b.grad is None
    assert model[3].w.grad is not None and np.abs(model[3].w.grad).sum() > 0
    model.unfreeze()
    model.zero_grad()
    F.cross_entropy(model(x), np.array([0, 1, 2, 0])).backward()
    assert model[0].w.grad is not None and np.abs(model[0].w.grad).sum() > 0


def test_state_dict_round_trip_restores_outputs_exactly():
    def make(seed):
        st.manual_seed(seed)
        return nn.Sequential(nn.Conv2D(4, 3, padding="same"), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
                             nn.Dropout(0.5), nn.Flatten(), nn.Dense(3)).build((6, 6, 2))

    x = st.Tensor(np.random.default_rng(3).standard_normal((5, 6, 6, 2)).astype(np.float32))
    a = make(1)
    a(x)  # a training step moves the batch-norm running statistics away from their initial values
    a.eval()
    state = a.state_dict()
    assert "1.running_mean" in state and "1.running_var" in state
    assert not np.allclose(state["1.running_mean"], 0)
    b = make(2).eval()
    assert not np.array_equal(b(x).data, a(x).data)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b(x).data, a(x).data)
    # state_dict holds copies: editing it does not reach into the model
    state["0.w"][...] = 0
    assert np.abs(a[0].w.data).sum() > 0
    assert all(v.dtype == np.float32 for v in b.state_dict().values())


def test_lazy_build_infers_channels_and_features():
    conv, bn, dense = nn.Conv2D(4, 3, groups=1), nn.BatchNorm(), nn.Dense(7)
    model = nn.Sequential(conv, bn, nn.Flatten(), dense)
    assert model.parameters() == []
    model.build((8, 8, 5))
    assert conv.w.shape == (3, 3, 5, 4) and conv.in_channels == 5
    assert bn.gamma.shape == (4,) and bn.running_var.shape == (4,)
    assert dense.w.shape == (6 * 6 * 4, 7) and dense.in_features == 144
    depthwise = nn.Conv2D(6, 3, groups=3)
    depthwise(st.Tensor(np.zeros((1, 5, 5, 3), np.float32)))
    assert depthwise.w.shape == (3, 3, 1, 6)


def test_build_with_float64_creates_float64_parameters():
    model = nn.Sequential(nn.Conv2D(2, 3), nn.BatchNorm(), nn.Flatten(), nn.Dense(2)).build((5, 5, 1), dtype=np.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64


def test_build_does_not_change_running_stats_or_mode():
    model = nn.Sequential(nn.Conv2D(3, 3), nn.BatchNorm())
    model.build((6, 6, 2))
    np.testing.assert_array_equal(model[1].running_mean, np.zeros(3))
    np.testing.assert_array_equal(model[1].running_var, np.ones(3))
    assert model.training  # build runs in eval mode and restores the previous mode
    model(st.Tensor(np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype(np.float32)))
    before = model.state_dict()
    model.build((6, 6, 2))  # a second build on a built model: no statistic moves
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_batchnorm_layer_uses_running_stats_in_eval():
    bn = nn.BatchNorm(momentum=0.5)
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 4)).astype(np.float32)
    for _ in range(30):
        bn(st.Tensor(x))
    bn.eval()
    y = bn(st.Tensor(x)).data
    # after many steps the running statistics equal the (unbiased) batch statistics
    np.testing.assert_allclose(bn.running_mean, x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, x.var(axis=0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)


def test_forward_hook_sees_output_and_can_be_removed():
    seen = []
    relu = nn.ReLU()
    handle = relu.register_forward_hook(lambda m, inputs, out: seen.append(out.shape))
    model = nn.Sequential(nn.Conv2D(2, 3), relu)
    model(st.Tensor(np.zeros((1, 5, 5, 1), np.float32)))
    assert seen == [(1, 3, 3, 2)]
    handle.remove()
    model(st.Tensor(np.zeros((1, 5, 5, 1), np.float32)))
    assert len(seen) == 1


def test_sequential_indexing_slicing_and_append():
    model = lenet5()
    assert len(model) == 12 and isinstance(model[0], nn.Conv2D)
    head = model[6:]
    assert isinstance(head, nn.Sequential) and len(head) == 6
    model.append(nn.Softmax())
    assert isinstance(model[-1], nn.Softmax)
    assert "Conv2D(6, kernel_size=(5, 5)" in repr(model)


# --------------------------------------------------------------------------- initialisers
def test_he_normal_std_matches_fan_in():
    shape = (3, 3, 64, 128)
    w = init.get("he_normal")(shape, np.float32, np.random.default_rng(0))
    assert w.dtype == np.float32
    fan_in = 3 * 3 * 64
    assert abs(w.std() / math.sqrt(2 / fan_in) - 1) < 0.01
    assert abs(w.mean()) < 0.01 * math.sqrt(2 / fan_in) * 5


def test_he_normal_through_a_layer():
    layer = nn.Dense(256, kernel_initializer="he_normal", in_features=1000, rng=0)
    assert abs(layer.w.data.std() / math.sqrt(2 / 1000) - 1) < 0.02
    np.testing.assert_array_equal(layer.b.data, 0)


@pytest.mark.parametrize("shape,fans", [((400, 300), (400, 300)), ((5, 5, 16, 32), (400, 800))])
def test_glorot_uniform_bounds(shape, fans):
    w = init.get("glorot_uniform")(shape, np.float64, np.random.default_rng(1))
    limit = math.sqrt(6 / sum(fans))
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit  # the whole interval is used
    assert abs(w.std() / (limit / math.sqrt(3)) - 1) < 0.02


def test_normal_and_constant_initializers():
    w = init.Normal(0.01)((200, 300), np.float32, np.random.default_rng(2))
    assert abs(w.std() - 0.01) < 0.0002 and abs(w.mean()) < 0.0002
    np.testing.assert_array_equal(init.Constant(1.0)((3, 4)), np.ones((3, 4)))
    np.testing.assert_array_equal(init.get(1.0)((2,)), [1.0, 1.0])
    conv = nn.Conv2D(8, 3, kernel_initializer=init.Normal(0.01), bias_initializer=init.Constant(1.0), in_channels=4)
    np.testing.assert_array_equal(conv.b.data, np.ones(8, np.float32))
    assert conv.w.data.std() < 0.02


# --------------------------------------------------------------------------- seeds and dropout
def test_manual_seed_reproduces_initialisation():
    def weights(seed):
        st.manual_seed(seed)
        return [p.data.copy() for p in lenet5().build((28, 28, 1)).parameters()]

    a, b, c = weights(7), weights(7), weights(8)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a[0], c[0])


def test_manual_seed_reproduces_dropout():
    x = st.Tensor(np.ones((20, 20), np.float32))
    layer = nn.Dropout(0.5)
    st.manual_seed(3)
    m1, m2 = layer(x).data, layer(x).data
    st.manual_seed(3)
    np.testing.assert_array_equal(layer(x).data, m1)
    np.testing.assert_array_equal(layer(x).data, m2)
    assert not np.array_equal(m1, m2)  # consecutive steps draw fresh masks


def test_dropout_layer_with_int_seed_draws_fresh_masks_each_call():
    x = st.Tensor(np.ones((20, 20), np.float32))
    a, b = nn.Dropout(0.5, rng=0), nn.Dropout(0.5, rng=0)
    first, second = a(x).data, a(x).data
    assert not np.array_equal(first, second)  # a fixed mask every step would not be dropout
    np.testing.assert_array_equal(b(x).data, first)  # ...but the same seed gives the same sequence


def test_layer_with_int_seed_is_reproducible_and_bias_independent_of_kernel():
    kwargs = dict(in_features=5, rng=3, kernel_initializer=init.Normal(1.0), bias_initializer=init.Normal(1.0))
    a, b = nn.Dense(5, **kwargs), nn.Dense(5, **kwargs)
    np.testing.assert_array_equal(a.w.data, b.w.data)
    np.testing.assert_array_equal(a.b.data, b.b.data)
    # one stream per layer: the bias is not a copy of the kernel's first draws
    assert not np.array_equal(a.b.data, a.w.data.reshape(-1)[:5])


def test_dropout_layer_is_identity_in_eval():
    layer = nn.Dropout(0.7)
    x = st.Tensor(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32), requires_grad=True)
    layer.eval()
    y = layer(x)
    np.testing.assert_array_equal(y.data, x.data)
    layer.train()
    assert (layer(x).data == 0).mean() > 0.5
