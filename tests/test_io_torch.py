"""PyTorch weights into striate: torchvision-layout twins built here with random weights (no hub
downloads exist on this machine), saved as .safetensors, loaded by the zoo's ``weights=``; logits equal."""
import numpy as np
import pytest

import striate as st

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
tnn = torch.nn
from torch_layout import randomize_batch_norm  # noqa: E402


# --------------------------------------------------------------------------- torchvision-layout twins
def _downsample(cin, cout, stride):
    """torchvision's projection shortcut (1x1 conv + BN) where the shape changes, else None."""
    if stride == 1 and cin == cout:
        return None
    return tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + identity)


class Bottleneck(tnn.Module):
    expansion = 4

    def __init__(self, cin, filters, stride):
        super().__init__()
        cout = filters * 4
        self.conv1, self.bn1 = tnn.Conv2d(cin, filters, 1, bias=False), tnn.BatchNorm2d(filters)
        self.conv2 = tnn.Conv2d(filters, filters, 3, stride, 1, bias=False)  # stride in the 3x3 (v1.5)
        self.bn2 = tnn.BatchNorm2d(filters)
        self.conv3, self.bn3 = tnn.Conv2d(filters, cout, 1, bias=False), tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet18(tnn.Module):
    """torchvision.models.resnet18's (or, with bottlenecks, resnet50's) modules and names."""

    def __init__(self, num_classes, bottleneck=False):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (c, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)), 1):
            stride = 1 if i == 1 else 2
            if bottleneck:
                blocks = [Bottleneck(cin, c, stride)] + [Bottleneck(4 * c, c, 1) for _ in range(n - 1)]
                cin = 4 * c
            else:
                blocks = [BasicBlock(cin, c, stride)] + [BasicBlock(c, c, 1) for _ in range(n - 1)]
                cin = c
            setattr(self, f"layer{i}", tnn.Sequential(*blocks))
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vgg11_twin(num_classes, batch_norm, spatial):
    """torchvision.models.vgg11(_bn)'s features/classifier indices; the classifier's input is the
    flattened (c, h, w) map (torchvision's adaptive pool is the identity at 224x224)."""
    layers, cin = [], 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(tnn.MaxPool2d(2))
            continue
        layers.append(tnn.Conv2d(cin, v, 3, padding=1))
        if batch_norm:
            layers.append(tnn.BatchNorm2d(v))
        layers.append(tnn.ReLU())
        cin = v
    net = tnn.Module()
    net.features = tnn.Sequential(*layers)
    net.classifier = tnn.Sequential(tnn.Linear(512 * spatial * spatial, 4096), tnn.ReLU(), tnn.Dropout(),
                                    tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, num_classes))
    net.forward = lambda x: net.classifier(torch.flatten(net.features(x), 1))
    return net


def alexnet_twin(num_classes, spatial):
    net = tnn.Module()
    net.features = tnn.Sequential(
        tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
        tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
        tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
    net.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(256 * spatial * spatial, 4096), tnn.ReLU(),
                                    tnn.Dropout(), tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, num_classes))
    net.forward = lambda x: net.classifier(torch.flatten(net.features(x), 1))
    return net


def _random_stats(net):
    return randomize_batch_norm(net).eval()


def _save(net, path):
    safetensors_numpy.save_file({k: v.detach().numpy().copy() for k, v in net.state_dict().items()}, str(path))
    return path


def _logits_match(net, model, shape, tol=1e-4):
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = model.eval()(x).data
    assert float(np.abs(got - expected).max()) <= tol * float(np.abs(expected).max())


def test_resnet18_loads_torchvision_keys_from_safetensors(tmp_path):
    torch.manual_seed(1)
    net = _random_stats(ResNet18(10))
    assert "layer2.0.downsample.0.weight" in net.state_dict()  # torchvision's names, not striate's
    path = _save(net, tmp_path / "resnet18.safetensors")
    model = st.models.resnet18(num_classes=10, input_shape=(64, 64, 3), weights=str(path))
    _logits_match(net, model, (64, 64, 3))


@pytest.mark.slow
def test_resnet50_loads_torchvision_bottleneck_keys():
    torch.manual_seed(5)
    net = _random_stats(ResNet18(4, bottleneck=True))
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    model = st.models.resnet50(num_classes=4, input_shape=(32, 32, 3), weights=sd)
    _logits_match(net, model, (32, 32, 3))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg11_loads_torchvision_state_dict_with_flatten_reordered(batch_norm):
    torch.manual_seed(2)
    net = _random_stats(vgg11_twin(7, batch_norm, spatial=2))   # 64x64 input -> 2x2x512 before flatten
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    model = st.models.get("vgg11_bn" if batch_norm else "vgg11", num_classes=7, input_shape=(64, 64, 3), weights=sd)
    _logits_match(net, model, (64, 64, 3))


def test_alexnet_torchvision_layout_loads_by_name(tmp_path):
    torch.manual_seed(3)
    net = alexnet_twin(5, spatial=3).eval()   # 127x127 input -> 3x3x256 before flatten
    path = _save(net, tmp_path / "alexnet.safetensors")
    model = st.models.alexnet_torchvision(num_classes=5, input_shape=(127, 127, 3), weights=str(path))
    _logits_match(net, model, (127, 127, 3))


def test_grouped_conv_dense_and_bn_settings():
    torch.manual_seed(4)
    net = tnn.Sequential(tnn.Conv2d(4, 6, 3, groups=2), tnn.BatchNorm2d(6, eps=1e-3), tnn.ReLU(), tnn.Flatten(),
                         tnn.Linear(6 * 3 * 2, 3))
    net = _random_stats(net)
    model = st.nn.Sequential(st.nn.Conv2D(6, 3, groups=2), st.nn.BatchNorm(), st.nn.ReLU(), st.nn.Flatten(),
                             st.nn.Dense(3)).build((5, 4, 4))
    state = dict(net.state_dict())
    assert "1.num_batches_tracked" in state   # skipped
    st.io.load_torch_state_dict(model, state, eps=1e-3, input_shape=(5, 4, 4))
    assert model[1].eps == 1e-3
    _logits_match(net, model, (5, 4, 4))


def test_mismatched_architecture_names_the_layer():
    net = ResNet18(10)
    with pytest.raises(ValueError, match="the architectures differ"):
        st.io.load_torch_state_dict(st.models.resnet20(), net.state_dict())
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    sd["fc.weight"] = np.zeros((11, 512), np.float32)
    with pytest.raises(ValueError, match=r"Shape mismatch loading 'fc' into 'fc.w': striate expects \(512, 10\)"):
        st.models.resnet18(num_classes=10, input_shape=(64, 64, 3), weights=sd)


def test_key_map_and_file_errors(tmp_path):
    model = st.nn.Sequential(st.nn.Dense(3)).build((4,))
    sd = {"head.weight": np.ones((3, 4), np.float32), "head.bias": np.arange(3, dtype=np.float32)}
    st.io.load_torch_state_dict(model, sd, key_map={"head": "0"})
    np.testing.assert_array_equal(model[0].b.data, [0, 1, 2])
    with pytest.raises(KeyError, match="not a layer of the model"):
        st.io.load_torch_state_dict(model, sd, key_map={"head": "9"})
    with pytest.raises(FileNotFoundError):
        st.io.load_safetensors(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a readable .safetensors file"):
        st.io.load_safetensors(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="PyTorch .pth files need torch"):
        st.models.lenet5(weights=str(tmp_path / "w.pth"))
