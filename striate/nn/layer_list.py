"""A network written as a short layer list: ``"conv 8 5 relu, pool 2, conv 16 5 relu, pool 2, dense 10"``."""
from __future__ import annotations

import re

import numpy as np

from ..tensor import Tensor, no_grad
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                     LocalResponseNorm, MaxPool2D, ReLU, Sigmoid, Tanh)
from .sequential import Sequential

ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}
KINDS = ("conv", "pool", "gap", "dense", "dropout", "bn", "lrn", "flatten") + tuple(ACTIVATIONS)
_SYNONYMS = {"conv2d": "conv", "maxpool": "pool", "avgpool": "pool", "fc": "dense", "linear": "dense",
             "batchnorm": "bn", "batch_norm": "bn", "globalavgpool": "gap", "leakyrelu": "leaky_relu"}


class LayerListError(ValueError):
    """A layer list that cannot be read or built; the message names the layer by position and text."""


def _fail(pos, text, message):
    raise LayerListError(f"layer {pos} {text!r}: {message}")


def _positive_int(token, what, pos, text):
    if not re.fullmatch(r"\d+", token) or int(token) < 1:
        _fail(pos, text, f"{what} must be a positive integer, got {token!r}")
    return int(token)


def _size(token, what, pos, text):
    """``5`` or ``5x3`` -> an int or a (height, width) pair."""
    if re.fullmatch(r"\d+x\d+", token):
        return tuple(_positive_int(p, what, pos, text) for p in token.split("x"))
    return _positive_int(token, what, pos, text)


def _options(tokens, allowed, pos, text):
    """Split ``key=value`` options from bare words; unknown keys are errors."""
    opts, words = {}, []
    for t in tokens:
        if "=" in t:
            key, value = t.split("=", 1)
            key = {"padding": "pad", "strides": "stride"}.get(key, key)
            if key not in allowed:
                _fail(pos, text, f"unknown option {key!r}; this layer takes {', '.join(allowed) or 'no options'}")
            opts[key] = value
        else:
            words.append(t)
    return opts, words


def _activation(words, pos, text, kind):
    """The optional trailing activation word(s) of conv and dense."""
    if not words:
        return None
    if len(words) > 1 or words[0] not in ACTIVATIONS:
        _fail(pos, text, f"unexpected {' '.join(words)!r} after the {kind}'s numbers; an activation "
                         f"({', '.join(ACTIVATIONS)}) may follow")
    return ACTIVATIONS[words[0]]()


def _padding(value, pos, text):
    if value in ("same", "valid"):
        return value
    if re.fullmatch(r"\d+", value):
        return int(value)
    _fail(pos, text, f"pad must be same, valid or a non-negative integer, got {value!r}")


def _parse_one(pos, text, rng):
    """The layers (one or two: a conv/dense and its activation) that one entry describes."""
    tokens = text.lower().split()
    kind, args = _SYNONYMS.get(tokens[0], tokens[0]), tokens[1:]
    if kind == "conv":
        opts, words = _options(args, ("stride", "pad"), pos, text)
        if len(words) < 2:
            _fail(pos, text, "a conv needs FILTERS and KERNEL, e.g. 'conv 8 5 relu'")
        filters = _positive_int(words[0], "filters", pos, text)
        kernel = _size(words[1], "kernel size", pos, text)
        stride = _size(opts.get("stride", "1"), "stride", pos, text)
        act = _activation(words[2:], pos, text, kind)
        conv = Conv2D(filters, kernel, stride=stride, padding=_padding(opts.get("pad", "valid"), pos, text),
                      kernel_initializer="he_normal" if act is not None else "glorot_uniform", rng=rng)
        return [conv] + ([act] if act is not None else [])
    if kind == "pool":
        opts, words = _options(args, ("stride", "pad"), pos, text)
        mode = "avg" if tokens[0] == "avgpool" else "max"
        if words and words[-1] in ("max", "avg"):
            mode = words.pop()
        if len(words) != 1:
            _fail(pos, text, "a pool needs one SIZE and optionally 'avg' or 'max', e.g. 'pool 2' or 'pool 3 stride=2'")
        size = _size(words[0], "pool size", pos, text)
        stride = _size(opts["stride"], "stride", pos, text) if "stride" in opts else None
        layer = AvgPool2D if mode == "avg" else MaxPool2D
        return [layer(size, stride, padding=_padding(opts.get("pad", "valid"), pos, text))]
    if kind == "dense":
        _, words = _options(args, (), pos, text)
        if not words:
            _fail(pos, text, "a dense layer needs its number of UNITS, e.g. 'dense 10'")
        units = _positive_int(words[0], "units", pos, text)
        act = _activation(words[1:], pos, text, kind)
        dense = Dense(units, kernel_initializer="he_normal" if act is not None else "glorot_uniform", rng=rng)
        return [dense] + ([act] if act is not None else [])
    if kind == "dropout":
        if len(args) != 1:
            _fail(pos, text, "dropout needs one RATE in [0, 1), e.g. 'dropout 0.5'")
        try:
            rate = float(args[0])
        except ValueError:
            rate = -1.0
        if not 0 <= rate < 1:
            _fail(pos, text, f"the dropout rate must be a number in [0, 1), got {args[0]!r}")
        return [Dropout(rate, rng=rng)]
    simple = {"bn": BatchNorm, "gap": GlobalAvgPool2D, "lrn": LocalResponseNorm, "flatten": Flatten, **ACTIVATIONS}
    if kind in simple:
        if args:
            _fail(pos, text, f"{kind} takes no arguments, got {' '.join(args)!r}")
        return [simple[kind]()]
    from ..names import closest

    close = closest(kind, KINDS, exact_spelling=True)
    hint = f" (did you mean {close!r}?)" if close else ""
    _fail(pos, text, f"unknown layer kind {tokens[0]!r}{hint}; known: {', '.join(KINDS)}")


