"""Sliding-window geometry shared by convolution, pooling, the summary and the calculator.

Arithmetic: one output-size formula serves all callers (integer division, never ``int(a / b)``):

    out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``'same'`` padding follows Keras/TensorFlow: out = ceil(in / stride), and when the total padding is
odd the extra row/column goes to the bottom/right.

Arrays (NHWC): :func:`pad_nhwc` and :func:`unpad_nhwc`; :func:`offset_view`, one kernel tap of
every window at once, the loop variable of pooling and of col2im; :func:`sliding_windows`, the
``(n, oh, ow, kh, kw, c)`` view of every window; :func:`im2col`, its copy as a patch matrix; and
:func:`col2im`, the exact adjoint of im2col (``<im2col(x), p> == <x, col2im(p)>``); they are
defined beneath the ops, in :mod:`striate.backend.windows`.
"""
from __future__ import annotations

import functools

# The window arrays live beneath the ops: the fast strategies of striate.backend use them too.
from ..backend.windows import col2im, im2col, offset_view, pad_nhwc, sliding_windows, unpad_nhwc  # noqa: F401
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

