"""Direct ("planar") convolution of few-channel images, stride 1, by the compiled loops of
:mod:`striate.backend.jit`: no patch matrix at all.

With few channels (LeNet-5's one-channel first layer, ResNet-20's 3- and 16-channel ones) im2col +
GEMM mostly moves patch matrices around. The planar loops copy each image into a zero-padded
channel-major scratch (c, hp, wp) and compute each kernel tap as one long vector FMA over the lanes
of the output (pixel (p, q) is lane p*wp + q). :func:`planar_wins` says where that beats im2col +
GEMM; the input gradient of such a conv is then the transposed convolution, planar too.
Measurements: ``benchmarks/notes.md``.
"""
from __future__ import annotations

import functools

import numpy as np

from . import compiled, threads

PLANAR_MAX_CHANNELS = 16
PLANAR_MIN_KEPT = 2 / 3


def planar_wins(w_shape, pads, in_hw, out_hw, dilation) -> bool:
    """Whether the planar loops beat im2col + GEMM for a stride-1 conv: few channels each way (a GEMM
    needs them to amortise moving its patch matrices, the direct loop does not), and at least
    PLANAR_MIN_KEPT of the multiply-adds it computes are needed: it also computes lanes that it
    drops (the columns past ``ow`` of each row, and the round-up of lanes and taps) and it
    multiplies padding zeros. The thresholds come from ``benchmarks/run.py --only conv``.
    """
    kh, kw, c, o = w_shape
    if c > PLANAR_MAX_CHANNELS or o > PLANAR_MAX_CHANNELS:
        return False
    top, bottom, left, right = pads
    (h, w), (oh, ow), (dh, dw) = in_hw, out_hw, dilation
    # (output row, kernel row) pairs that read a real input row, likewise for columns
    rows = sum(min(oh, top + h - i * dh) - max(0, top - i * dh) for i in range(kh))
    cols = sum(min(ow, left + w - j * dw) - max(0, left - j * dw) for j in range(kw))
    taps, filters = planar_counts(w_shape)
    _, lanes = planar_lanes(w + left + right, out_hw)
    return rows * cols * c * o >= PLANAR_MIN_KEPT * taps * filters * lanes


def planar_counts(w_shape):
    """(T, O) of the planar loops for an HWIO kernel: kh*kw*c taps rounded up to a multiple of 4
    (they go four at a time) and o filters rounded up to even (two at a time)."""
    kh, kw, c, o = w_shape
    return -(-kh * kw * c // 4) * 4, o + o % 2


def planar_lanes(wp: int, out_hw):
    """(L, L rounded up to a multiple of LANE_BLOCK): the lanes of a planar loop's rows, output
    pixel (p, q) being lane p*wp + q."""
    oh, ow = out_hw
    lanes = (oh - 1) * wp + ow
    return lanes, lanes - lanes % -compiled.LANE_BLOCK


@functools.lru_cache(maxsize=256)
def planar_offsets(w_shape, hp: int, wp: int, dilation):
    """Where each tap of an HWIO kernel ``(kh, kw, c, o)`` reads a flat (c, hp, wp) padded image:
    ``(T,)`` offsets, tap t = (ch, i, j) in that order, T = kh*kw*c rounded up to a multiple of 4
    (the extra taps read offset 0)."""
    kh, kw, c, _ = w_shape
    ch, i, j = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    offs = np.zeros(planar_counts(w_shape)[0], dtype=np.int64)
    offs[:kh * kw * c] = (ch * hp * wp + i * dilation[0] * wp + j * dilation[1]).ravel()
    return offs


def planar_weights(w):
    """The HWIO weight as tap-major ``(T, O)`` rows for :func:`planar_offsets`' taps, zero for the
    extra taps and, when o is odd, for one extra filter (O = o rounded up to even)."""
    kh, kw, c, o = w.shape
    wt = np.zeros(planar_counts(w.shape), dtype=w.dtype)
    wt[:kh * kw * c, :o] = w.transpose(2, 0, 1, 3).reshape(kh * kw * c, o)  # (c, kh, kw, o) -> (T, o)
    return wt


def planar_weight_grad(gw_t, w_shape):
    """Inverse of :func:`planar_weights`: ``(T, O)`` rows -> the HWIO ``(kh, kw, c, o)`` gradient."""
    kh, kw, c, o = w_shape
    return gw_t[:kh * kw * c, :o].reshape(c, kh, kw, o).transpose(1, 2, 0, 3)


class PlanarConv:
    """The planar loops for one conv: x (n, h, w, c) padded by ``pads`` to (hp, wp), HWIO kernel
    of ``w_shape``, output (oh, ow)."""

    def __init__(self, x_shape, w_shape, pads, dilation, out_hw):
        _, h, w, self.c = x_shape
        self.w_shape, self.out_hw = tuple(w_shape), tuple(out_hw)
        self.top, self.left = pads[0], pads[2]
        self.hp, self.wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
        self.offsets = planar_offsets(self.w_shape, self.hp, self.wp, tuple(dilation))

    def _scratch(self, filters, dtype):
        """Per-call scratch of the loops: the flat padded image (c*hp*wp,) with zero slack at its
        end, and the (O, L) lanes, L rounded up to a multiple of LANE_BLOCK."""
        lanes, rounded = planar_lanes(self.wp, self.out_hw)
        return np.empty(self.c * self.hp * self.wp + rounded - lanes, dtype), np.empty((filters, rounded), dtype)

    def forward(self, loops, x, w, b, y, parts, relu=False):
        """y = conv(x, w) + b (then max(y, 0) if ``relu``), one part of the batch per thread."""
        wt = planar_weights(w)
        bias = np.zeros(wt.shape[1], dtype=y.dtype)
        if b is not None:
            bias[:len(b)] = b
        floor = y.dtype.type(0 if relu else -np.inf)
        x = np.ascontiguousarray(x, dtype=y.dtype)
        geometry = (self.top, self.left, self.hp, self.wp)
        threads.map_parts(lambda s: loops.conv_planar_forward(
            x[s], *geometry, self.offsets, wt, bias, floor, y[s], *self._scratch(wt.shape[1], y.dtype)), parts)

    def weight_grad(self, loops, x, gy):
        """The weight gradient share of images x (gy theirs), as (kh*kw*c, o)."""
        kh, kw, c, o = self.w_shape
        gw_t = np.zeros(planar_counts(self.w_shape), dtype=gy.dtype)  # (T, O) of planar_weights
        loops.conv_planar_wgrad(np.ascontiguousarray(x, dtype=gy.dtype), self.top, self.left, self.hp, self.wp,
                                self.offsets, np.ascontiguousarray(gy), gw_t,
                                *self._scratch(gw_t.shape[1], gy.dtype))
        return planar_weight_grad(gw_t, self.w_shape).reshape(kh * kw * c, o)
