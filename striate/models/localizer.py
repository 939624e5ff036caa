"""A classifier with a box-regression head: where the one object of an image is, and what it is."""
from __future__ import annotations

from .. import functional as F
from ..nn import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, Module, ReLU, Sequential
from ..random import check_random_state
from ._common import build
from .registry import register


def conv_bn_relu(filters: int, rng, kernel: int = 3) -> list:
    """Conv (same padding, no bias: the batch norm's shift replaces it) -> BN -> ReLU."""
    return [Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal", rng=rng),
            BatchNorm(), ReLU()]


class Localizer(Module):
    """Shared features, then two heads: class logits and the box (see :func:`localizer`).

    ``forward`` returns one array ``(n, num_classes + 4)``: the class logits, then the box as
    ``(cx, cy, w, h)`` in fractions of the image's width and height (a sigmoid keeps them in
    ``(0, 1)``); :class:`striate.training.tasks.Localization` splits them and turns the box into
    pixels. One output rather than a pair, so that the model exports to ONNX, serves and predicts
    like every other model of the zoo.
    """

    def __init__(self, features: Sequential, hidden: Sequential, num_classes: int, rng=None):
        super().__init__()
        self.features = features
        self.hidden = hidden
        self.classifier = Dense(num_classes, rng=rng)
        self.box = Dense(4, rng=rng)

    def forward(self, x):
        h = self.hidden(self.features(x))           # (n, hidden)
        return F.concat([self.classifier(h), F.sigmoid(self.box(h))], axis=-1)  # (n, num_classes + 4)


@register("localizer", "CNN 16-32-64 with class and box heads, one object per image (56x56)", (56, 56, 1))
def localizer(num_classes: int = 10, widths=(16, 32, 64), hidden: int = 128, in_channels: int | None = None,
              input_shape=None, rng=None) -> Localizer:
    """Classification plus localisation of one object per image: three conv-BN-ReLU stages with
    2x2 max-pooling, a dense layer over the *flattened* last map, then a class head and a 4-number
    box head.

    The box head must know where features are, so the head flattens the map (a global average pool
    would be translation invariant and could not say where the object is). The box is regressed as
    ``(cx, cy, w, h)`` in fractions of the image through a sigmoid, the classic "regression head"
    of classification-plus-localisation (Sermanet et al. 2014, OverFeat).

    Args:
        num_classes: outputs of the class head.
        widths: filters of the three stages.
        hidden: units of the shared dense layer.
        in_channels, input_shape, rng: as in :func:`~striate.models.lenet5` (native 56x56x1; the
            input size must be a multiple of 8).

    Shape:
        input ``(n, 56, 56, 1)`` -> 28x28xw1 -> 14x14xw2 -> 7x7xw3 -> hidden ->
        ``(n, num_classes + 4)`` (logits, then the box).

    Example::

        >>> st.models.localizer()(st.Tensor(np.zeros((2, 56, 56, 1), np.float32))).shape
        (2, 14)
    """
    rng = check_random_state(rng)
    w1, w2, w3 = widths
    features = Sequential(
        *conv_bn_relu(w1, rng), MaxPool2D(2),   # 28x28xw1
        *conv_bn_relu(w2, rng), MaxPool2D(2),   # 14x14xw2
        *conv_bn_relu(w3, rng), MaxPool2D(2),   # 7x7xw3
    )
    head = Sequential(Flatten(), Dense(hidden, rng=rng), ReLU())
    return build(Localizer(features, head, num_classes, rng), "localizer", (56, 56, 1), input_shape, in_channels)
