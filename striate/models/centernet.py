"""A small CenterNet-style one-stage detector: objects as points (Zhou, Wang & Krahenbuhl 2019)."""
from __future__ import annotations

import math

from .. import functional as F
from ..nn import Conv2D, ConvTranspose2D, MaxPool2D, Module, Sequential
from ..random import check_random_state
from ._common import build
from .localizer import conv_bn_relu
from .registry import register


class CenterNet(Module):
    """Backbone to stride 8, one learned 2x upsampling with a skip from stride 4, then three heads
    on the stride-4 map (see :func:`centernet`).

    ``forward`` returns one map ``(n, h / 4, w / 4, num_classes + 4)``: channels
    ``[:num_classes]`` are the per-class centre heatmap logits, then the box size ``(w, h)`` and
    the centre's sub-cell offset ``(dx, dy)``, both in units of the stride (4 input pixels).
    :class:`striate.training.tasks.CenterNetDetection` encodes targets for it and decodes its boxes.
    """

    stride = 4

    def __init__(self, num_classes: int, widths, head: int, rng=None):
        super().__init__()
        w1, w2, w3 = widths
        self.num_classes = num_classes
        self.stem = Sequential(*conv_bn_relu(w1, rng), MaxPool2D(2),      # 1/2
                               *conv_bn_relu(w2, rng), MaxPool2D(2))      # 1/4
        self.stage4 = Sequential(*conv_bn_relu(w2, rng))                   # 1/4, the skip
        self.stage8 = Sequential(MaxPool2D(2), *conv_bn_relu(w3, rng), *conv_bn_relu(w3, rng))  # 1/8
        self.up = ConvTranspose2D(w2, 4, stride=2, padding=1, use_bias=False, rng=rng)  # 1/8 -> 1/4
        self.fuse = Sequential(*conv_bn_relu(head, rng))
        # heatmap bias: every centre starts at probability 0.1, so the first steps are not drowned
        # by the loss of the many background cells (the focal loss paper's prior, Lin et al. 2017)
        self.heatmap = Conv2D(num_classes, 1, bias_initializer=-math.log((1 - 0.1) / 0.1), rng=rng)
        self.boxes = Conv2D(4, 1, rng=rng)

    def forward(self, x):
        skip = self.stage4(self.stem(x))                  # (n, h/4, w/4, w2)
        deep = self.up(self.stage8(skip))                 # (n, h/4, w/4, w2)
        y = self.fuse(deep + skip)                        # (n, h/4, w/4, head)
        return F.concat([self.heatmap(y), self.boxes(y)], axis=-1)


@register("centernet", "CenterNet-style detector, heatmaps + size/offset at stride 4 (64x64)", (64, 64, 1))
def centernet(num_classes: int = 10, widths=(16, 32, 64), head: int = 32, in_channels: int | None = None,
              input_shape=None, rng=None) -> CenterNet:
    """A one-stage detector that finds objects as the peaks of per-class centre heatmaps (Zhou,
    Wang & Krahenbuhl 2019, "Objects as points"), sized for small canvases on a CPU.

    Why centres rather than SSD-style anchors: every output cell is trained by one dense,
    per-pixel loss (a focal loss on Gaussian-splatted centres, plus L1 on size and offset at the
    centres), with no anchor sizes or aspect ratios to tune to the data, no IoU matching of
    anchors to boxes and no hard-negative mining; a 3x3 max-pool finds the peaks, so decoding is
    cheap and almost needs no NMS. The one head at stride 4 fits objects from about 8 pixels up to
    the canvas, which is the range of digits (or other small objects) on 64-128 pixel canvases, and
    a small backbone trains in minutes on two cores.

    Backbone: conv-BN-ReLU stages (w1 at 1/1, w2 at 1/2, w2 at 1/4, two w3 at 1/8) with 2x2
    max-pooling, a 4x4 stride-2 transposed conv back to 1/4 added to the 1/4 features (a skip), a
    3x3 fusion conv, and two 1x1 heads.

    Args:
        num_classes: object classes (heatmap channels).
        widths: filters of the stages at 1/1-1/2, 1/4 and 1/8.
        head: filters of the fusion conv that feeds the heads.
        in_channels, input_shape, rng: as in :func:`~striate.models.lenet5` (native 64x64x1; the
            input size must be a multiple of 8).

    Shape:
        input ``(n, 64, 64, 1)`` -> 16x16xw2 (skip) -> 8x8xw3 -> 16x16 -> ``(n, 16, 16, num_classes + 4)``.

    Example::

        >>> st.models.centernet()(st.Tensor(np.zeros((1, 64, 64, 1), np.float32))).shape
        (1, 16, 16, 14)
    """
    rng = check_random_state(rng)
    return build(CenterNet(num_classes, widths, head, rng), "centernet", (64, 64, 1), input_shape, in_channels)
