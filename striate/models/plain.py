"""Plain networks for CIFAR (He, Zhang, Ren & Sun 2016, sec. 4.2): the CIFAR ResNets without shortcuts."""
from __future__ import annotations

from ..nn import BatchNorm, Conv2D, Dense, GlobalAvgPool2D, Identity, Module, ReLU, Sequential
from ..nn.fusion import conv_bn_relu
from ..random import check_random_state
from ._common import build
from .registry import register
from .resnet import _HE_OUT


def _conv(filters, stride, batch_norm, rng):
    # with batch norm a bias is redundant (BN's shift); without it the conv keeps its own bias
    return Conv2D(filters, 3, stride=stride, padding=1, use_bias=not batch_norm,
                  kernel_initializer=_HE_OUT, rng=rng)


class PlainBlock(Module):
    """Two 3x3 convs, each followed by batch norm and ReLU, and no shortcut:
    ``relu(bn2(conv2(relu(bn1(conv1(x))))))``. Names match :class:`BasicBlock`, so the two share
    their parameter names; without batch norm ``bn1``/``bn2`` are identities.

    Shape: ``(n, h, w, c)`` -> ``(n, ceil(h / stride), ceil(w / stride), filters)``.
    """

    def __init__(self, filters, stride=1, batch_norm=True, rng=None):
        super().__init__()
        norm = BatchNorm if batch_norm else Identity
        self.conv1, self.bn1, self.relu1 = _conv(filters, stride, batch_norm, rng), norm(), ReLU()
        self.conv2, self.bn2, self.relu2 = _conv(filters, 1, batch_norm, rng), norm(), ReLU()

    def forward(self, x):
        y = conv_bn_relu(self.conv1, self.bn1, self.relu1, x)
        return conv_bn_relu(self.conv2, self.bn2, self.relu2, y)


class CifarPlainNet(Module):
    """Plain network for 32x32 images (see :func:`plain_cifar`). Names follow :class:`CifarResNet`."""

    def __init__(self, n, num_classes=10, batch_norm=True, rng=None, include_top=True):
        super().__init__()
        self.include_top = include_top
        self.conv1 = _conv(16, 1, batch_norm, rng)                                         # 32x32x16
        self.bn1, self.relu = (BatchNorm() if batch_norm else Identity()), ReLU()
        for i, filters in enumerate((16, 32, 64), 1):
            blocks = [PlainBlock(filters, 2 if (j == 0 and i > 1) else 1, batch_norm, rng) for j in range(n)]
            setattr(self, f"layer{i}", Sequential(*blocks))   # 32, 16, 8
        if include_top:
            self.avgpool = GlobalAvgPool2D()
            self.fc = Dense(num_classes, rng=rng)

    def forward(self, x):
        x = conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        x = self.layer3(self.layer2(self.layer1(x)))  # (n, 8, 8, 64)
        return self.fc(self.avgpool(x)) if self.include_top else x


def plain_cifar(depth: int, num_classes: int = 10, in_channels: int | None = None, input_shape=None,
                batch_norm: bool = True, rng=None, include_top: bool = True, weights=None) -> CifarPlainNet:
    """Plain network for CIFAR-10 (He et al. 2016, sec. 4.2 and fig. 6): depth 6n + 2 (20, 32, 44, 56, 110).

    The CIFAR ResNet of the same depth with its shortcuts taken out: 3x3 conv 16 -> 6n 3x3 convs,
    2n each with 16, 32, 64 filters on 32x32, 16x16, 8x8 maps (stride 2 at the first conv of the
    second and third stage) -> global average pooling -> dense; batch norm after every conv, then ReLU.
    The paper's option A shortcuts have no parameters, so plain-N has exactly as many parameters as
    ResNet-N: plain-20 269,722, plain-56 853,018. He et al. find plain-56 reaches a higher training
    error than plain-20 (the degradation problem), while ResNet-56 trains better than ResNet-20.

    Args:
        depth: 6n + 2 for n >= 1.
        batch_norm: False leaves out every batch norm (the convs get biases instead), to study the
            gradients of a deep plain net without normalisation.
        num_classes, in_channels, input_shape, rng: as in :func:`striate.models.alexnet`
            (native input 32x32x3).
        include_top: False leaves out the global pooling and ``fc``.
        weights: a ``.safetensors`` file or state dict.

    Shape:
        input ``(n, 32, 32, 3)`` -> 8x8x64 -> ``(n, num_classes)``.

    Example::

        >>> st.models.plain20().num_parameters()
        269722
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR plain net depth must be 6n + 2 (20, 32, 44, 56, 110). Received: depth={depth!r}.")
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be True or False. Received: batch_norm={batch_norm!r}.")
    rng = check_random_state(rng)
    model = CifarPlainNet((depth - 2) // 6, num_classes, batch_norm, rng, include_top)
    return build(model, f"plain{depth}", (32, 32, 3), input_shape, in_channels, weights)


def _variant(depth):
    def builder(num_classes: int = 10, in_channels: int | None = None, input_shape=None, batch_norm: bool = True,
                rng=None, include_top: bool = True, weights=None) -> CifarPlainNet:
        return plain_cifar(depth, num_classes, in_channels, input_shape, batch_norm, rng, include_top, weights)

    builder.__name__ = builder.__qualname__ = f"plain{depth}"
    builder.__doc__ = (f"Plain-{depth} (He et al. 2016, sec. 4.2): ResNet-{depth} for CIFAR without shortcuts; "
                       "see :func:`plain_cifar`.")
    return builder


plain20, plain32, plain56 = (_variant(d) for d in (20, 32, 56))

for _d in (20, 32, 56):
    register(f"plain{_d}", f"Plain-{_d} for CIFAR (He et al. 2016 sec. 4.2): ResNet-{_d} without shortcuts",
             (32, 32, 3), globals()[f"plain{_d}"])
