"""The fast strategy of :class:`striate.ops.activation.ReLUOp` (and ``AddReLUOp``): both passes split
over threads, the sum-and-ReLU and the gradient by one-pass compiled loops where present (NumPy makes
them two passes, the gradient through a mask array)."""
from __future__ import annotations

import numpy as np

from . import compiled, fast_paths_enabled, threads


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


def _flat_loops(*arrays):
    """The compiled loops when every array is C-contiguous with the first's dtype, else None."""
    loops = compiled.load_for(arrays[0])
    if loops is None or not all(a.flags.c_contiguous and a.dtype == arrays[0].dtype for a in arrays):
        return None
    return loops


def add_relu_forward(a, b, parts):
    """max(a + b, 0), one part per thread."""
    y = np.empty_like(a)
    loops = _flat_loops(a, b, y)

    def part(s):
        if loops is not None:
            loops.add_relu_flat(a[s].reshape(-1), b[s].reshape(-1), y[s].reshape(-1))
        else:
            np.add(a[s], b[s], out=y[s])
            np.maximum(y[s], 0, out=y[s])

    threads.map_parts(part, parts)
    return y


def relu_backward(gy, y, parts):
    """gy where y > 0, one part per thread."""
    gx = np.empty_like(gy)
    loops = _flat_loops(gy, y, gx)
    if loops is not None:
        threads.map_parts(lambda s: loops.relu_grad_flat(gy[s].reshape(-1), y[s].reshape(-1), gx[s].reshape(-1)), parts)
    else:
        threads.map_parts(lambda s: np.multiply(gy[s], y[s] > 0, out=gx[s]), parts)
    return gx
