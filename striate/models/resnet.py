"""Residual networks (He, Zhang, Ren & Sun 2016): ImageNet ResNet-18 ... 152 and CIFAR ResNet-20 ... 110."""
from __future__ import annotations

from .. import functional as F
from ..nn import BatchNorm, Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, Module, ReLU, Sequential
from ..nn.fusion import add_then, conv_bn_relu
from ..nn.init import VarianceScaling
from ..random import check_random_state
from ..tensor import get_array_module
from ._common import build
from .registry import register

_HE_OUT = VarianceScaling(2.0, "fan_out", "normal")  # torchvision's kaiming_normal_(mode='fan_out')


def _conv(filters, kernel, stride, rng):
    # convs feed a BatchNorm, whose shift makes a bias redundant
    return Conv2D(filters, kernel, stride=stride, padding=kernel // 2, use_bias=False,
                  kernel_initializer=_HE_OUT, rng=rng)


class BasicBlock(Module):
    """Two 3x3 convs with a shortcut (fig. 2): ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    The first conv carries the stride. ``shortcut`` is None (identity) when the shape is kept.

    Shape: ``(n, h, w, c)`` -> ``(n, ceil(h / stride), ceil(w / stride), filters)``.
    """

    expansion = 1

    def __init__(self, filters, stride=1, shortcut=None, rng=None):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = _conv(filters, 3, stride, rng), BatchNorm(), ReLU()
        self.conv2, self.bn2 = _conv(filters, 3, 1, rng), BatchNorm()
        if shortcut is not None:
            self.shortcut = shortcut
        self.relu2 = ReLU()

    def forward(self, x):
        identity = self.shortcut(x) if "shortcut" in self._modules else x
        y = conv_bn_relu(self.conv1, self.bn1, self.relu1, x)  # relu1(bn1(conv1(x))), fused
        y = conv_bn_relu(self.conv2, self.bn2, None, y)
        return add_then(self.relu2, y, identity)  # relu2(y + identity), fused


