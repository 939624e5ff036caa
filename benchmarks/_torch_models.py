"""PyTorch twins of striate's benchmark models: same layers, same order, same parameter names.

The benchmark compares like with like only if both frameworks run the same network. Each twin here
mirrors one striate builder layer for layer — torch names are striate's with ``w``/``gamma`` ->
``weight`` and ``b``/``beta`` -> ``bias`` — so that :func:`copy_weights` can give a twin the exact
weights of a striate model and the two then compute the same function (checked by ``run.py`` before
it times anything, and by ``tests/test_benchmarks_smoke.py``).

Layouts: striate is NHWC with HWIO conv weights and ``(in, out)`` dense weights; torch is NCHW (held
in channels-last memory, i.e. NHWC bytes) with OIHW conv weights and ``(out, in)`` dense weights.

PyTorch is a development tool only (``pip install torch==2.13.0``); the library never imports it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

_NAME = {"w": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}


class FlattenNHWC(nn.Module):
    """Flatten in (h, w, c) order, as striate's ``Flatten`` does on NHWC maps.

    On a channels-last tensor the permute is a free view, so this is also torch's cheapest flatten.
    Shape: ``(n, c, h, w)`` -> ``(n, h * w * c)``.
    """

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)


class _ConvNet(nn.Module):
    """``classifier(features(x))``, as striate's ConvNet (layer names ``features.3``, ``classifier.1``)."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x):
        return self.classifier(self.features(x))


