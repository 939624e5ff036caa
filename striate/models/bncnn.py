"""Batch-normalised CNNs for 28x28 grayscale images: the default models of ``striate train`` on MNIST
(``mnist_cnn``) and Fashion-MNIST (``fashion_cnn``)."""
from __future__ import annotations

from ..nn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from ..random import check_random_state
from ._common import ConvNet, build
from .registry import register


class BNCNN(ConvNet):
    """A three-stage batch-normalised CNN (see :func:`bn_cnn`)."""


def _conv_bn_relu(filters: int, kernel: int, rng) -> list:
    # No conv bias: the batch norm that follows has its own shift (beta), so a bias would be redundant.
    return [Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal", rng=rng),
            BatchNorm(), ReLU()]


def bn_cnn(widths=(16, 32, 64), num_classes: int = 10, in_channels: int | None = None, input_shape=None, rng=None,
           dropout: float = 0.3, name: str = "bn_cnn") -> BNCNN:
    """Conv(w1, 5)-BN-ReLU -> MaxPool 2 -> Conv(w2, 3)-BN-ReLU -> MaxPool 2 -> Conv(w3, 3)-BN-ReLU ->
    Flatten -> Dropout -> Dense(num_classes).

    Where LeNet-5 has two narrow convolutions and three dense layers, this net puts its capacity in
    convolutions (three, each batch-normalised so plain SGD at a high rate is stable; Ioffe & Szegedy
    2015) and keeps the head to one dense layer over the last feature map, with dropout (Srivastava et
    al. 2014) as its regulariser. The 5x5 first layer sees a whole stroke or edge at full resolution;
    the flattened 7x7 map keeps where each feature is, which a global average pool would discard.

    Args:
        widths: filters of the three convolutions.
        num_classes, in_channels, input_shape, rng: as in :func:`~striate.models.lenet5`.
        dropout: rate of the dropout before the last layer.

    Shape:
        input ``(n, 28, 28, 1)`` -> 28x28xw1 -> 14x14xw1 -> 14x14xw2 -> 7x7xw2 -> 7x7xw3 -> 49*w3
        -> ``(n, num_classes)``.
    """
    rng = check_random_state(rng)
    w1, w2, w3 = widths
    features = Sequential(
        *_conv_bn_relu(w1, 5, rng), MaxPool2D(2),   # 28x28xw1 -> 14x14xw1
        *_conv_bn_relu(w2, 3, rng), MaxPool2D(2),   # 14x14xw2 -> 7x7xw2
        *_conv_bn_relu(w3, 3, rng),                 # 7x7xw3
    )
    classifier = Sequential(Flatten(), Dropout(dropout, rng=rng), Dense(num_classes, rng=rng))
    return build(BNCNN(features, classifier), name, (28, 28, 1), input_shape, in_channels)


@register("mnist_cnn", "batch-norm CNN 16-32-64 for 28x28 digits, default on MNIST, 55,034 params", (28, 28, 1))
def mnist_cnn(num_classes: int = 10, in_channels: int | None = None, input_shape=None, rng=None,
              dropout: float = 0.3) -> BNCNN:
    """The default model of ``striate train --dataset mnist``: :func:`bn_cnn` with widths 16-32-64
    (batch normalisation: Ioffe & Szegedy 2015; dropout: Srivastava et al. 2014).

    Example::

        >>> st.models.mnist_cnn().num_parameters()
        55034
    """
    return bn_cnn((16, 32, 64), num_classes, in_channels, input_shape, rng, dropout, name="mnist_cnn")


@register("fashion_cnn", "wider batch-norm CNN 32-64-128 for 28x28 objects, default on Fashion-MNIST", (28, 28, 1))
def fashion_cnn(num_classes: int = 10, in_channels: int | None = None, input_shape=None, rng=None,
                dropout: float = 0.3) -> BNCNN:
    """The default model of ``striate train --dataset fashion_mnist`` (Xiao, Rasul & Vollgraf 2017):
    :func:`bn_cnn` with widths 32-64-128, twice the digits' filters per stage. Clothing classes differ in
    texture and fine shape (shirt, T-shirt, pullover, coat), which needs more filters than pen strokes do:
    LeNet-5 under-fits them, and so did widths 24-48-96 with dropout 0.4 (91.8% test accuracy, 93.1% on
    its own training images).

    Example::

        >>> st.models.fashion_cnn().num_parameters()
        156138
    """
    return bn_cnn((32, 64, 128), num_classes, in_channels, input_shape, rng, dropout, name="fashion_cnn")
