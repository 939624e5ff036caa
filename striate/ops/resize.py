"""Resizing by interpolation (nearest neighbour, bilinear), with PyTorch's ``interpolate`` rules.

Interpolation is separable and linear: each output row is a weighted sum of at most two input
rows, and likewise for columns. Along one axis it is described by its *taps*: a list of
``(index, weight)`` pairs of arrays over the output positions, ``y[p] = sum_t weight_t[p] *
x[index_t[p]]`` (one tap of weight 1 for nearest, two for bilinear). The forward gathers rows, then
columns; the backward is the adjoint, summing each output's gradient back into the rows it read
(indices never decrease along an axis, so the outputs that read one row form a run).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..tensor import Function, get_array_module


def nearest_taps(in_size: int, out_size: int, scale=None):
    """Output position p reads ``min(floor(p * s), in - 1)``, s = 1 / scale_factor when one was
    given, else in / out, computed in float32 as PyTorch does (so sizes and indices agree exactly)."""
    if out_size == in_size:
        index = np.arange(out_size)
    elif out_size == 2 * in_size:
        index = np.arange(out_size) >> 1
    else:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(in_size) / np.float32(out_size)
        index = np.minimum(np.floor(np.arange(out_size, dtype=np.float32) * s).astype(np.int64), in_size - 1)
    return [(index, None)]


def bilinear_taps(in_size: int, out_size: int, align_corners: bool, scale=None):
    """Output position p reads the source coordinate ``src`` between two input positions:

    - align_corners: the corner pixels' centres meet, ``src = p * (in - 1) / (out - 1)``;
    - otherwise pixel areas meet, ``src = (p + 0.5) * s - 0.5`` (clamped at 0), s = 1 / scale_factor
      when one was given, else in / out;

    and takes ``(1 - f) * x[i] + f * x[i + 1]``, i = floor(src), f = src - i (i + 1 capped at in - 1).
    """
    p = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = p * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        s = 1.0 / scale if scale is not None else in_size / out_size
        src = np.maximum((p + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    return [(i0, 1.0 - frac), (i1, frac)]


def gather(x, taps, axis):
    """``sum_t weight_t * take(x, index_t, axis)``: interpolation along one axis."""
    shape = [1] * x.ndim
    shape[axis] = -1  # weights broadcast along the other axes
    y = None
    for index, weight in taps:
        part = x.take(index, axis=axis)
        if weight is not None:
            part = part * weight.astype(x.dtype).reshape(shape)
        y = part if y is None else y + part
    return y


def scatter(gy, taps, in_size, axis):
    """Adjoint of :func:`gather`: each output's gradient summed into the input position it read.

    The outputs that read one input form a run (indices never decrease), about ``out / in`` long;
    pass r adds the r-th output of every run at once (distinct inputs, so a plain indexed ``+=`` is
    exact): a loop over the run length, never over pixels.
    """
    xp = get_array_module(gy)
    shape = [1] * gy.ndim
    shape[axis] = -1
    out_shape = list(gy.shape)
    out_shape[axis] = in_size
    gx = xp.zeros(out_shape, dtype=gy.dtype)
    where = [slice(None)] * gy.ndim
    for index, weight in taps:
        g = gy if weight is None else gy * weight.astype(gy.dtype).reshape(shape)
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])  # first output of each run
        lengths = np.diff(np.r_[starts, len(index)])
        for r in range(int(lengths.max())):
            runs = starts[lengths > r]
            where[axis] = index[runs]
            gx[tuple(where)] += g.take(runs + r, axis=axis)
    return gx


class UpsampleOp(Function):
    """Resize NHWC maps with separable interpolation taps (see the module docstring): rows (axis
    1), then columns (axis 2); see ``F.upsample``. ``mode``, ``align_corners`` and ``scales`` (the
    scale factors a user gave, or None for a given size) describe the resize to exporters."""

    def __init__(self, taps_h, taps_w, mode="nearest", align_corners=False, scales=None):
        self.taps_h, self.taps_w = taps_h, taps_w
        self.mode, self.align_corners, self.scales = mode, align_corners, scales

    def reads(self, inputs, out):
        """Per axis, the first and last input rows (columns) with a non-zero weight in each output."""
        result = []
        for taps, size, len_out in zip((self.taps_h, self.taps_w), inputs[0].shape[1:3], out.shape[1:3]):
            used = [np.where(np.ones_like(i, bool) if wt is None else wt > 0, i, -1) for i, wt in taps]
            lo = np.min([np.where(u < 0, size, u) for u in used], axis=0)
            hi = np.max(used, axis=0)
            result.append((lo, hi, Fraction(int(size), int(len_out))))
        return tuple(result)

    def forward(self, x):
        self.in_hw = x.shape[1:3]
        return gather(gather(x, self.taps_h, axis=1), self.taps_w, axis=2)

    def backward(self, gy):
        h, w = self.in_hw
        return (scatter(scatter(gy, self.taps_w, w, axis=2), self.taps_h, h, axis=1),)