def torch_lenet5(num_classes: int = 10) -> nn.Module:
    """Twin of ``st.models.lenet5()``: conv 6@5x5 pad 2 -> max 2 -> conv 16@5x5 -> max 2 -> 120 -> 84 -> 10.

    Shape: ``(n, 1, 28, 28)`` -> ``(n, num_classes)``; 61,706 parameters with 10 classes.
    """
    features = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # (n, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),             # (n, 16, 5, 5)
    )
    classifier = nn.Sequential(
        FlattenNHWC(),                                               # (n, 400)
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )
    return _ConvNet(features, classifier)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016, sec. 4.2): keep every ``stride``-th pixel, zero-pad the new
    channels evenly on both sides (the odd one after) — striate's ``ZeroPadShortcut``. No parameters.

    Shape: ``(n, c, h, w)`` -> ``(n, filters, ceil(h / stride), ceil(w / stride))``.
    """

    def __init__(self, filters: int, stride: int):
        super().__init__()
        self.filters, self.stride = filters, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        extra = self.filters - x.shape[1]
        before = extra // 2
        # F.pad's (left, right) pairs run from the last axis backwards: (w, h, c)
        y = nn.functional.pad(x, (0, 0, 0, 0, before, extra - before))
        # keep the residual sum in channels-last, as the rest of the network (no layout conversions)
        return y.contiguous(memory_format=torch.channels_last)


class BasicBlock(nn.Module):
    """``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``; the first conv carries the stride."""

    def __init__(self, in_channels: int, filters: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, stride, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(filters), nn.ReLU()
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.shortcut = ZeroPadShortcut(filters, stride) if (stride != 1 or in_channels != filters) else None
        self.relu2 = nn.ReLU()

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + identity)


class CifarResNet(nn.Module):
    """Twin of ``st.models.resnet_cifar(depth)`` with option A shortcuts: 3x3 conv 16 -> 3 stages of
    ``n`` basic blocks (16, 32, 64 filters on 32, 16, 8 pixels) -> global average pool -> dense.
    Convs have no bias (BN follows); BN eps 1e-5 and momentum 0.1 as striate's defaults.
    """

    def __init__(self, n: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(16), nn.ReLU()
        c = 16
        for i, filters in enumerate((16, 32, 64), 1):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(c, filters, 2 if (j == 0 and i > 1) else 1))
                c = filters
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))   # (n, 64, 8, 8)
        return self.fc(x.mean((2, 3)))                 # global average pool -> (n, 64)


def torch_resnet20(num_classes: int = 10) -> nn.Module:
    """Twin of ``st.models.resnet20()`` (option A): 269,722 parameters with 10 classes.

    Shape: ``(n, 3, 32, 32)`` -> ``(n, num_classes)``.
    """
    return CifarResNet(3, num_classes)


def torch_resnet_cifar(depth: int, num_classes: int = 10) -> nn.Module:
    """Twin of ``st.models.resnet_cifar(depth)`` (option A), depth 6n + 2: ResNet-32, -56, ..."""
    return CifarResNet((depth - 2) // 6, num_classes)


_VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]}


def torch_vgg11_bn_cifar(num_classes: int = 10) -> nn.Module:
    """Twin of ``st.models.vgg_cifar(11)``: VGG-11 convs (no bias) each with BN and ReLU, 2x2 max-pools,
    then one dense layer on the 1x1x512 map. 9,228,362 parameters with 10 classes.

    Shape: ``(n, 3, 32, 32)`` -> ``(n, num_classes)``.
    """
    layers, c = [], 3
    for v in _VGG[11]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
        c = v
    return _ConvNet(nn.Sequential(*layers), nn.Sequential(FlattenNHWC(), nn.Linear(512, num_classes)))


def _conv_bn_relu(c_in: int, c_out: int) -> list:
    """Twin of ``striate.models.localizer.conv_bn_relu``: 3x3 conv (no bias) -> BN -> ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class CenterNet(nn.Module):
    """Twin of ``st.models.centernet()``: stages to 1/8, a 2x transposed conv added to the 1/4 map,
    a fusion conv and 1x1 heatmap and box heads, concatenated on the channels.

    Shape: ``(n, 1, 64, 64)`` -> ``(n, num_classes + 4, 16, 16)``.
    """

    def __init__(self, num_classes: int = 10, widths=(16, 32, 64), head: int = 32, in_channels: int = 1):
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, w1), nn.MaxPool2d(2), *_conv_bn_relu(w1, w2),
                                  nn.MaxPool2d(2))
        self.stage4 = nn.Sequential(*_conv_bn_relu(w2, w2))
        self.stage8 = nn.Sequential(nn.MaxPool2d(2), *_conv_bn_relu(w2, w3), *_conv_bn_relu(w3, w3))
        self.up = nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1, bias=False)
        self.fuse = nn.Sequential(*_conv_bn_relu(w2, head))
        self.heatmap = nn.Conv2d(head, num_classes, 1)
        self.boxes = nn.Conv2d(head, 4, 1)

    def forward(self, x):
        skip = self.stage4(self.stem(x))
        y = self.fuse(self.up(self.stage8(skip)) + skip)
        return torch.cat([self.heatmap(y), self.boxes(y)], dim=1)


