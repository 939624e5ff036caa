"""The fast strategy of :class:`striate.ops.linear.ConcatOp` along a batched array's last axis (a
U-Net's skip connections): the copy split over threads by images. It is bound by memory traffic,
which one core does not use up."""
from __future__ import annotations

import numpy as np

from . import fast_paths_enabled, threads


def concat_last(xs):
    """``np.concatenate(xs, axis=-1)`` with the images split over threads, or None where the
    arrays are not NumPy arrays of 2 or more dimensions, or too small to split."""
    if not fast_paths_enabled() or any(type(x) is not np.ndarray or x.ndim < 2 for x in xs):
        return None
    out_shape = xs[0].shape[:-1] + (sum(x.shape[-1] for x in xs),)
    parts = threads.split(out_shape[0], int(np.prod(out_shape)))
    if parts is threads.WHOLE:
        return None
    out = np.empty(out_shape, np.result_type(*xs))
    threads.map_parts(lambda s: np.concatenate([x[s] for x in xs], axis=-1, out=out[s]), parts)
    return out
