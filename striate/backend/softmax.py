"""The fast strategy of softmax along the last axis (:class:`striate.ops.activation.SoftmaxOp`,
``LogSoftmaxOp`` and the cross-entropy), rows split over threads.

NumPy reduces along a short last axis (a segmentation net's 11 classes per pixel) one small row at
a time: its max and sum over (131072, 11) cost several times the exponentials. Here the row max
comes from a compiled loop and the row sums from a matrix-vector product; the exponentials stay
NumPy's (vectorised, where a compiled loop calls exp once per value).
"""
from __future__ import annotations

import numpy as np

from . import compiled, fast_paths_enabled, threads


def softmax_last(x, log: bool):
    """softmax (or log softmax when ``log``) of ``x`` along its last axis, or None where the
    compiled loop does not apply (then the op's NumPy formula runs)."""
    loops = compiled.load_for(x) if fast_paths_enabled() else None
    if loops is None or x.ndim < 2 or not x.flags.c_contiguous:
        return None
    rows = x.reshape(-1, x.shape[-1])  # (m, k), a view
    out = np.empty_like(rows)
    ones = np.ones(rows.shape[1], rows.dtype)

    def part(s):
        top = np.empty(len(rows[s]), rows.dtype)
        loops.row_max(rows[s], top)
        shifted = rows[s] - top[:, None]
        e = np.exp(shifted)
        total = np.dot(e, ones)  # (m,) = (m, k) @ (k,)
        if log:
            np.subtract(shifted, np.log(total)[:, None], out=out[s])
        else:
            np.divide(e, total[:, None], out=out[s])

    threads.map_parts(part, threads.split(len(rows), 4 * rows.size))
    return out.reshape(x.shape)