def is_layer_list(text) -> bool:
    """Whether ``text`` looks like a layer list rather than a model name (it has a space or a comma)."""
    return isinstance(text, str) and bool(re.search(r"[\s,]", text.strip()))


def parse_layers(text: str, input_shape=None, rng=None) -> Sequential:
    """Build a Sequential from a layer list such as ``"conv 8 5 relu, pool 2, conv 16 5 relu, pool 2, dense 10"``.

    Grammar (entries separated by commas, words by spaces, case ignored)::

        conv FILTERS KERNEL [stride=S] [pad=same|valid|N] [ACT]   Conv2D (KERNEL may be KHxKW), then ACT
        pool SIZE [stride=S] [pad=same|valid|N] [max|avg]         MaxPool2D (default) or AvgPool2D;
                                                                  stride defaults to SIZE
        dense UNITS [ACT]                                         Dense, then ACT
        dropout RATE                                              Dropout, RATE in [0, 1)
        bn | gap | lrn | flatten                                  BatchNorm, GlobalAvgPool2D,
                                                                  LocalResponseNorm, Flatten
        ACT = relu | leaky_relu | sigmoid | tanh                  also a layer on its own

    A Flatten is inserted before the first ``dense`` unless a ``flatten`` or ``gap`` comes earlier.
    Layers followed by an activation start from He-normal weights, the others from Glorot-uniform.
    The last ``dense`` gives the logits (no softmax: the loss applies it).

    Args:
        text: the layer list.
        input_shape: optional ``(height, width, channels)``; the model is then built on it, and a
            layer that does not fit (a size that reaches zero) is named.
        rng: seed or Generator for the initial weights.

    Returns:
        The Sequential (built when ``input_shape`` is given).

    Raises:
        ValueError: naming the layer by position (from 1) and text, e.g.
            ``layer 3 'conv x 5': filters must be a positive integer, got 'x'``.

    Example::

        >>> net = st.nn.parse_layers("conv 8 5 relu, pool 2, conv 16 5 relu, pool 2, dense 10", (28, 28, 1))
        >>> net(st.Tensor(np.zeros((1, 28, 28, 1), np.float32))).shape
        (1, 10)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_layers: the layer list must be a string. Received: {type(text).__name__}.")
    from ..random import check_random_state
    rng = check_random_state(rng)
    entries = [e.strip() for e in text.split(",")]
    if not any(entries):
        raise LayerListError("the layer list is empty; write layers such as 'conv 8 5 relu, pool 2, dense 10'.")
    layers, origin, flat = [], [], False
    for pos, entry in enumerate(entries, 1):
        if not entry:
            raise LayerListError(f"layer {pos} is empty (two commas in a row, or a comma at the end).")
        made = _parse_one(pos, entry, rng)
        if isinstance(made[0], (Flatten, GlobalAvgPool2D)):
            flat = True
        if isinstance(made[0], Dense) and not flat:
            layers.append(Flatten())
            origin.append((pos, entry))
            flat = True
        layers += made
        origin += [(pos, entry)] * len(made)
    model = Sequential(*layers)
    model.layer_list = ", ".join(" ".join(e.lower().split()) for e in entries)
    if input_shape is not None:
        _build(layers, origin, input_shape)
    return model


def _build(layers, origin, input_shape):
    """Run zeros through the layers one by one, naming the entry where the shapes stop fitting."""
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"parse_layers: input_shape must be (height, width, channels) of positive ints. "
                         f"Received: input_shape={input_shape!r}.")
    x = Tensor(np.zeros((1,) + shape, np.float32))
    with no_grad():
        for layer, (pos, text) in zip(layers, origin):
            layer.eval()
            try:
                x = layer(x)
            except ValueError as e:
                where = "x".join(str(s) for s in x.shape[1:])
                raise LayerListError(f"layer {pos} {text!r} does not fit its {where} input: "
                                     f"{' '.join(str(e).split())}") from None
            finally:
                layer.train()
