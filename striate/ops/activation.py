"""Element-wise activations and the (log-)softmax, each with its backward."""
from __future__ import annotations

from ..tensor import Function, get_array_module
from . import parallel


class ReLU(Function):
    """max(x, 0). Backward keeps the output (which the next layer usually holds anyway), not a
    mask: gx = gy where y > 0. Both passes run over the batch split into one part per thread."""

    def forward(self, x):
        xp = get_array_module(x)
        self.parts = parallel.split(len(x), x.size) if x.ndim else parallel.WHOLE
        if self.parts is parallel.WHOLE:
            self.y = xp.maximum(x, 0)
        else:
            self.y = xp.empty_like(x)
            parallel.map_parts(lambda s: xp.maximum(x[s], 0, out=self.y[s]), self.parts)
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.parts is parallel.WHOLE:
            return (gy * (self.y > 0),)
        gx = xp.empty_like(gy)
        parallel.map_parts(lambda s: xp.multiply(gy[s], self.y[s] > 0, out=gx[s]), self.parts)
        return (gx,)


class LeakyReLU(Function):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return get_array_module(x).where(self.mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, gy):
        xp = get_array_module(gy)
        return (xp.where(self.mask, gy, gy * gy.dtype.type(self.negative_slope)),)


class Sigmoid(Function):
    def forward(self, x):
        xp = get_array_module(x)
        # exp of a non-positive number never overflows: split by sign.
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, gy):
        return (gy * self.y * (1 - self.y),)


class Tanh(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return (gy * (1 - self.y * self.y),)


class Softmax(Function):
    """Softmax along ``axis``, shifted by the max for stability."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        # Jacobian-vector product: gx = y * (gy - <gy, y>)
        return (y * (gy - (gy * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return (gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True),)
