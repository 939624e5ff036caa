"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2013)."""
from __future__ import annotations

from ..nn import Conv2D, Dense, Dropout, Flatten, LocalResponseNorm, MaxPool2D, ReLU, Sequential
from ..nn.init import Constant, Normal
from ..random import check_random_state
from ._common import ConvNet, build, top
from .registry import register


class AlexNet(ConvNet):
    """AlexNet (see :func:`alexnet`)."""


class ZFNet(ConvNet):
    """ZFNet (see :func:`zfnet`)."""


def _classifier(num_classes, rng, hidden_bias):
    # 9216 -> 4096 -> 4096 -> classes, 50% dropout before each hidden dense layer (paper sec. 4.2)
    w = Normal(0.01)
    return Sequential(
        Flatten(),
        Dropout(0.5, rng=rng), Dense(4096, kernel_initializer=w, bias_initializer=hidden_bias, rng=rng), ReLU(),
        Dropout(0.5, rng=rng), Dense(4096, kernel_initializer=w, bias_initializer=hidden_bias, rng=rng), ReLU(),
        Dense(num_classes, kernel_initializer=w, bias_initializer=0.0, rng=rng),
    )


@register("alexnet", "AlexNet (Krizhevsky et al. 2012), single tower, LRN, 62,378,344 params", (224, 224, 3))
def alexnet(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
            include_top: bool = True, weights=None) -> AlexNet:
    """AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep
    convolutional neural networks"), the single-tower version of the seed tables.

    ======  =========================  =============  ===========
    layer   operation                  output         parameters
    ======  =========================  =============  ===========
    conv1   96 @ 11x11, stride 4, pad 2  55x55x96     34,944
    pool1   max 3x3, stride 2          27x27x96
    conv2   256 @ 5x5, pad 2           27x27x256      614,656
    pool2   max 3x3, stride 2          13x13x256
    conv3   384 @ 3x3, pad 1           13x13x384      885,120
    conv4   384 @ 3x3, pad 1           13x13x384      1,327,488
    conv5   256 @ 3x3, pad 1           13x13x256      884,992
    pool5   max 3x3, stride 2          6x6x256
    fc6     dense (after flatten 9216) 4096           37,752,832
    fc7     dense                      4096           16,781,312
    fc8     dense                      1000           4,097,000
    ======  =========================  =============  ===========

    62,378,344 parameters. ReLU after every conv and hidden dense layer; local response
    normalisation (n=5, alpha=1e-4, beta=0.75, k=2) after the ReLU of conv1 and conv2, before
    their pooling (sec. 3.3-3.4); 50% dropout before fc6 and fc7 (sec. 4.2). The paper's two GPU
    towers (conv2, conv4, conv5 seeing only half the channels) are merged into one, as in the seed
    tables (the paper's grouped version has 60.97M parameters).

    Initialisation (sec. 5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
    dense layers fc6, fc7 ("to accelerate the early stages of learning by providing the ReLUs with
    positive inputs"), 0 in conv1, conv3 and the output layer fc8.

    Args:
        num_classes: outputs of fc8.
        in_channels: input channels (default 3, or those of ``input_shape``).
        input_shape: (height, width[, channels]) to build for instead of 224x224x3; the size
            after pool5 sets fc6's input features.
        rng: Generator or seed for the initialisation.
        include_top: False leaves out the classifier (the model returns pool5's 6x6x256 maps).
        weights: a ``.safetensors`` file or state dict to load (see :func:`striate.io.load_pretrained`).

    Shape:
        input ``(n, 224, 224, 3)`` -> ``(n, num_classes)``.
    """
    rng = check_random_state(rng)
    w, zero, one = Normal(0.01), Constant(0.0), Constant(1.0)

    def conv(filters, k, b, **kw):
        return Conv2D(filters, k, kernel_initializer=w, bias_initializer=b, rng=rng, **kw)

    features = Sequential(
        conv(96, 11, zero, stride=4, padding=2), ReLU(), LocalResponseNorm(), MaxPool2D(3, 2),  # 55 -> 27
        conv(256, 5, one, padding=2), ReLU(), LocalResponseNorm(), MaxPool2D(3, 2),             # 27 -> 13
        conv(384, 3, zero, padding=1), ReLU(),
        conv(384, 3, one, padding=1), ReLU(),
        conv(256, 3, one, padding=1), ReLU(), MaxPool2D(3, 2),                                  # 13 -> 6
    )
    model = AlexNet(features, top(_classifier(num_classes, rng, one), include_top))
    return build(model, "alexnet", (224, 224, 3), input_shape, in_channels, weights)


