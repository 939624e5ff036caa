"""Convolution arithmetic shared by every sliding-window op, the summary and the calculator.

One output-size formula serves all callers (integer division, never ``int(a / b)``):

    out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``'same'`` padding follows Keras/TensorFlow: out = ceil(in / stride), and when the total padding is
odd the extra row/column goes to the bottom/right.
"""
from __future__ import annotations

import functools

import numpy as np

# Python and NumPy integers, checked without the slow abstract-base-class machinery of
# numbers.Integral (these checks run on every op call); bool is refused separately.
_INTS = (int, np.integer)


def _is_int(v) -> bool:
    return isinstance(v, _INTS) and not isinstance(v, bool)


def pair(value, name: str) -> tuple[int, int]:
    """Normalise an int or a 2-sequence of ints to ``(height, width)``; names ``name`` on error."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and _is_int(value[0]) and _is_int(value[1]):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints (height, width). Received: {name}={value!r}.")


def positive_pair(value, name: str) -> tuple[int, int]:
    p = pair(value, name)
    if p[0] < 1 or p[1] < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={value!r}.")
    return p


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

    ``pads`` is (top, bottom, left, right). Raises ValueError naming the offending sizes when the
    kernel does not fit in the padded input. Results are cached: a layer asks the same question at
    every call.
    """
    key = (tuple(in_hw), tuple(kernel_hw), _hashable(stride), _hashable(padding), _hashable(dilation), op)
    return _conv_geometry(*key)


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


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
        raise ValueError(
            f"{op}: the kernel is larger than the padded input, so the computed output size would be "
            f"zero or negative. Received: input (height, width)={tuple(in_hw)}, padded={padded}, "
            f"kernel={tuple(kernel_hw)} (effective {eff} with dilation), stride={(sh, sw)}, "
            f"padding={padding!r}; output would be {(oh, ow)}. Use a smaller kernel, more padding, "
            "or padding='same'."
        )
    return pads, (oh, ow)
