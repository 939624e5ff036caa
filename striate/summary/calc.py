"""Convolution arithmetic calculator: output sizes, actual pads and receptive fields of a chain.

Every number comes from :mod:`striate.ops.geometry` (the single source of conv arithmetic, the one
the ops themselves use) and :mod:`striate.summary.receptive_field`. Impossible settings are not an
exception here but an explanation: the result carries ``error`` (which layer, what rule, what to
change) and the layers computed before it.

Example::

    >>> from striate.summary.calc import conv_arithmetic
    >>> r = conv_arithmetic(224, [dict(kernel=11, stride=4, padding=2), dict(kernel=3, stride=2)])
    >>> r.layers[-1].output_size, r.layers[-1].rf
    ((27, 27), (19, 19))
    >>> print(r)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from ..ops.geometry import conv_output_size, pair, positive_pair, resolve_padding
from .receptive_field import IDENTITY, rf_step


@dataclass
class LayerGeometry:
    """Geometry of one layer of the chain (all pairs are (height, width))."""

    index: int
    kernel: tuple
    stride: tuple
    padding: object       # as given: 'valid', 'same', int, pair or 4-tuple
    dilation: tuple
    input_size: tuple
    pads: tuple           # actual (top, bottom, left, right)
    output_size: tuple
    rf: tuple             # receptive field of one output unit, in input pixels of the chain
    jump: tuple           # distance between neighbouring output units, in input pixels
    start: tuple          # first input pixel seen by output unit (0, 0) (negative: in the padding)
    unused: tuple         # rows/cols at the bottom/right of the padded input no window reaches

    @property
    def effective_kernel(self) -> tuple:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))


class ConvArithmetic:
    """Result of :func:`conv_arithmetic`: ``layers``, ``ok``, ``error``; ``str()`` is a table."""

    def __init__(self, input_size, layers, error=None):
        self.input_size = input_size
        self.layers: list[LayerGeometry] = layers
        self.error: str | None = error

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_size(self):
        return self.layers[-1].output_size if self.layers and self.ok else None

    def notes(self) -> list[str]:
        out = []
        for g in self.layers:
            for axis, u, pad_after in (("rows", g.unused[0], g.pads[1]), ("columns", g.unused[1], g.pads[3])):
                if u > pad_after:
                    out.append(
                        f"layer {g.index}: the last {u - pad_after} input {axis} are never seen "
                        f"(the stride does not divide the padded size minus the kernel; floor division drops them)"
                    )
            if g.pads[0] != g.pads[1] or g.pads[2] != g.pads[3]:
                out.append(f"layer {g.index}: asymmetric 'same' padding (the extra row/column goes bottom/right, as in Keras/TensorFlow)")
        return out

    def __str__(self) -> str:
        def p(v):
            return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

        header = ("Layer", "Kernel", "Stride", "Dilation", "Padding", "Input", "Pads t,b,l,r", "Output", "RF", "Jump")
        rows = [(str(g.index), p(g.kernel), p(g.stride), p(g.dilation), str(g.padding),
                 f"{g.input_size[0]}x{g.input_size[1]}", ",".join(map(str, g.pads)),
                 f"{g.output_size[0]}x{g.output_size[1]}", p(g.rf), p(g.jump)) for g in self.layers]
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        lines = [f"Input: {self.input_size[0]}x{self.input_size[1]}", fmt(header)] + [fmt(r) for r in rows]
        lines += [f"Note: {n}" for n in self.notes()]
        if self.error:
            lines.append(f"Impossible: {self.error}")
        elif self.layers:
            g = self.layers[-1]
            lines.append(f"Output: {g.output_size[0]}x{g.output_size[1]}; each output unit sees {p(g.rf)} input "
                         f"pixels; neighbouring units are {p(g.jump)} pixels apart.")
        return "\n".join(lines)

    __repr__ = __str__


def _spec(layer, i):
    """Normalise one layer spec (dict or tuple) to (kernel, stride, padding, dilation)."""
    if isinstance(layer, dict):
        unknown = set(layer) - {"kernel", "stride", "padding", "dilation"}
        if unknown:
            raise ValueError(f"layer {i}: unknown keys {sorted(unknown)}; use kernel, stride, padding, dilation.")
        if "kernel" not in layer:
            raise ValueError(f"layer {i}: the kernel size is required. Received: {layer!r}.")
        k, s = layer["kernel"], layer.get("stride", 1)
        p, d = layer.get("padding", 0), layer.get("dilation", 1)
    elif isinstance(layer, (tuple, list)) and 1 <= len(layer) <= 4:
        k, s, p, d = (list(layer) + [1, 0, 1][len(layer) - 1:])[:4]
    else:
        raise ValueError(f"layer {i} must be a dict(kernel=, stride=, padding=, dilation=) or a tuple "
                         f"(kernel, stride, padding, dilation). Received: {layer!r}.")
    return positive_pair(k, f"layer {i} kernel"), positive_pair(s, f"layer {i} stride"), p, \
        positive_pair(d, f"layer {i} dilation")


def conv_arithmetic(input_size, layers=None, *, kernel_size=None, stride=1, padding=0, dilation=1) -> ConvArithmetic:
    """Output size, actual pads and receptive field of one sliding-window layer or a chain.

    Args:
        input_size: int (square) or (height, width).
        layers: list of layers, each ``dict(kernel=, stride=1, padding=0, dilation=1)`` or a tuple
            ``(kernel, stride, padding, dilation)``; values are ints or (h, w) pairs; padding may
            also be ``'valid'``, ``'same'`` or explicit ``(top, bottom, left, right)``.
        kernel_size, stride, padding, dilation: a single layer, when ``layers`` is omitted.

    Returns:
        :class:`ConvArithmetic`. When a layer is impossible (the kernel does not fit the padded
        input, a stride of 0, negative padding) ``ok`` is False and ``error`` explains it; the layers
        before it are kept.

    Shape:
        ``out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1``;
        ``'same'``: ``out = ceil(in / stride)``.
    """
    if isinstance(input_size, numbers.Integral) and not isinstance(input_size, bool):
        input_size = (int(input_size), int(input_size))
    size = input_hw = positive_pair(tuple(input_size) if isinstance(input_size, list) else input_size, "input_size")
    if layers is None:
        if kernel_size is None:
            raise ValueError("Give either layers=[...] or kernel_size= (one layer).")
        layers = [dict(kernel=kernel_size, stride=stride, padding=padding, dilation=dilation)]
    result, fh, fw = [], IDENTITY, IDENTITY
    for i, layer in enumerate(layers, 1):
        try:
            (kh, kw), (sh, sw), padding_i, (dh, dw) = _spec(layer, i)
            if not isinstance(padding_i, str):
                if isinstance(padding_i, (tuple, list)) and len(padding_i) == 4:
                    if not all(isinstance(v, numbers.Integral) for v in padding_i):
                        raise ValueError(f"layer {i}: padding values must be ints. Received: {padding_i!r}.")
                else:
                    pair(padding_i, f"layer {i} padding")
            pads = resolve_padding(padding_i, size, (kh, kw), (sh, sw), (dh, dw))
        except (TypeError, ValueError) as e:
            return ConvArithmetic(input_hw, result, f"layer {i}: {e}")
        oh = conv_output_size(size[0], kh, sh, pads[0], pads[1], dh)
        ow = conv_output_size(size[1], kw, sw, pads[2], pads[3], dw)
        if oh <= 0 or ow <= 0:
            eff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
            padded = (size[0] + pads[0] + pads[1], size[1] + pads[2] + pads[3])
            return ConvArithmetic(input_hw, result, (
                f"layer {i}: the kernel (effective size {eff[0]}x{eff[1]} with dilation {dh}x{dw}) is larger "
                f"than its padded input {padded[0]}x{padded[1]} (input {size[0]}x{size[1]} plus pads "
                f"{pads}), so the output size would be {oh}x{ow}. Use a smaller kernel or dilation, "
                f"more padding (or padding='same'), or a larger input."
            ))
        fh, fw = rf_step(fh, kh, sh, dh, pads[0]), rf_step(fw, kw, sw, dw, pads[2])
        used = ((oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1)
        unused = (size[0] + pads[0] + pads[1] - used[0], size[1] + pads[2] + pads[3] - used[1])
        result.append(LayerGeometry(i, (kh, kw), (sh, sw), padding_i, (dh, dw), size, pads, (oh, ow),
                                    (fh.size, fw.size), (fh.jump, fw.jump), (fh.start, fw.start), unused))
        size = (oh, ow)
    return ConvArithmetic(input_hw, result)
