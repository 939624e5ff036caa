"""NHWC window arrays shared by the reference ops (:mod:`striate.ops`) and their fast strategies:
:func:`pad_nhwc` and :func:`unpad_nhwc`; :func:`offset_view`, one kernel tap of every window at once,
the loop variable of pooling and of col2im; :func:`sliding_windows`, the ``(n, oh, ow, kh, kw, c)``
view of every window; :func:`im2col`, its copy as a patch matrix; and :func:`col2im`, the exact
adjoint of im2col (``<im2col(x), p> == <x, col2im(p)>``). The ops use them through
:mod:`striate.ops.geometry`, with the window arithmetic.
"""
from __future__ import annotations

import numpy as np

from ..tensor import get_array_module

__all__ = ["pad_nhwc", "unpad_nhwc", "offset_view", "sliding_windows", "im2col", "col2im"]


def pad_nhwc(x, pads, value=0.0):
    """Pad the two spatial axes of an NHWC array; ``pads`` = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    xp = get_array_module(x)
    n, h, w, c = x.shape
    out = xp.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def unpad_nhwc(x, pads):
    """Inverse of :func:`pad_nhwc` (a view; x itself when nothing was padded)."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[1], x.shape[2]
    return x[:, top:h - bottom, left:w - right, :]


def offset_view(a, i, j, stride, out_hw, dilation=(1, 1)):
    """Kernel tap (i, j) of every window at once: the strided view
    ``a[:, i*dh + sh*p, j*dw + sw*q, :]`` for all p < oh, q < ow, shape (n, oh, ow, c).

    Sliding-window ops loop over the kh*kw taps with it, never over pixels.
    """
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return a[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw, :]


def sliding_windows(x, kernel, stride, dilation, out_hw):
    """Strided view ``(n, oh, ow, kh, kw, c)`` of a padded NHWC array: window (i, j) at [:, i, j]."""
    xp = get_array_module(x)
    n, _, _, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    s_n, s_h, s_w, s_c = x.strides
    shape, strides = (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
    if xp is np and x.flags.c_contiguous:  # the ndarray constructor: far cheaper than as_strided
        return np.ndarray(shape, x.dtype, buffer=x, strides=strides)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)


def im2col(x, kernel, stride, dilation, out_hw, rows=slice(None), alloc=None):
    """(n, hp, wp, c) padded input -> ``(n*r*ow, kh*kw*c)`` patch matrix of output rows ``rows``
    (all by default; r of them): one copy of the strided windows view.

    ``alloc(shape, dtype, xp)`` makes the array copied into (default: a fresh one).
    """
    xp = get_array_module(x)
    kh, kw = kernel
    windows = sliding_windows(x, kernel, stride, dilation, out_hw)[:, rows]  # (n, r, ow, kh, kw, c) view
    out = xp.empty(windows.shape, x.dtype) if alloc is None else alloc(windows.shape, x.dtype, xp)
    xp.copyto(out, windows)
    return out.reshape(-1, kh * kw * x.shape[3])


def col2im(cols, padded_shape, kernel, stride, dilation, out_hw):
    """Adjoint of :func:`im2col`: ``(n*oh*ow, kh*kw*c)`` patches -> ``padded_shape`` (n, hp, wp, c).

    Every patch entry is added back where im2col read it, one kernel tap at a time (``+=``, so the
    overlapping windows of stride < kernel sum).
    """
    xp = get_array_module(cols)
    n, _, _, c = padded_shape
    (kh, kw), (oh, ow) = kernel, out_hw
    x = xp.zeros(padded_shape, dtype=cols.dtype)
    patches = cols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            offset_view(x, i, j, stride, out_hw, dilation)[...] += patches[:, :, :, i, j]
    return x
