"""VGG-11/13/16/19 (Simonyan & Zisserman 2014), with or without batch normalisation."""
from __future__ import annotations

from ..nn import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from ..nn.init import Normal, VarianceScaling
from ..random import check_random_state
from ._common import ConvNet, build, top
from .registry import register

# Table 1 of the paper: filters per 3x3 conv, "M" = 2x2 max-pool stride 2.
_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],                      # A
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],             # B
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],                                                            # E
}


class VGG(ConvNet):
    """VGG (see :func:`vgg`)."""


def _conv_layers(depth: int, batch_norm: bool, rng, use_bias: bool) -> list:
    """VGG's convolutional part: 3x3 'same' convs (He init, fan-out) with ReLU, optionally batch
    norm between them, and 2x2 max pooling at each 'M' of the configuration."""
    conv_init = VarianceScaling(2.0, "fan_out", "normal")
    layers = []
    for v in _CONFIGS[depth]:
        if v == "M":
            layers.append(MaxPool2D(2))
            continue
        layers.append(Conv2D(v, 3, padding=1, use_bias=use_bias, kernel_initializer=conv_init, rng=rng))
        if batch_norm:
            layers.append(BatchNorm())
        layers.append(ReLU())
    return layers


def vgg(depth: int, num_classes: int = 1000, in_channels: int | None = None, input_shape=None,
        batch_norm: bool = False, rng=None, include_top: bool = True, weights=None) -> VGG:
    """VGG network (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale
    image recognition", table 1 configurations A, B, D, E = VGG-11, 13, 16, 19).

    Stacks of 3x3 convolutions (stride 1, pad 1) with ReLU, 2x2 max-pooling after each stack, then
    dense 4096 -> 4096 -> num_classes with 50% dropout after the hidden ones. ``batch_norm=True``
    inserts BatchNorm after every conv (the later "vgg16_bn" variant; +2 parameters per channel).
    Parameters with 1000 classes (torchvision's counts): VGG-11 132,863,336, VGG-13 133,047,848,
    VGG-16 138,357,544, VGG-19 143,667,240.

    Initialisation as torchvision's: conv weights He-normal (fan_out), dense N(0, 0.01), biases 0.

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: add BatchNorm after each conv.
        num_classes, in_channels, input_shape, rng, include_top, weights: as in
            :func:`striate.models.alexnet`. torchvision's VGG state dicts load directly (its
            classifier indices 0, 3, 6 are paired with striate's by position).

    Shape:
        input ``(n, 224, 224, 3)`` -> 7x7x512 (25,088 features) -> ``(n, num_classes)``.

    Building VGG-16 at 224x224 allocates and initialises 138M parameters and runs one forward of
    one image (15.5 G multiply-accumulates): a few seconds.
    """
    if depth not in _CONFIGS:
        raise ValueError(f"VGG depth must be one of {sorted(_CONFIGS)}. Received: depth={depth!r}.")
    rng = check_random_state(rng)
    layers = _conv_layers(depth, batch_norm, rng, use_bias=True)
    w = Normal(0.01)
    classifier = Sequential(
        Flatten(),
        Dense(4096, kernel_initializer=w, rng=rng), ReLU(), Dropout(0.5, rng=rng),
        Dense(4096, kernel_initializer=w, rng=rng), ReLU(), Dropout(0.5, rng=rng),
        Dense(num_classes, kernel_initializer=w, rng=rng),
    )
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")
    return build(VGG(Sequential(*layers), top(classifier, include_top)), name, (224, 224, 3), input_shape,
                 in_channels, weights)


def _variant(depth):
    def builder(num_classes: int = 1000, in_channels: int | None = None, input_shape=None,
                batch_norm: bool = False, rng=None, include_top: bool = True, weights=None) -> VGG:
        return vgg(depth, num_classes, in_channels, input_shape, batch_norm, rng, include_top, weights)

    builder.__name__ = builder.__qualname__ = f"vgg{depth}"
    builder.__doc__ = (f"VGG-{depth} (Simonyan & Zisserman 2014, configuration {'ABDE'[[11, 13, 16, 19].index(depth)]}); "
                       "see :func:`vgg`.")
    return builder


def _bn_variant(depth):
    def builder(num_classes: int = 1000, in_channels: int | None = None, input_shape=None, rng=None,
                include_top: bool = True, weights=None) -> VGG:
        return vgg(depth, num_classes, in_channels, input_shape, True, rng, include_top, weights)

    builder.__name__ = builder.__qualname__ = f"vgg{depth}_bn"
    builder.__doc__ = (f"VGG-{depth} (Simonyan & Zisserman 2014) with batch normalisation (Ioffe & Szegedy 2015) "
                       "after every conv; see :func:`vgg`.")
    return builder


vgg11, vgg13, vgg16, vgg19 = (_variant(d) for d in (11, 13, 16, 19))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_bn_variant(d) for d in (11, 13, 16, 19))

for _d, _plain, _bn, _p in ((11, vgg11, vgg11_bn, "132.9M"), (13, vgg13, vgg13_bn, "133.0M"),
                            (16, vgg16, vgg16_bn, "138.4M"), (19, vgg19, vgg19_bn, "143.7M")):
    register(f"vgg{_d}", f"VGG-{_d} (Simonyan & Zisserman 2014), {_p} params", (224, 224, 3), _plain)
    register(f"vgg{_d}_bn", f"VGG-{_d} with batch normalisation", (224, 224, 3), _bn)


def vgg_cifar(depth: int = 11, num_classes: int = 10, in_channels: int | None = None, input_shape=None,
              batch_norm: bool = True, rng=None, include_top: bool = True, weights=None) -> VGG:
    """VGG for 32x32 CIFAR images: the convolutions of :func:`vgg` (Simonyan & Zisserman 2014,
    table 1) with batch normalisation (Ioffe & Szegedy 2015) after each, and one dense layer on the
    1x1x512 map left by the five poolings — the "CIFAR width" of common CIFAR ports, whose 4096-wide
    hidden layers would be most of the parameters for a 32-pixel input. Convs have no bias where BN
    follows. VGG-11: 9,228,362
    parameters with 10 classes and batch norm.

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: BatchNorm after each conv (default True).
        num_classes, in_channels, input_shape, rng, include_top, weights: as in :func:`vgg`.

    Shape:
        input ``(n, 32, 32, 3)`` -> 1x1x512 -> ``(n, num_classes)``.

    Example::

        >>> st.models.vgg_cifar(11).num_parameters()
        9228362
    """
    if depth not in _CONFIGS:
        raise ValueError(f"VGG depth must be one of {sorted(_CONFIGS)}. Received: depth={depth!r}.")
    rng = check_random_state(rng)
    layers = _conv_layers(depth, batch_norm, rng, use_bias=not batch_norm)
    classifier = Sequential(Flatten(), Dense(num_classes, kernel_initializer=Normal(0.01), rng=rng))
    name = f"vgg{depth}" + ("_bn" if batch_norm else "") + "_cifar"
    return build(VGG(Sequential(*layers), top(classifier, include_top)), name, (32, 32, 3), input_shape,
                 in_channels, weights)