class UNetBlock(nn.Module):
    """Twin of ``striate.models.segmentation.UNetBlock``: two conv-BN-ReLU layers."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.convs = nn.Sequential(*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out))

    def forward(self, x):
        return self.convs(x)


class UNet(nn.Module):
    """Twin of ``st.models.unet()``: two-conv blocks, 2x2 max-pooling, 2x2 stride-2 transposed convs
    and skip concatenations (skip first), a 1x1 classifier.

    Shape: ``(n, 1, 64, 64)`` -> ``(n, num_classes, 64, 64)``.
    """

    def __init__(self, num_classes: int = 11, widths=(16, 32, 64), in_channels: int = 1):
        super().__init__()
        self.depth = len(widths) - 1
        c = in_channels
        for i, w in enumerate(widths[:-1]):
            setattr(self, f"down{i}", self._block(c, w))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = self._block(c, widths[-1])
        c = widths[-1]
        for i in reversed(range(self.depth)):
            setattr(self, f"upconv{i}", nn.ConvTranspose2d(c, widths[i], 2, stride=2))
            setattr(self, f"up{i}", self._block(2 * widths[i], widths[i]))
            c = widths[i]
        self.classifier = nn.Conv2d(c, num_classes, 1)

    @staticmethod
    def _block(c_in, c_out):
        return UNetBlock(c_in, c_out)

    def forward(self, x):
        skips = []
        for i in range(self.depth):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for i in reversed(range(self.depth)):
            x = getattr(self, f"up{i}")(torch.cat([skips[i], getattr(self, f"upconv{i}")(x)], dim=1))
        return self.classifier(x)


def fold_torch_twin(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm2d into the Conv2d before it, in place (the twin of ``st.nn.fold_batch_norm``),
    with ``torch.nn.utils.fusion.fuse_conv_bn_eval``: the twins' pairs are ``convK``/``bnK``
    attributes of one module (ResNet) and neighbours in a Sequential (VGG). Returns the model, in eval mode.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in list(model.modules()):
        children = dict(module.named_children())
        if isinstance(module, nn.Sequential):
            pairs = [(a, b) for a, b in zip(list(children), list(children)[1:])
                     if isinstance(children[a], nn.Conv2d) and isinstance(children[b], nn.BatchNorm2d)]
        else:
            pairs = [(n, "bn" + n[4:]) for n in children if n.startswith("conv") and "bn" + n[4:] in children]
        for conv, bn in pairs:
            setattr(module, conv, fuse_conv_bn_eval(children[conv], children[bn]))
            setattr(module, bn, nn.Identity())
    return model.to(memory_format=torch.channels_last)


def num_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of a torch model (as striate's ``Module.num_parameters()``)."""
    return sum(p.numel() for p in model.parameters())


def _to_torch_layout(a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return a.transpose(3, 2, 0, 1)   # HWIO -> OIHW
    if a.ndim == 2:
        return a.T                       # (in, out) -> (out, in)
    return a


def copy_weights(st_model, torch_model: nn.Module) -> None:
    """Give ``torch_model`` the parameters and BatchNorm statistics of the striate twin ``st_model``.

    Matches by name (``features.0.w`` -> ``features.0.weight``) and refuses any mismatch in names or
    shapes, so a twin whose structure drifts from the striate model fails loudly here.
    """
    t_params = dict(torch_model.named_parameters())
    t_buffers = {k: v for k, v in torch_model.named_buffers() if not k.endswith("num_batches_tracked")}
    s_params = {}
    for name, p in st_model.named_parameters():
        prefix, _, leaf = name.rpartition(".")
        s_params[f"{prefix}.{_NAME[leaf]}" if prefix else _NAME[leaf]] = p.data
    s_buffers = dict((k, v) for k, v in st_model.named_buffers())
    if set(s_params) != set(t_params) or set(s_buffers) != set(t_buffers):
        raise ValueError(
            "The torch twin's names differ from the striate model's. "
            f"Only in striate: {sorted(set(s_params) - set(t_params)) + sorted(set(s_buffers) - set(t_buffers))}; "
            f"only in torch: {sorted(set(t_params) - set(s_params)) + sorted(set(t_buffers) - set(s_buffers))}."
        )
    with torch.no_grad():
        for name, value in list(s_params.items()) + list(s_buffers.items()):
            target = t_params.get(name, t_buffers.get(name))
            value = np.ascontiguousarray(_to_torch_layout(np.asarray(value)))
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{name}: striate shape {value.shape} (in torch layout) != torch {tuple(target.shape)}.")
            target.copy_(torch.from_numpy(value))


def to_torch_images(x: np.ndarray) -> torch.Tensor:
    """NHWC float array -> NCHW torch tensor in channels-last memory (the same bytes, no copy of layout)."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


TWINS = {"lenet5": torch_lenet5, "resnet20": torch_resnet20, "resnet32": lambda: torch_resnet_cifar(32),
         "resnet56": lambda: torch_resnet_cifar(56), "vgg11_bn_cifar": torch_vgg11_bn_cifar,
         "centernet": CenterNet, "unet": UNet}
