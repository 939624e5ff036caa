"""The fast strategy of :class:`striate.ops.normalization.BatchNormOp`: each of its passes split
over threads, and run by the compiled loops of :mod:`striate.backend.jit` when present (one read
of x per pass instead of a NumPy temporary per operation), else by the op's own NumPy passes.
"""
from __future__ import annotations

import numpy as np

from . import compiled, fast_paths_enabled, threads


def batch_norm_strategy(x, passes):
    """A :class:`FastBatchNorm` for NumPy input ``x``, or None (the op's passes run whole).
    ``passes`` has the op's NumPy passes, run per part without the compiled loops."""
    if type(x) is not np.ndarray or not fast_paths_enabled():
        return None
    return FastBatchNorm(compiled.load_for(x), threads.split(x.shape[0], x.size), passes)


def _rows(a):
    """(..., c) -> (m, c) view (the compiled loops take 2-D arrays)."""
    return a.reshape(-1, a.shape[-1])


def _sum_parts(results):
    """Add per-part tuples of arrays: [(a0, b0), (a1, b1)] -> (a0 + a1, b0 + b1)."""
    return tuple(sum(r[i] for r in results) for i in range(len(results[0])))


class FastBatchNorm:
    """The passes of one batch norm call: ``loops`` (compiled, or None for the op's NumPy
    ``passes``) over batch ``parts``."""

    def __init__(self, loops, parts, passes):
        self.loops, self.parts, self.passes = loops, parts, passes

    def moments(self, x):
        """Per-channel mean and biased variance of x (..., c), float64, from per-part sums.

        Compiled: one pass of sum(d) and sum(d*d) with d = x - shift around a shift (the first
        pixel of the batch), so that sum(d*d)/n - (sum(d)/n)**2 does not cancel catastrophically
        when the mean is large next to the spread. NumPy: the op's two passes, per part.
        """
        c = x.shape[-1]
        count = x.size // c
        if self.loops is None:
            op = self.passes
            mean = sum(threads.map_parts(lambda s: op.channel_total(x[s]), self.parts)) / count
            return mean, sum(threads.map_parts(lambda s: op.squared_deviations(x[s], mean), self.parts)) / count
        shift = _rows(x[:1])[0].astype(np.float64)
        total, squares = self.shifted_sums(x, shift)
        d_mean = total / count
        return shift + d_mean, np.maximum(squares / count - d_mean * d_mean, 0.0)

    def shifted_sums(self, x, shift):
        """Per-channel sum(d) and sum(d*d) with d = x - shift, float64, in one pass per part: the
        moments of a batch spread over several processes, which add these sums up."""
        c = x.shape[-1]

        def part(s):
            if self.loops is None:
                return self.passes.shifted_sums(x[s], shift)
            total, squares = np.empty(c), np.empty(c)
            self.loops.channel_moments(_rows(x[s]), shift, total, squares)
            return total, squares

        return _sum_parts(threads.map_parts(part, self.parts))

    def affine(self, x, mean, scale, beta, relu, y):
        """y = (x - mean) * scale + beta (then max(y, 0) if ``relu``)."""
        if self.loops is None:
            threads.map_parts(lambda s: self.passes.affine(x[s], mean, scale, beta, relu, y[s]), self.parts)
        else:
            threads.map_parts(lambda s: self.loops.channel_affine(_rows(x[s]), mean, scale, beta, relu, _rows(y[s])),
                              self.parts)

    def grad_sums(self, gy, x, mean, relu_out):
        """(sum(g), sum(g * (x - mean))) per channel, float64, per part then added; g is gy, or 0
        where a fused ReLU's output ``relu_out`` is 0 (None: no ReLU)."""
        def part(s):
            if self.loops is None:
                return self.passes.grad_sums(gy[s], x[s], mean, None if relu_out is None else relu_out[s])
            sg, sgx = np.empty(gy.shape[-1]), np.empty(gy.shape[-1])
            self.loops.bn_grad_sums(_rows(gy[s]), _rows(x[s]), mean, self._mask(relu_out, s, gy.dtype), sg, sgx)
            return sg, sgx

        return _sum_parts(threads.map_parts(part, self.parts))

    def grad_apply(self, gy, x, relu_out, m, a, k, e, gx):
        """gx = a * g + k * (x - m) + e, g as in :meth:`grad_sums`."""
        def part(s):
            if self.loops is None:
                return self.passes.grad_apply(gy[s], x[s], None if relu_out is None else relu_out[s], m, a, k, e, gx[s])
            self.loops.bn_grad_apply(_rows(gy[s]), _rows(x[s]), m, a, k, e, self._mask(relu_out, s, gy.dtype), _rows(gx[s]))

        threads.map_parts(part, self.parts)

    @staticmethod
    def _mask(relu_out, s, dtype):
        """The compiled loops' ReLU argument: rows of relu_out[s], or no rows (no ReLU)."""
        return np.empty((0, 0), dtype) if relu_out is None else _rows(relu_out[s])
