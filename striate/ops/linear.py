"""Fully connected layer y = x @ w + b, and tensor concatenation."""
from __future__ import annotations

import itertools

from ..backend import concat as fast_concat
from ..tensor import Function, get_array_module


class LinearOp(Function):
    """x (n, in) @ w (in, out) + b (out,) -> (n, out); one primitive, so one GEMM per direction."""

    def macs(self, inputs, out):
        return int(inputs[1].shape[0] * inputs[1].shape[1])  # in * out per image

    def forward(self, x, w, b=None):
        self.x = x if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad and self.needs_input_grad[0] else None
        xp = get_array_module(x)
        y = xp.dot(x, w)  # (n, out) = (n, in) @ (in, out); dot, not @, releases the GIL (see ops.conv)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        needs = self.needs_input_grad
        xp = get_array_module(gy)
        gx = xp.dot(gy, self.w.T) if needs[0] else None  # (n, in) = (n, out) @ (out, in)
        gw = xp.dot(self.x.T, gy) if needs[1] else None  # (in, out) = (in, n) @ (n, out)
        if len(needs) > 2:
            return gx, gw, (gy.sum(axis=0) if needs[2] else None)
        return gx, gw


class ConcatOp(Function):
    """Join arrays along ``axis`` (GoogLeNet's inception outputs: the channel axis, -1 in NHWC)."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        out = fast_concat.concat_last(xs) if self.axis in (-1, xs[0].ndim - 1) else None
        return xp.concatenate(xs, axis=self.axis) if out is None else out

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = list(itertools.accumulate(self.sizes))[:-1]
        parts = xp.split(gy, bounds, axis=self.axis)
        return tuple(p if need else None for p, need in zip(parts, self.needs_input_grad))
