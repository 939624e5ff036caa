"""Receptive fields of sliding-window layers: the one place where the recurrence lives.

Along one spatial axis a feature map is described, relative to the network's input, by three
numbers (Araujo, Norris & Sim 2019, "Computing receptive fields of convolutional neural networks",
Distill; Dumoulin & Visin 2016):

* ``size`` r: how many input pixels one output unit sees;
* ``jump`` j: the distance, in input pixels, between two neighbouring output units (the effective
  stride, the product of all strides so far);
* ``start``: the input coordinate of the first pixel seen by output unit 0 (negative when padding
  makes the window hang over the border).

A layer with kernel k, stride s, dilation d and padding p before the input maps them as::

    r_out = r_in + (k - 1) * d * j_in
    j_out = j_in * s
    start_out = start_in - p * j_in

The formula ``r = r + (k - 1) * s`` found in many tutorials is wrong as soon as a strided layer has
been passed: what grows the field is the *input's* jump, not the layer's own stride. Three 3x3
stride-1 convolutions see 1 + 2 + 2 + 2 = 7 pixels; AlexNet's pool5 sees 195 (the tutorial
formula would give a different number after conv1's stride 4).

Where two paths meet (a residual ``add``, an inception ``concat``), the field of the result is the
union of the fields of the operands: ``[min(start), max(start + size - 1)]``. When the paths are
centred alike (every ResNet and GoogLeNet), that is the larger of the two fields.

Layers that enlarge the map (transposed convolution, upsampling) are the other way round: output
unit p reads a few neighbouring input units, so its field is the union of theirs, and the jump
divides by the layer's factor (:func:`rf_reads`). Jump and start may then be fractions of an input
pixel (``fractions.Fraction``): the units of a decoder that upsamples past the input's resolution
sit between its pixels. A U-Net's output has jump 1 again; its field is that of its deepest path.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

from ..validation import check_int_at_least as _int


class ReceptiveField(NamedTuple):
    """Receptive field along one axis: ``size``, ``jump`` (effective stride), ``start``."""

    size: int
    jump: int            # a Fraction after upsampling below the input's pixel grid
    start: int = 0       # likewise

    @property
    def center(self) -> float:
        """Input coordinate of the centre of output unit 0's field."""
        return self.start + (self.size - 1) / 2


IDENTITY = ReceptiveField(1, 1, 0)


def rf_step(rf: ReceptiveField, kernel: int, stride: int = 1, dilation: int = 1,
            pad_before: int = 0) -> ReceptiveField:
    """Field after one sliding-window layer (kernel, stride, dilation, padding before) along one axis."""
    # With a fractional jump, units k - 1 apart start ceil((k - 1) * d * j) pixels apart at most:
    # the size stays a whole number of pixels, a bound on the largest field of any unit (exact
    # while the jump is whole; at most a pixel over per layer below the input's grid).
    return ReceptiveField(rf.size + math.ceil((kernel - 1) * dilation * rf.jump),
                          _plain(rf.jump * stride),
                          _plain(rf.start - pad_before * rf.jump))


def rf_reads(rf: ReceptiveField, lo, hi, ratio) -> ReceptiveField:
    """Field after a layer that enlarges the map (transposed conv, upsampling) along one axis.

    Output position p reads input positions ``lo[p]..hi[p]`` (-1 where it reads none, e.g. a
    transposed conv's stride larger than its kernel); its field is the union of their fields,
    ``rf.size + ceil((hi[p] - lo[p]) * rf.jump)`` pixels at most (the largest over p is kept). The jump shrinks by
    ``ratio`` = input size / output size, so it becomes a Fraction once it falls below the input's
    own grid: a 2x transposed conv after a stride-8 encoder has jump 4, a 2x upsampling of the input
    image has jump 1/2.
    """
    read = hi >= 0
    if not read.any():
        raise ValueError("rf_reads: the layer's outputs read no input position.")
    span = int((hi[read] - lo[read]).max())
    first = int(lo[read][0])
    jump = Fraction(rf.jump) * ratio
    start = Fraction(rf.start) + first * Fraction(rf.jump)
    return ReceptiveField(rf.size + math.ceil(span * Fraction(rf.jump)), _plain(jump), _plain(start))


def _plain(value):
    """A Fraction that is a whole number as an int (so fields of ordinary networks stay ints)."""
    return int(value) if isinstance(value, Fraction) and value.denominator == 1 else value


def rf_union(fields) -> ReceptiveField:
    """Field of a unit computed from several aligned feature maps (add, concat): the union.

    All operands must have the same jump (they have the same spatial size); if not, the largest
    jump is kept and the result is an approximation (the caller notes it).
    """
    fields = list(fields)
    lo = min(f.start for f in fields)
    hi = max(f.start + f.size - 1 for f in fields)
    return ReceptiveField(hi - lo + 1, max(f.jump for f in fields), lo)


def receptive_field(layers, per_layer: bool = False):
    """Receptive field of a chain of sliding-window layers along one axis.

    Args:
        layers: sequence of ``(kernel, stride)``, ``(kernel, stride, dilation)`` or
            ``(kernel, stride, dilation, padding)`` tuples (ints), first layer first. Pooling layers
            count like convolutions; layers that keep the field (ReLU, BN) can be left out.
        per_layer: return the field after every layer instead of only the last one.

    Returns:
        A :class:`ReceptiveField` ``(size, jump, start)``, or a list of them with ``per_layer``.

    Example::

        >>> receptive_field([(3, 1), (3, 1), (3, 1)]).size      # three 3x3 convs
        7
        >>> receptive_field([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)])
        ReceptiveField(size=195, jump=32, start=0)              # AlexNet pool5
    """
    rf = IDENTITY
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or not 1 <= len(layer) <= 4:
            raise ValueError(
                "Each layer must be a tuple (kernel, stride[, dilation[, padding]]). "
                f"Received: layers[{i}]={layer!r}."
            )
        k = _int(layer[0], f"layers[{i}] kernel", 1)
        s = _int(layer[1], f"layers[{i}] stride", 1) if len(layer) > 1 else 1
        d = _int(layer[2], f"layers[{i}] dilation", 1) if len(layer) > 2 else 1
        p = _int(layer[3], f"layers[{i}] padding", 0) if len(layer) > 3 else 0
        rf = rf_step(rf, k, s, d, p)
        out.append(rf)
    return out if per_layer else rf
