"""LeNet-5 and the small default CNN for the embedded 8x8 digits data set."""
from __future__ import annotations

from ..nn import (BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU,
                  Sequential)
from ..random import check_random_state
from ._common import ConvNet, build, top
from .registry import register


class LeNet5(ConvNet):
    """LeNet-5 (see :func:`lenet5`)."""


class DigitsCNN(ConvNet):
    """The default CNN of ``striate train`` (see :func:`digits_cnn`)."""


@register("lenet5", "LeNet-5 (LeCun et al. 1998), ReLU + max-pool, 61,706 params", (28, 28, 1))
def lenet5(num_classes: int = 10, in_channels: int | None = None, input_shape=None, rng=None,
           include_top: bool = True, weights=None) -> LeNet5:
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
    recognition"), as usually trained on 28x28 MNIST.

    conv 6@5x5 pad 2 -> pool 2 -> conv 16@5x5 -> pool 2 -> dense 120 -> 84 -> num_classes.
    The paper's 32x32 input is replaced by padding 2 on conv1 (28 + 4 = 32, so every later size is
    the paper's). Modern practice replaces its scaled tanh and trainable sub-sampling by ReLU and
    max-pooling, and its Gaussian-connection output by a dense layer; conv2 connects to all 6 maps
    (the paper's sparse connection table is dropped). 61,706 parameters with 10 classes.

    Args:
        num_classes: outputs of the last layer (logits).
        in_channels: input channels (default 1, or those of ``input_shape``).
        input_shape: (height, width[, channels]) to build for instead of the native 28x28x1.
        rng: Generator or seed for the initialisation.
        include_top: False leaves out the classifier (flatten and dense layers): the model then
            returns the 5x5x16 feature maps, for transfer learning.
        weights: a ``.safetensors`` file or a PyTorch-named state dict to load (see
            :func:`striate.io.load_pretrained`).

    Shape:
        input ``(n, 28, 28, 1)`` -> 28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 -> 400 -> 120 -> 84
        -> ``(n, num_classes)``.

    Example::

        >>> st.models.lenet5().num_parameters()
        61706
    """
    rng = check_random_state(rng)
    features = Sequential(
        Conv2D(6, 5, padding=2, rng=rng), ReLU(), MaxPool2D(2),   # 28x28x6 -> 14x14x6
        Conv2D(16, 5, rng=rng), ReLU(), MaxPool2D(2),             # 10x10x16 -> 5x5x16
    )
    classifier = Sequential(
        Flatten(),                                                # 400
        Dense(120, rng=rng), ReLU(),
        Dense(84, rng=rng), ReLU(),
        Dense(num_classes, rng=rng),
    )
    return build(LeNet5(features, top(classifier, include_top)), "lenet5", (28, 28, 1), input_shape, in_channels,
                 weights)


@register("digits_cnn", "small CNN for the embedded 8x8 digits (scikit-learn), default of `striate train`",
          (8, 8, 1))
def digits_cnn(num_classes: int = 10, in_channels: int | None = None, input_shape=None, rng=None,
               dropout: float = 0.25, include_top: bool = True, weights=None) -> DigitsCNN:
    """A small batch-normalised CNN for the 8x8 grayscale digits that ship with scikit-learn
    (``sklearn.datasets.load_digits``: 1,797 images, 10 classes) — the default model of
    ``striate train``. It reaches >= 98% test accuracy within a few epochs.

    Conv(32, 3, same)-BN-ReLU -> Conv(32, 3, same)-BN-ReLU -> MaxPool 2 -> Conv(64, 3, same)-BN-ReLU
    -> global average pool -> Dropout -> Dense(num_classes). Batch normalisation (Ioffe & Szegedy
    2015) makes it train fast with plain SGD; global average pooling (Lin et al. 2013) keeps the
    head small (it works for any input size >= 2x2).

    Args:
        num_classes, in_channels, input_shape, rng, include_top, weights: as in :func:`lenet5`.
        dropout: rate of the dropout before the last layer.

    Shape:
        input ``(n, 8, 8, 1)`` -> 8x8x32 -> 8x8x32 -> 4x4x32 -> 4x4x64 -> 64 -> ``(n, num_classes)``.
    """
    rng = check_random_state(rng)
    features = Sequential(
        Conv2D(32, 3, padding="same", use_bias=False, kernel_initializer="he_normal", rng=rng), BatchNorm(), ReLU(),
        Conv2D(32, 3, padding="same", use_bias=False, kernel_initializer="he_normal", rng=rng), BatchNorm(), ReLU(),
        MaxPool2D(2),
        Conv2D(64, 3, padding="same", use_bias=False, kernel_initializer="he_normal", rng=rng), BatchNorm(), ReLU(),
    )
    classifier = Sequential(GlobalAvgPool2D(), Dropout(dropout, rng=rng), Dense(num_classes, rng=rng))
    return build(DigitsCNN(features, top(classifier, include_top)), "digits_cnn", (8, 8, 1), input_shape,
                 in_channels, weights)
