"""Helpers shared by the architecture files: the input shape rule and building with clear errors."""
from __future__ import annotations

import numbers

from ..nn import Module, Sequential
from ..summary.trace import trace_forward
from ..validation import check_int


def resolve_input_shape(name: str, native: tuple, input_shape, in_channels) -> tuple:
    """The (height, width, channels) a model is built for.

    ``input_shape`` overrides the native size; ``in_channels`` (default: the native channels, or
    those of ``input_shape``) sets the channels. Both given and disagreeing is an error.
    """
    if input_shape is None:
        h, w, c = native
    else:
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = shape + (native[2] if in_channels is None else in_channels,)
        if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
            raise ValueError(
                f"{name}: input_shape must be (height, width) or (height, width, channels) of positive "
                f"ints, without the batch axis. Received: input_shape={input_shape!r}."
            )
        h, w, c = (int(s) for s in shape)
        if in_channels is not None and in_channels != c:
            raise ValueError(
                f"{name}: in_channels={in_channels} disagrees with input_shape={tuple(input_shape)} "
                f"({c} channels). Give one of them."
            )
    if in_channels is not None:
        c = check_int(in_channels, "in_channels")
    return h, w, c


def build(model: Module, name: str, native: tuple, input_shape, in_channels, weights=None) -> Module:
    """Create the model's parameters with one forward of a zero image (like ``Module.build``), then
    load ``weights`` if given (a ``.safetensors`` file or a state dict with PyTorch/torchvision key
    names, see :func:`striate.io.load_pretrained`).

    A too-small input is reported with the layer where the size reaches zero.
    """
    shape = resolve_input_shape(name, native, input_shape, in_channels)
    trace_forward(model, shape, name=name)
    model.input_shape = shape
    if weights is not None:
        from ..io import load_pretrained  # the io floor is above models: imported only when asked for
        load_pretrained(model, weights)
    return model


def top(classifier: Sequential, include_top: bool) -> Sequential:
    """The classifier head, or an empty Sequential (the feature extractor's output) without the top."""
    return classifier if include_top else Sequential()


class ConvNet(Module):
    """A feature extractor followed by a classifier head: ``classifier(features(x))``.

    Layer names read ``features.3`` / ``classifier.1`` as in torchvision.
    """

    def __init__(self, features: Sequential, classifier: Sequential):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.features(x))
