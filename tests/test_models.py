"""Model zoo: published parameter counts, forward/backward at native size, registry, options."""
import functools

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import models

# Published / torchvision parameter counts (1000 classes for ImageNet models, 10 for LeNet-5).
PUBLISHED = {
    "lenet5": 61_706,
    "alexnet": 62_378_344,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}
PUBLISHED_SLOW = {
    "vgg11": 132_863_336,
    "vgg19": 143_667_240,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@functools.lru_cache(maxsize=None)
def built(name):
    """Default (native-size, 1000-class) builds are shared between tests: AlexNet's takes seconds."""
    return models.get(name, rng=0)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    assert built(name).num_parameters() == PUBLISHED[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED_SLOW))
def test_parameter_counts_match_published_big(name):
    assert models.get(name, rng=0).num_parameters() == PUBLISHED_SLOW[name]


def test_resnet20_has_the_papers_0_27M_parameters():
    # He et al. 2016 table 6: 0.27M. Option A: conv1 432 + BN 32, stages 14,016 + 51,072 + 203,520, fc 650.
    n = models.resnet20().num_parameters()
    assert n == 432 + 32 + 14_016 + 51_072 + 203_520 + 650 == 269_722
    # option B adds two 1x1 projections + BN: 16*32 + 64 and 32*64 + 128
    assert models.resnet20(shortcut="B").num_parameters() == n + 512 + 64 + 2048 + 128


def test_vgg_batch_norm_adds_two_parameters_per_channel():
    bn = models.get("vgg11_bn", input_shape=(32, 32, 3), num_classes=10)
    norms = [m for m in bn.modules() if type(m).__name__ == "BatchNorm"]
    assert len(norms) == 8  # one per conv of configuration A
    assert sum(m.num_parameters() for m in norms) == 2 * (64 + 128 + 256 * 2 + 512 * 4)
    # the rest is VGG-11's 132,863,336 with a 512-feature (1x1x512) flatten and 10 classes
    assert bn.num_parameters() - 2 * 2752 == 132_863_336 - (25088 - 512) * 4096 - 4096 * 990 - 990


@pytest.mark.parametrize("name, shape", [
    ("lenet5", (28, 28, 1)), ("digits_cnn", (8, 8, 1)), ("alexnet", (224, 224, 3)), ("zfnet", (224, 224, 3)),
    ("nin", (224, 224, 3)), ("googlenet", (224, 224, 3)), ("resnet18", (224, 224, 3)), ("resnet20", (32, 32, 3)),
])
def test_forward_at_native_size(name, shape):
    model = built(name)
    assert models.info(name).input_shape == shape
    model.eval()
    x = np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32)
    with st.no_grad():
        y = model(st.Tensor(x))
    assert y.shape == (1, 10 if shape[0] < 100 else 1000)
    assert np.all(np.isfinite(y.data)) and np.ptp(y.data) > 0


@pytest.mark.parametrize("name, shape", [("resnet20", (32, 32, 3)), ("lenet5", (28, 28, 1)),
                                         ("digits_cnn", (8, 8, 1))])
def test_backward_on_a_small_batch(name, shape):
    model = models.get(name, rng=0)
    model.train()
    rng = np.random.default_rng(0)
    x = st.Tensor(rng.standard_normal((4,) + shape).astype(np.float32))
    loss = F.cross_entropy(model(x), rng.integers(0, 10, 4))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, pname
    assert any(np.abs(p.grad).max() > 0 for p in model.parameters())


def test_resnet20_trains_a_few_steps():
    model = models.resnet20(rng=0)
    model.train()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(st.Tensor(x)), y)
        model.zero_grad()
        loss.backward()
        with st.no_grad():
            for p in model.parameters():
                p.data -= 0.05 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_option_a_shortcut_pads_channels_with_zeros():
    sc = models.ZeroPadShortcut(32, 2)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 16)).astype(np.float32)
    y = sc(st.Tensor(x)).data
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()


def test_alexnet_initialisation_follows_the_paper():
    m = built("alexnet")
    convs = [m.features[i] for i in (0, 4, 8, 10, 12)]
    dense = [m.classifier[i] for i in (2, 5, 7)]
    assert [float(c.b.data.mean()) for c in convs] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert [float(d.b.data.mean()) for d in dense] == [1.0, 1.0, 0.0]
    assert abs(float(dense[0].w.data.std()) - 0.01) < 1e-4
    assert abs(float(convs[1].w.data.mean())) < 1e-4
    assert type(m.features[2]).__name__ == "LocalResponseNorm" and type(m.features[3]).__name__ == "MaxPool2D"


