"""Network in Network (Lin, Chen & Yan 2013)."""
from __future__ import annotations

from ..nn import Conv2D, Dropout, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential
from ..random import check_random_state
from ._common import ConvNet, build, top
from .registry import register


class NiN(ConvNet):
    """Network in Network (see :func:`nin`)."""


def _mlpconv(filters, kernel, stride, padding, rng):
    # an mlpconv block: a k x k conv followed by two 1x1 convs = a small MLP shared over positions
    return [Conv2D(filters, kernel, stride=stride, padding=padding, kernel_initializer="he_normal", rng=rng), ReLU(),
            Conv2D(filters, 1, kernel_initializer="he_normal", rng=rng), ReLU(),
            Conv2D(filters, 1, kernel_initializer="he_normal", rng=rng), ReLU()]


@register("nin", "Network in Network (Lin et al. 2013): mlpconv blocks + global average pooling", (224, 224, 3))
def nin(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
        include_top: bool = True, weights=None) -> NiN:
    """Network in Network (Lin, Chen & Yan 2013, "Network in network"), ImageNet version.

    Four mlpconv blocks (a k x k conv followed by two 1x1 convs, each with ReLU: a micro multilayer
    perceptron slid over the image) separated by 3x3/2 max-pooling; the last block has one map per
    class and global average pooling replaces the dense layers (sec. 3.2), so the model has no
    fully connected layer at all. Layout of the authors' ImageNet model (AlexNet-sized first conv):

    224x224x3 -> mlpconv 96 (11x11/4) 54x54 -> pool 26 -> mlpconv 256 (5x5, pad 2) -> pool 12
    -> mlpconv 384 (3x3, pad 1) -> pool 5 -> dropout 0.5 -> mlpconv num_classes (3x3, pad 1)
    -> global average pool -> ``(n, num_classes)`` (logits; the last ReLU is kept as in the paper's
    model). He-normal initialisation.

    Args:
        num_classes, in_channels, input_shape, rng, include_top, weights: as in
            :func:`striate.models.alexnet` (without the top: the 5x5x384 maps of the third block).
    """
    rng = check_random_state(rng)
    features = Sequential(
        *_mlpconv(96, 11, 4, 0, rng), MaxPool2D(3, 2),     # 54x54x96 -> 26x26x96
        *_mlpconv(256, 5, 1, 2, rng), MaxPool2D(3, 2),     # 26x26x256 -> 12x12x256
        *_mlpconv(384, 3, 1, 1, rng), MaxPool2D(3, 2),     # 12x12x384 -> 5x5x384
    )
    classifier = Sequential(Dropout(0.5, rng=rng), *_mlpconv(num_classes, 3, 1, 1, rng), GlobalAvgPool2D())
    return build(NiN(features, top(classifier, include_top)), "nin", (224, 224, 3), input_shape, in_channels,
                 weights)
