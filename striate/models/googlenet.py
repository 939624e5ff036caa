"""GoogLeNet / Inception v1 (Szegedy et al. 2014)."""
from __future__ import annotations

from .. import functional as F
from ..nn import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, Identity,
                  LocalResponseNorm, MaxPool2D, Module, ReLU, Sequential)
from ..random import check_random_state
from ._common import build
from .registry import register


def _conv(filters, kernel, rng, batch_norm, stride=1, padding=0):
    """conv -> [BN] -> ReLU (the conv has no bias when BN follows)."""
    layers = [Conv2D(filters, kernel, stride=stride, padding=padding, use_bias=not batch_norm,
                     kernel_initializer="he_normal", rng=rng)]
    if batch_norm:
        layers.append(BatchNorm(eps=1e-3))
    layers.append(ReLU())
    return Sequential(*layers)


class Inception(Module):
    """Inception module (fig. 2b): four parallel branches concatenated along channels.

    1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool (stride 1) -> 1x1. The 1x1 "reduce" convs cut the
    channels before the expensive 3x3 and 5x5 convs. Output channels: c1 + c3 + c5 + pool_proj.

    Shape: ``(n, h, w, c)`` -> ``(n, h, w, c1 + c3 + c5 + pool_proj)``.
    """

    def __init__(self, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, rng=None, batch_norm=False):
        super().__init__()
        self.branch1 = _conv(c1, 1, rng, batch_norm)
        self.branch2 = Sequential(_conv(c3_reduce, 1, rng, batch_norm), _conv(c3, 3, rng, batch_norm, padding=1))
        self.branch3 = Sequential(_conv(c5_reduce, 1, rng, batch_norm), _conv(c5, 5, rng, batch_norm, padding=2))
        self.branch4 = Sequential(MaxPool2D(3, 1, padding=1), _conv(pool_proj, 1, rng, batch_norm))

    def forward(self, x):
        return F.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=-1)


class AuxClassifier(Module):
    """Auxiliary classifier on 4a and 4d (sec. 5): avg-pool 5x5/3 -> 1x1 conv 128 -> dense 1024
    -> dropout 0.7 -> dense num_classes. Shape: ``(n, 14, 14, c)`` -> ``(n, num_classes)``."""

    def __init__(self, num_classes, rng=None, batch_norm=False):
        super().__init__()
        self.head = Sequential(
            AvgPool2D(5, 3), _conv(128, 1, rng, batch_norm), Flatten(),     # 4x4x128 -> 2048
            Dense(1024, rng=rng), ReLU(), Dropout(0.7, rng=rng), Dense(num_classes, rng=rng),
        )

    def forward(self, x):
        return self.head(x)


# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
_TABLE = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(Module):
    """GoogLeNet (see :func:`googlenet`)."""

    def __init__(self, num_classes=1000, aux_logits=False, batch_norm=False, rng=None, include_top=True):
        super().__init__()
        norm = Identity if batch_norm else LocalResponseNorm  # BN replaces LRN
        # 'same' pooling reproduces the paper's sizes: 112 -> 56 -> 28 -> 14 -> 7
        self.stem = Sequential(
            _conv(64, 7, rng, batch_norm, stride=2, padding=3), MaxPool2D(3, 2, padding="same"), norm(),  # 56x56x64
            _conv(64, 1, rng, batch_norm), _conv(192, 3, rng, batch_norm, padding=1), norm(),
            MaxPool2D(3, 2, padding="same"),                                                            # 28x28x192
        )
        inc = {k: Inception(*v, rng=rng, batch_norm=batch_norm) for k, v in _TABLE.items()}
        self.inception3 = Sequential(inc["3a"], inc["3b"], MaxPool2D(3, 2, padding="same"))          # 14x14x480
        self.inception4a = inc["4a"]                                                                # 14x14x512
        self.inception4bcd = Sequential(inc["4b"], inc["4c"], inc["4d"])                            # 14x14x528
        self.inception4e = Sequential(inc["4e"], MaxPool2D(3, 2, padding="same"))                   # 7x7x832
        self.inception5 = Sequential(inc["5a"], inc["5b"])                                          # 7x7x1024
        # without the top the model returns the 7x7x1024 maps of inception 5b
        self.head = Sequential(GlobalAvgPool2D(), Dropout(0.4, rng=rng), Dense(num_classes, rng=rng)) \
            if include_top else Sequential()
        self.aux_logits = bool(aux_logits)
        if self.aux_logits:
            self.aux1 = AuxClassifier(num_classes, rng, batch_norm)
            self.aux2 = AuxClassifier(num_classes, rng, batch_norm)

    def forward(self, x):
        """Logits ``(n, num_classes)``; with ``aux_logits`` in training mode ``(logits, aux1, aux2)``
        (weight the auxiliary losses by 0.3, sec. 5)."""
        # the auxiliary heads also run on the first (building) forward, so that their lazily-shaped
        # parameters exist before training starts
        run_aux = self.aux_logits and (self.training or self.aux1.head[-1].w is None)
        x = self.inception4a(self.inception3(self.stem(x)))           # (n, 14, 14, 512)
        aux1 = self.aux1(x) if run_aux else None
        x = self.inception4bcd(x)                                     # (n, 14, 14, 528)
        aux2 = self.aux2(x) if run_aux else None
        logits = self.head(self.inception5(self.inception4e(x)))      # (n, num_classes)
        return (logits, aux1, aux2) if run_aux and self.training else logits


@register("googlenet", "GoogLeNet / Inception v1 (Szegedy et al. 2014), 22 layers, concat branches",
          (224, 224, 3))
def googlenet(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, aux_logits: bool = False,
              batch_norm: bool = False, rng=None, include_top: bool = True, weights=None) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions"), Inception v1, table 1.

    Stem (7x7/2 conv, pool, LRN, 1x1 + 3x3 convs, LRN, pool), nine inception modules (3a-5b) whose
    four branches are concatenated along channels (``F.concat(..., axis=-1)``), global average
    pooling, 40% dropout and a dense layer. The 5x5 branch is a true 5x5 conv as in the paper
    (torchvision's port uses 3x3 there). 6,998,552 parameters with 1000 classes and no auxiliary
    heads (the paper's table counts about 6.8M, leaving out biases).

    Args:
        aux_logits: add the two auxiliary classifiers (on 4a and 4d); off by default. In training
            mode the model then returns ``(logits, aux1, aux2)``; in evaluation only ``logits``.
        batch_norm: conv -> BN -> ReLU everywhere and no LRN (the later "Inception v1 with BN",
            torchvision's layout).
        num_classes, in_channels, input_shape, rng, include_top, weights: as in
            :func:`striate.models.alexnet`.

    Shape:
        input ``(n, 224, 224, 3)`` -> 7x7x1024 -> ``(n, num_classes)``.
    """
    rng = check_random_state(rng)
    model = GoogLeNet(num_classes, aux_logits, batch_norm, rng, include_top)
    return build(model, "googlenet", (224, 224, 3), input_shape, in_channels, weights)
