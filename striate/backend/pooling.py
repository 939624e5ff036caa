"""The fast strategy of :class:`striate.ops.pooling.MaxPool2dOp`: the batch split over threads,
each part by the compiled window max (:mod:`striate.backend.jit`) or by the op's own NumPy passes.

The compiled loop is used for inputs big enough to repay its call. It does not propagate NaN, but
it reports a window holding one, and the op is then pooled by NumPy instead.
"""
from __future__ import annotations

import numpy as np

from . import compiled, fast_paths_enabled, threads


def max_pool_strategy(x):
    """A :class:`FastMaxPool` for input ``x``, or None when the op's reference is as fast (a
    batch too small to split, and no compiled loop)."""
    if type(x) is not np.ndarray or not fast_paths_enabled():
        return None
    loops = compiled.load_for(x)
    parts = threads.split(x.shape[0], x.size)
    if loops is None and parts is threads.WHOLE:
        return None
    return FastMaxPool(loops, parts)


class FastMaxPool:
    """Max pooling of one call: ``loops`` (compiled, or None for NumPy) over the batch ``parts``."""

    def __init__(self, loops, parts):
        self.loops, self.parts = loops, parts

    def forward(self, op, xpad, index_dtype):
        """(y, first-maximum index) of the padded input, with the op's ReLU when it has one."""
        (kh, kw), (sh, sw) = op.kernel, op.stride
        y = np.empty((xpad.shape[0],) + tuple(op.out_hw) + (xpad.shape[3],), dtype=xpad.dtype)
        idx = np.empty(y.shape, dtype=index_dtype)

        def part(s):
            numpy = self.loops is None  # or, after the compiled loop, a window held NaN (NumPy propagates it)
            if not numpy and (kh, kw, sh, sw) == (2, 2, 2, 2):
                numpy = self.loops.maxpool2x2_forward(xpad[s], y[s], idx[s])
            elif not numpy:
                numpy = self.loops.maxpool2d_forward(xpad[s], kh, kw, sh, sw, y[s], idx[s])
            if numpy:
                y[s], idx[s] = op.window_max(xpad[s], index_dtype)
            if op.relu:
                np.maximum(y[s], 0, out=y[s])

        threads.map_parts(part, self.parts)
        return y, idx

    def backward(self, op, gy):
        """The padded input gradient: each window's gradient routed to its first maximum."""
        kw, (sh, sw) = op.kernel[1], op.stride
        # the compiled loop zeroes each image itself, in its part's thread
        gxpad = (np.empty if self.loops is not None else np.zeros)(op.xpad_shape, dtype=gy.dtype)

        def part(s):
            y = op.y[s] if op.relu else None
            if self.loops is None:
                return op.route_to_max(gy[s], op.argmax[s], y, gxpad[s])
            gys = gy[s] * (y > 0) if op.relu else gy[s]  # the ReLU's gradient
            if op.kernel == (2, 2) and (sh, sw) == (2, 2):
                self.loops.maxpool2x2_backward(gys, op.argmax[s], gxpad[s])
            else:
                self.loops.maxpool2d_backward(gys, op.argmax[s], kw, sh, sw, gxpad[s])

        threads.map_parts(part, self.parts)
        return gxpad