@register("zfnet", "ZFNet (Zeiler & Fergus 2013): 7x7/2 first conv, 62,357,608 params", (224, 224, 3))
def zfnet(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
          include_top: bool = True, weights=None) -> ZFNet:
    """ZFNet (Zeiler & Fergus 2013, "Visualizing and understanding convolutional networks", fig. 3).

    AlexNet with a smaller, denser first layer — found by visualising AlexNet's filters: 96 @ 7x7
    stride 2 instead of 11x11 stride 4, and conv2 with stride 2. Sizes follow the paper's figure:

    224x224x3 -> conv 96@7x7/2 (pad 1) 110x110 -> max 3x3/2 (pad 1) 55x55 -> LRN
    -> conv 256@5x5/2 26x26 -> max 3x3/2 (pad 1) 13x13 -> LRN
    -> conv 384@3x3 -> conv 384@3x3 -> conv 256@3x3 (13x13, pad 1) -> max 3x3/2 6x6
    -> 4096 -> 4096 -> num_classes (dropout 0.5 before the hidden dense layers).

    The paper normalises contrast across feature maps after pooling; local response normalisation
    (AlexNet's) stands in for it. Initialisation as in the paper (sec. 3): weights N(0, 0.01),
    biases 0. 62,357,608 parameters with 1000 classes.

    Args:
        num_classes, in_channels, input_shape, rng, include_top, weights: as in :func:`alexnet`.
    """
    rng = check_random_state(rng)
    w = Normal(0.01)

    def conv(filters, k, **kw):
        return Conv2D(filters, k, kernel_initializer=w, rng=rng, **kw)

    features = Sequential(
        conv(96, 7, stride=2, padding=1), ReLU(), MaxPool2D(3, 2, padding=1), LocalResponseNorm(),   # 110 -> 55
        conv(256, 5, stride=2), ReLU(), MaxPool2D(3, 2, padding=1), LocalResponseNorm(),             # 26 -> 13
        conv(384, 3, padding=1), ReLU(),
        conv(384, 3, padding=1), ReLU(),
        conv(256, 3, padding=1), ReLU(), MaxPool2D(3, 2),                                             # 13 -> 6
    )
    model = ZFNet(features, top(_classifier(num_classes, rng, Constant(0.0)), include_top))
    return build(model, "zfnet", (224, 224, 3), input_shape, in_channels, weights)


class AlexNetTV(ConvNet):
    """AlexNet in torchvision's layout (see :func:`alexnet_torchvision`)."""


@register("alexnet_torchvision", "AlexNet as torchvision builds it (64-192-384-256-256, no LRN), 61,100,840 params",
          (224, 224, 3))
def alexnet_torchvision(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
                        include_top: bool = True, weights=None) -> AlexNetTV:
    """AlexNet in the layout of torchvision's ``alexnet`` (the "one weird trick" single-GPU variant,
    Krizhevsky 2014), whose state dicts it loads by name (``features.0.weight`` ... ``classifier.6``).

    conv 64@11x11/4 pad 2 -> max 3/2 -> conv 192@5x5 pad 2 -> max 3/2 -> conv 384, 256, 256 @3x3
    pad 1 -> max 3/2 (6x6x256 at 224x224) -> dropout -> dense 4096 -> dropout -> dense 4096 ->
    dense num_classes, ReLU after every conv and hidden dense layer, no LRN. 61,100,840 parameters.
    torchvision's ``AdaptiveAvgPool2d((6, 6))`` before the classifier is the identity at 224x224
    and is left out, so other input sizes change fc6's input features instead.

    Args:
        num_classes, in_channels, input_shape, rng, include_top, weights: as in :func:`alexnet`.
            The layer indices match torchvision's, so ``weights`` pairs by name.

    Shape:
        input ``(n, 224, 224, 3)`` -> ``(n, num_classes)``.
    """
    rng = check_random_state(rng)

    def conv(filters, k, **kw):
        return Conv2D(filters, k, kernel_initializer="he_uniform", rng=rng, **kw)

    features = Sequential(
        conv(64, 11, stride=4, padding=2), ReLU(), MaxPool2D(3, 2),     # 55 -> 27
        conv(192, 5, padding=2), ReLU(), MaxPool2D(3, 2),               # 27 -> 13
        conv(384, 3, padding=1), ReLU(),
        conv(256, 3, padding=1), ReLU(),
        conv(256, 3, padding=1), ReLU(), MaxPool2D(3, 2),               # 13 -> 6
    )
    if include_top:
        # torchvision flattens in forward(), not as a layer; as features.13 it keeps every index equal
        features.append(Flatten())
    classifier = Sequential(
        Dropout(0.5, rng=rng), Dense(4096, rng=rng), ReLU(),
        Dropout(0.5, rng=rng), Dense(4096, rng=rng), ReLU(),
        Dense(num_classes, rng=rng),
    )
    model = AlexNetTV(features, top(classifier, include_top))
    return build(model, "alexnet_torchvision", (224, 224, 3), input_shape, in_channels, weights)
