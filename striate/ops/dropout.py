"""Inverted dropout: scale kept units by 1/(1-rate) in training so evaluation needs no change."""
from __future__ import annotations

from ..tensor import Function


class DropoutOp(Function):
    def __init__(self, rate, rng):
        self.rate, self.rng = rate, rng

    def forward(self, x):
        keep = 1.0 - self.rate
        # mask holds 0 or 1/keep, in x's dtype
        self.mask = (self.rng.random(x.shape) < keep).astype(x.dtype) * x.dtype.type(1.0 / keep)
        return x * self.mask

    def backward(self, gy):
        return (gy * self.mask,)