def test_resnet50_stride_placement_option():
    v15 = models.resnet50(input_shape=(64, 64), num_classes=10)
    v1 = models.resnet50(input_shape=(64, 64), num_classes=10, stride_in_1x1=True)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v1.num_parameters() == v15.num_parameters()
    with pytest.raises(ValueError, match="bottleneck"):
        models.resnet(18, stride_in_1x1=True)


def test_googlenet_aux_classifiers_are_optional():
    plain = models.googlenet(num_classes=10, input_shape=(224, 224, 3))
    aux = models.googlenet(num_classes=10, aux_logits=True)
    assert aux.num_parameters() > plain.num_parameters()  # aux heads are built with the model
    aux.train()
    out = aux(st.Tensor(np.zeros((2, 224, 224, 3), np.float32)))
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 10)] * 3
    aux.eval()
    with st.no_grad():
        assert aux(st.Tensor(np.zeros((1, 224, 224, 3), np.float32))).shape == (1, 10)


def test_in_channels_and_input_shape_options():
    m = models.lenet5(in_channels=3, num_classes=4)
    assert m.features[0].w.shape == (5, 5, 3, 6) and m.classifier[-1].w.shape == (84, 4)
    assert models.lenet5(input_shape=(32, 32)).classifier[1].w.shape == (16 * 6 * 6, 120)
    with pytest.raises(ValueError, match="disagrees"):
        models.lenet5(in_channels=3, input_shape=(28, 28, 1))
    with pytest.raises(ValueError, match="input_shape"):
        models.lenet5(input_shape=(28, -1))


def test_too_small_input_names_the_layer():
    with pytest.raises(ValueError) as e:
        models.alexnet(input_shape=(16, 16, 3))
    msg = str(e.value)
    assert "input 16x16x3 is too small for alexnet" in msg
    assert "at layer features.7 (MaxPool2D)" in msg


def test_registry_lists_and_rejects_unknown_names():
    names = models.list()
    for expected in ("lenet5", "digits_cnn", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19",
                     "vgg16_bn", "nin", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101",
                     "resnet152", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
        assert expected in names
    with pytest.raises(ValueError) as e:
        models.get("alexnt")
    msg = str(e.value)
    assert "Unknown model 'alexnt'" in msg and "Did you mean 'alexnet'" in msg and "lenet5" in msg
    assert models.get("resnet32", num_classes=3).fc.w.shape == (64, 3)


def test_every_builder_has_a_docstring_citing_its_paper():
    for name in models.list():
        doc = models.info(name).builder.__doc__ or ""
        target = doc if any(ch.isdigit() for ch in doc) else ""
        assert "20" in target or "19" in target, name  # a year: 1998, 2012, 2013, 2014, 2016


@pytest.mark.slow
def test_digits_cnn_reaches_98_percent():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    x, y = x[idx], d.target[idx]
    xtr, ytr, xte, yte = x[:1437], y[:1437], x[1437:], y[1437:]
    model = models.digits_cnn(rng=0)
    params = model.parameters()
    velocity = [np.zeros_like(p.data) for p in params]
    epochs, step = 6, 0
    steps = epochs * -(-len(xtr) // 32)
    for _ in range(epochs):
        model.train()
        perm = rng.permutation(len(xtr))
        for i in range(0, len(xtr), 32):
            lr = 0.05 * (1 + np.cos(np.pi * step / steps))  # cosine from 0.1 to 0
            step += 1
            b = perm[i:i + 32]
            loss = F.cross_entropy(model(st.Tensor(xtr[b])), ytr[b])
            model.zero_grad()
            loss.backward()
            for p, v in zip(params, velocity):  # SGD with momentum 0.9, by hand
                v *= 0.9
                v -= lr * p.grad
                p.data += v
    model.eval()
    with st.no_grad():
        acc = (model(st.Tensor(xte)).data.argmax(1) == yte).mean()
    assert acc >= 0.98, acc


def test_vgg_cifar_has_one_dense_layer_on_the_1x1_map():
    model = models.vgg_cifar(11, rng=0)
    assert model.num_parameters() == 9_228_362
    assert model.input_shape == (32, 32, 3)
    assert model.classifier[1].w.shape == (512, 10)
    import striate as st
    with st.no_grad():
        assert model.eval()(st.Tensor(np.zeros((2, 32, 32, 3), np.float32))).shape == (2, 10)
    with pytest.raises(ValueError, match="VGG depth must be one of"):
        models.vgg_cifar(12)
