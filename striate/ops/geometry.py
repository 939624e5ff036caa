"""Sliding-window geometry shared by convolution, pooling, the summary and the calculator.

Arithmetic: one output-size formula serves all callers (integer division, never ``int(a / b)``):

    out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``'same'`` padding follows Keras/TensorFlow: out = ceil(in / stride), and when the total padding is
odd the extra row/column goes to the bottom/right.

Arrays (NHWC): :func:`pad_nhwc` and :func:`unpad_nhwc`; :func:`offset_view`, one kernel tap of
every window at once, the loop variable of pooling and of col2im; :func:`sliding_windows`, the
``(n, oh, ow, kh, kw, c)`` view of every window; :func:`im2col`, its copy as a patch matrix; and
:func:`col2im`, the exact adjoint of im2col (``<im2col(x), p> == <x, col2im(p)>``).
"""
from __future__ import annotations

import functools

import numpy as np

from ..tensor import get_array_module
from ..validation import GeometryError, pair, positive_pair

def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                     dilation: int = 1) -> int:
    """Output length of a sliding window along one axis (may be <= 0 for impossible settings)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding along one axis: (before, after), extra on the after side."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel_hw, stride_hw, dilation_hw=(1, 1)) -> tuple[int, int, int, int]:
    """Turn ``'valid'``, ``'same'``, an int or ``(ph, pw)`` into explicit (top, bottom, left, right)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0, 0, 0
        if mode == "same":
            top, bottom = same_padding(in_hw[0], kernel_hw[0], stride_hw[0], dilation_hw[0])
            left, right = same_padding(in_hw[1], kernel_hw[1], stride_hw[1], dilation_hw[1])
            return top, bottom, left, right
        raise ValueError(
            f"padding must be 'valid', 'same', an int or a pair of ints. Received: padding={padding!r}."
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        pads = tuple(int(p) for p in padding)
    else:
        ph, pw = pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"padding must be >= 0. Received: padding={padding!r}.")
    return pads


def conv_geometry(in_hw, kernel_hw, stride, padding, dilation=1, op: str = "conv2d"):
    """Validate a sliding-window configuration and return ``(pads, (oh, ow))``.

    ``pads`` is (top, bottom, left, right). Raises :class:`GeometryError` with the offending sizes when the
    kernel does not fit in the padded input. Results are cached: a layer asks the same question at
    every call.
    """
    key = (tuple(in_hw), tuple(kernel_hw), hashable(stride), hashable(padding), hashable(dilation), op)
    return cached(_conv_geometry, *key)


def hashable(v):
    """A list setting as a tuple (the same setting, usable as a cache key)."""
    return tuple(v) if isinstance(v, list) else v


def cached(plan, *key):
    """``plan(*key)`` through its ``functools.lru_cache``: a layer asks the same question at every
    call (batch-1 inference pays for each microsecond). Keys that cannot be hashed (a dict given as
    padding) are checked uncached, so they still get the proper error message."""
    try:
        return plan(*key)
    except TypeError:
        try:
            hash(key)
        except TypeError:  # the cache could not take the key: validate without it
            return plan.__wrapped__(*key)
        raise  # the plan's own TypeError (a bad argument type)


@functools.lru_cache(maxsize=1024)
def _conv_geometry(in_hw, kernel_hw, stride, padding, dilation, op):
    sh, sw = positive_pair(stride, "stride")
    dh, dw = positive_pair(dilation, "dilation")
    kh, kw = kernel_hw
    pads = resolve_padding(padding, in_hw, (kh, kw), (sh, sw), (dh, dw))
    oh = conv_output_size(in_hw[0], kh, sh, pads[0], pads[1], dh)
    ow = conv_output_size(in_hw[1], kw, sw, pads[2], pads[3], dw)
    if oh <= 0 or ow <= 0:
        eff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        padded = (in_hw[0] + pads[0] + pads[1], in_hw[1] + pads[2] + pads[3])
        raise GeometryError(op, in_hw, padded, kernel_hw, eff, (sh, sw), padding, (oh, ow))
    return pads, (oh, ow)


# --------------------------------------------------------------------------- arrays
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
