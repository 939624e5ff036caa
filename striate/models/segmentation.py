"""Fully convolutional segmentation: FCN (Long, Shelhamer & Darrell 2015) and U-Net (Ronneberger,
Fischer & Brox 2015), with small default widths for CPUs."""
from __future__ import annotations

from .. import functional as F
from ..nn import Conv2D, ConvTranspose2D, MaxPool2D, Module, Sequential
from ..random import check_random_state
from ._common import build
from .localizer import conv_bn_relu
from .registry import register


class FCN(Module):
    """FCN-16s-style net (see :func:`fcn`): scores at 1/8 and 1/4, learned bilinear upsampling."""

    def __init__(self, num_classes: int, widths, rng=None):
        super().__init__()
        w1, w2, w3 = widths
        self.stage2 = Sequential(*conv_bn_relu(w1, rng), MaxPool2D(2))                            # 1/2
        self.stage4 = Sequential(*conv_bn_relu(w2, rng), MaxPool2D(2))                            # 1/4
        self.stage8 = Sequential(*conv_bn_relu(w3, rng), *conv_bn_relu(w3, rng), MaxPool2D(2))    # 1/8
        self.score8 = Conv2D(num_classes, 1, rng=rng)
        self.score4 = Conv2D(num_classes, 1, kernel_initializer="zeros", rng=rng)  # the skip starts silent
        self.up2 = ConvTranspose2D(num_classes, 4, stride=2, padding=1, use_bias=False,
                                   kernel_initializer="bilinear")                                 # 1/8 -> 1/4
        self.up4 = ConvTranspose2D(num_classes, 8, stride=4, padding=2, use_bias=False,
                                   kernel_initializer="bilinear")                                 # 1/4 -> 1/1

    def forward(self, x):
        f4 = self.stage4(self.stage2(x))                      # (n, h/4, w/4, w2)
        s8 = self.score8(self.stage8(f4))                     # (n, h/8, w/8, k)
        s4 = self.up2(s8) + self.score4(f4)                   # (n, h/4, w/4, k)
        return self.up4(s4)                                   # (n, h, w, k)


@register("fcn", "FCN with a 1/4 skip and bilinear-initialised transposed convs (64x64)", (64, 64, 1))
def fcn(num_classes: int = 11, widths=(16, 32, 64), in_channels: int | None = None, input_shape=None,
        rng=None) -> FCN:
    """A fully convolutional network for per-pixel classes (Long, Shelhamer & Darrell 2015).

    A conv backbone to stride 8, a 1x1 conv that scores every class at 1/8, a 4x4 stride-2
    transposed conv initialised as bilinear upsampling to 1/4, where the 1x1 scores of the 1/4
    features are added (the skip that recovers finer boundaries, FCN-16s' idea one level lower;
    initialised to zero so training starts from the coarse prediction, as in the paper), and an
    8x8 stride-4 transposed conv, also bilinear at first, back to the input size. Both upsamplers
    are learned.

    Args:
        num_classes: classes per pixel, background included (default 11: background + 10 digits).
        widths: filters of the stages at 1/1, 1/2 and 1/4 (two convs).
        in_channels, input_shape, rng: as in :func:`~striate.models.lenet5` (native 64x64x1; the
            input size must be a multiple of 8).

    Shape:
        input ``(n, h, w, c)`` -> scores ``(n, h/8, w/8, k)`` -> ``(n, h, w, num_classes)``.

    Example::

        >>> st.models.fcn()(st.Tensor(np.zeros((1, 64, 64, 1), np.float32))).shape
        (1, 64, 64, 11)
    """
    rng = check_random_state(rng)
    return build(FCN(num_classes, widths, rng), "fcn", (64, 64, 1), input_shape, in_channels)


class UNetBlock(Module):
    """Two conv-BN-ReLU layers: U-Net's unit at every level."""

    def __init__(self, filters: int, rng=None):
        super().__init__()
        self.convs = Sequential(*conv_bn_relu(filters, rng), *conv_bn_relu(filters, rng))

    def forward(self, x):
        return self.convs(x)


class UNet(Module):
    """Encoder, bottleneck, decoder with skip concatenations (see :func:`unet`)."""

    def __init__(self, num_classes: int, widths, rng=None):
        super().__init__()
        self.depth = len(widths) - 1
        for i, w in enumerate(widths[:-1]):
            setattr(self, f"down{i}", UNetBlock(w, rng))
        self.pool = MaxPool2D(2)
        self.bottleneck = UNetBlock(widths[-1], rng)
        for i in reversed(range(self.depth)):
            w = widths[i]
            setattr(self, f"upconv{i}", ConvTranspose2D(w, 2, stride=2, kernel_initializer="he_normal", rng=rng))
            setattr(self, f"up{i}", UNetBlock(w, rng))
        self.classifier = Conv2D(num_classes, 1, rng=rng)

    def forward(self, x):
        skips = []
        for i in range(self.depth):
            x = getattr(self, f"down{i}")(x)                 # (n, h / 2^i, w / 2^i, widths[i])
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)                               # (n, h / 2^depth, w / 2^depth, widths[-1])
        for i in reversed(range(self.depth)):
            x = getattr(self, f"upconv{i}")(x)               # 2x: (n, h / 2^i, w / 2^i, widths[i])
            x = getattr(self, f"up{i}")(F.concat([skips[i], x], axis=-1))
        return self.classifier(x)                            # (n, h, w, num_classes)


@register("unet", "U-Net 16-32-64 with skip concatenations (64x64)", (64, 64, 1))
def unet(num_classes: int = 11, widths=(16, 32, 64), in_channels: int | None = None, input_shape=None,
         rng=None) -> UNet:
    """U-Net (Ronneberger, Fischer & Brox 2015): a contracting path of two-conv blocks and 2x2
    max-pooling, a bottleneck, and an expanding path where each 2x2 stride-2 transposed conv is
    followed by concatenation with the encoder's map of the same size (the skip that carries
    exact positions) and two convs; a 1x1 conv scores every class.

    Differences from the paper, for small images on a CPU: 'same' padding (the output has the
    input's size, no cropping), batch normalisation after every conv, and widths 16-32-64 with
    two poolings by default (the paper: 64-1024, four poolings).

    Args:
        num_classes: classes per pixel, background included (default 11).
        widths: filters per level, the last one the bottleneck's; ``len(widths) - 1`` poolings.
        in_channels, input_shape, rng: as in :func:`~striate.models.lenet5` (native 64x64x1; the
            input size must be a multiple of ``2 ** (len(widths) - 1)``).

    Shape:
        input ``(n, h, w, c)`` -> bottleneck ``(n, h/4, w/4, 64)`` -> ``(n, h, w, num_classes)``.

    Example::

        >>> st.models.unet()(st.Tensor(np.zeros((1, 64, 64, 1), np.float32))).shape
        (1, 64, 64, 11)
    """
    rng = check_random_state(rng)
    return build(UNet(num_classes, tuple(widths), rng), "unet", (64, 64, 1), input_shape, in_channels)
