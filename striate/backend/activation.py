"""The fast strategy of :class:`striate.ops.activation.ReLUOp` (and ``AddReLUOp``): both passes split
over threads."""
from __future__ import annotations

import numpy as np

from . import fast_paths_enabled, threads


def relu_parts(x):
    """The batch parts of a ReLU over ``x``, or None when it is too small to split."""
    if type(x) is not np.ndarray or not x.ndim or not fast_paths_enabled():
        return None
    parts = threads.split(len(x), x.size)
    return None if parts is threads.WHOLE else parts


def relu_forward(x, parts):
    """max(x, 0), one part per thread."""
    y = np.empty_like(x)
    threads.map_parts(lambda s: np.maximum(x[s], 0, out=y[s]), parts)
    return y


def add_relu_forward(a, b, parts):
    """max(a + b, 0), one part per thread."""
    y = np.empty_like(a)

    def part(s):
        np.add(a[s], b[s], out=y[s])
        np.maximum(y[s], 0, out=y[s])

    threads.map_parts(part, parts)
    return y


def relu_backward(gy, y, parts):
    """gy where y > 0, one part per thread."""
    gx = np.empty_like(gy)
    threads.map_parts(lambda s: np.multiply(gy[s], y[s] > 0, out=gx[s]), parts)
    return gx