class Bottleneck(Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4) with a shortcut (fig. 5, ResNet-50 and deeper).

    ``stride_in_1x1=False`` (default) puts the stride in the 3x3 conv (torchvision, "ResNet v1.5");
    True puts it in the first 1x1 conv (the paper and the original Caffe models, "v1").

    Shape: ``(n, h, w, c)`` -> ``(n, ceil(h / stride), ceil(w / stride), 4 * filters)``.
    """

    expansion = 4

    def __init__(self, filters, stride=1, shortcut=None, rng=None, stride_in_1x1=False):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1, self.bn1, self.relu1 = _conv(filters, 1, s1, rng), BatchNorm(), ReLU()
        self.conv2, self.bn2, self.relu2 = _conv(filters, 3, s3, rng), BatchNorm(), ReLU()
        self.conv3, self.bn3 = _conv(filters * 4, 1, 1, rng), BatchNorm()
        if shortcut is not None:
            self.shortcut = shortcut
        self.relu3 = ReLU()

    def forward(self, x):
        identity = self.shortcut(x) if "shortcut" in self._modules else x
        y = conv_bn_relu(self.conv1, self.bn1, self.relu1, x)  # relu1(bn1(conv1(x))), fused
        y = conv_bn_relu(self.conv2, self.bn2, self.relu2, y)
        y = conv_bn_relu(self.conv3, self.bn3, None, y)
        return add_then(self.relu3, y, identity)  # relu3(y + identity), fused


class ZeroPadShortcut(Module):
    """Option A shortcut (He et al. 2016, sec. 3.3 and 4.2): subsample by ``stride`` and pad the new
    channels with zeros — no parameters.

    Shape: ``(n, h, w, c)`` -> ``(n, ceil(h / stride), ceil(w / stride), filters)``.
    """

    def __init__(self, filters, stride):
        super().__init__()
        self.filters, self.stride = filters, stride

    def forward(self, x):
        if self.stride > 1:
            x = F.max_pool2d(x, 1, self.stride)  # a 1x1 window: keeps every stride-th pixel
        extra = self.filters - x.shape[-1]
        if extra <= 0:
            return x
        n, h, w, _ = x.shape
        xp = get_array_module(x.data)
        before = extra // 2  # as many new channels on each side (the odd one after)
        parts = [xp.zeros((n, h, w, before), x.dtype), x, xp.zeros((n, h, w, extra - before), x.dtype)]
        return F.concat([p for p in parts if p.shape[-1]], axis=-1)

    def extra_repr(self):
        return f"{self.filters}, stride={self.stride}"


def _projection(filters, stride, rng):
    """Option B shortcut: 1x1 conv (stride) + BN, used only where the shape changes."""
    return Sequential(_conv(filters, 1, stride, rng), BatchNorm())


class ResNet(Module):
    """ImageNet ResNet (see :func:`resnet`). Names follow torchvision: conv1, bn1, layer1..4, fc."""

    def __init__(self, block, counts, num_classes=1000, stride_in_1x1=False, rng=None, include_top=True):
        super().__init__()
        self.include_top = include_top
        self.conv1, self.bn1, self.relu = _conv(64, 7, 2, rng), BatchNorm(), ReLU()   # 112x112x64
        self.maxpool = MaxPool2D(3, 2, padding=1)                                       # 56x56x64
        in_channels = 64
        for i, (filters, count) in enumerate(zip((64, 128, 256, 512), counts), 1):
            blocks = []
            for j in range(count):
                stride = 2 if (j == 0 and i > 1) else 1
                out = filters * block.expansion
                shortcut = _projection(out, stride, rng) if (stride != 1 or in_channels != out) else None
                kwargs = {"stride_in_1x1": stride_in_1x1} if block is Bottleneck else {}
                blocks.append(block(filters, stride, shortcut, rng, **kwargs))
                in_channels = out
            setattr(self, f"layer{i}", Sequential(*blocks))   # 56, 28, 14, 7
        if include_top:
            self.avgpool = GlobalAvgPool2D()
            self.fc = Dense(num_classes, rng=rng)

    def forward(self, x):
        x = self.maxpool(conv_bn_relu(self.conv1, self.bn1, self.relu, x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (n, 7, 7, 512 * expansion)
        return self.fc(self.avgpool(x)) if self.include_top else x


class CifarResNet(Module):
    """ResNet for 32x32 images (see :func:`resnet_cifar`)."""

    def __init__(self, n, num_classes=10, shortcut="A", rng=None, include_top=True):
        super().__init__()
        self.include_top = include_top
        self.conv1, self.bn1, self.relu = _conv(16, 3, 1, rng), BatchNorm(), ReLU()    # 32x32x16
        in_channels = 16
        for i, filters in enumerate((16, 32, 64), 1):
            blocks = []
            for j in range(n):
                stride = 2 if (j == 0 and i > 1) else 1
                sc = None
                if stride != 1 or in_channels != filters:
                    sc = ZeroPadShortcut(filters, stride) if shortcut == "A" else _projection(filters, stride, rng)
                blocks.append(BasicBlock(filters, stride, sc, rng))
                in_channels = filters
            setattr(self, f"layer{i}", Sequential(*blocks))   # 32, 16, 8
        if include_top:
            self.avgpool = GlobalAvgPool2D()
            self.fc = Dense(num_classes, rng=rng)

    def forward(self, x):
        x = conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        x = self.layer3(self.layer2(self.layer1(x)))  # (n, 8, 8, 64)
        return self.fc(self.avgpool(x)) if self.include_top else x


_IMAGENET = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
             101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


def resnet(depth: int, num_classes: int = 1000, in_channels: int | None = None, input_shape=None,
           stride_in_1x1: bool = False, rng=None, include_top: bool = True, weights=None) -> ResNet:
    """ImageNet ResNet (He et al. 2016, "Deep residual learning for image recognition", table 1).

    7x7/2 conv -> 3x3/2 max-pool -> four stages of basic blocks (18, 34) or bottleneck blocks (50,
    101, 152) with 64, 128, 256, 512 filters (x4 for bottlenecks), stride 2 at the start of stages
    2-4 -> global average pooling -> dense. Structure and parameter counts are torchvision's:
    shortcuts are identities, except a projection (1x1 conv with the stride + BN) where the shape
    changes (option B); convs have no bias (BN follows). Parameters with 1000 classes:
    ResNet-18 11,689,512, -34 21,797,672, -50 25,557,032, -101 44,549,160, -152 60,192,808.

    Args:
        depth: 18, 34, 50, 101 or 152.
        stride_in_1x1: bottlenecks only. False (default) puts the stride of a downsampling
            bottleneck in its 3x3 conv, as torchvision ("ResNet v1.5": slightly more accurate,
            receptive field 427 for ResNet-50); True puts it in the first 1x1 conv, as the paper and
            the original Caffe models (receptive field 483; Araujo et al. 2019). Same parameters.
        num_classes, in_channels, input_shape, rng: as in :func:`striate.models.alexnet`.
        include_top: False leaves out the global pooling and ``fc`` (the model returns layer4's maps).
        weights: a ``.safetensors`` file or state dict with torchvision's key names
            (``downsample`` is striate's ``shortcut``; layers are paired by position).

    Shape:
        input ``(n, 224, 224, 3)`` -> 7x7x512 (x4) -> ``(n, num_classes)``.
    """
    if depth not in _IMAGENET:
        raise ValueError(f"ResNet depth must be one of {sorted(_IMAGENET)}. Received: depth={depth!r}.")
    block, counts = _IMAGENET[depth]
    if stride_in_1x1 and block is not Bottleneck:
        raise ValueError(f"stride_in_1x1 applies to bottleneck ResNets (50, 101, 152). Received: depth={depth}.")
    rng = check_random_state(rng)
    model = ResNet(block, counts, num_classes, stride_in_1x1, rng, include_top)
    return build(model, f"resnet{depth}", (224, 224, 3), input_shape, in_channels, weights)


def resnet_cifar(depth: int, num_classes: int = 10, in_channels: int | None = None, input_shape=None,
                 shortcut: str = "A", rng=None, include_top: bool = True, weights=None) -> CifarResNet:
    """ResNet for CIFAR-10 (He et al. 2016, sec. 4.2): depth 6n + 2 (20, 32, 44, 56, 110, ...).

    3x3 conv 16 -> three stages of n basic blocks with 16, 32, 64 filters on 32x32, 16x16, 8x8 maps
    -> global average pooling -> dense. ``shortcut='A'`` (default, the paper's choice for CIFAR):
    identity shortcuts everywhere, and where the shape changes the input is subsampled and its new
    channels zero-padded — no extra parameters; ``'B'``: a 1x1 conv + BN projection there.
    ResNet-20 (option A) has 269,722 parameters (the paper's "0.27M"), ResNet-110 1,727,962.

    Args:
        depth: 6n + 2 for n >= 1.
        shortcut: 'A' (zero-padding) or 'B' (projection).
        num_classes, in_channels, input_shape, rng: as in :func:`striate.models.alexnet`
            (native input 32x32x3).
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110). Received: depth={depth!r}.")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (projection). Received: shortcut={shortcut!r}.")
    rng = check_random_state(rng)
    model = CifarResNet((depth - 2) // 6, num_classes, shortcut, rng, include_top)
    return build(model, f"resnet{depth}", (32, 32, 3), input_shape, in_channels, weights)


def _imagenet_variant(depth):
    if _IMAGENET[depth][0] is Bottleneck:
        def builder(num_classes: int = 1000, in_channels: int | None = None, input_shape=None,
                    stride_in_1x1: bool = False, rng=None, include_top: bool = True, weights=None) -> ResNet:
            return resnet(depth, num_classes, in_channels, input_shape, stride_in_1x1, rng, include_top, weights)
    else:
        def builder(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
                    include_top: bool = True, weights=None) -> ResNet:
            return resnet(depth, num_classes, in_channels, input_shape, False, rng, include_top, weights)
    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = f"ResNet-{depth} (He et al. 2016) for 224x224 ImageNet images; see :func:`resnet`."
    return builder


def _cifar_variant(depth):
    def builder(num_classes: int = 10, in_channels: int | None = None, input_shape=None, shortcut: str = "A",
                rng=None, include_top: bool = True, weights=None) -> CifarResNet:
        return resnet_cifar(depth, num_classes, in_channels, input_shape, shortcut, rng, include_top, weights)

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = (f"ResNet-{depth} (He et al. 2016, sec. 4.2) for 32x32 CIFAR images (n = {(depth - 2) // 6}); "
                       "see :func:`resnet_cifar`.")
    return builder


resnet18, resnet34, resnet50, resnet101, resnet152 = (_imagenet_variant(d) for d in (18, 34, 50, 101, 152))
resnet20, resnet32, resnet44, resnet56, resnet110 = (_cifar_variant(d) for d in (20, 32, 44, 56, 110))

for _d, _p in ((18, "11.7M"), (34, "21.8M"), (50, "25.6M"), (101, "44.5M"), (152, "60.2M")):
    register(f"resnet{_d}", f"ResNet-{_d} (He et al. 2016), ImageNet, {_p} params",
             (224, 224, 3), globals()[f"resnet{_d}"])
for _d in (20, 32, 44, 56, 110):
    register(f"resnet{_d}", f"ResNet-{_d} for CIFAR (He et al. 2016 sec. 4.2), option A shortcuts",
             (32, 32, 3), globals()[f"resnet{_d}"])
