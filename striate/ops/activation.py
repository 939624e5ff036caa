"""Element-wise activations and the (log-)softmax, each with its backward."""
from __future__ import annotations

from ..backend import activation as fast
from ..backend import softmax as fast_softmax
from ..tensor import Function, get_array_module


class ReLUOp(Function):
    """max(x, 0). Backward keeps the output (which the next layer usually holds anyway), not a
    mask: gx = gy where y > 0. Big batches run split over threads (:mod:`striate.backend.activation`)."""

    def forward(self, x):
        self.fast = fast.relu_parts(x)
        self.y = fast.relu_forward(x, self.fast) if self.fast else get_array_module(x).maximum(x, 0)
        return self.y

    def backward(self, gy):
        return (fast.relu_backward(gy, self.y, self.fast) if self.fast else gy * (self.y > 0),)


class AddReLUOp(Function):
    """max(a + b, 0) for a and b of one shape: the end of a residual block in one op. Backward
    passes gy where y > 0 back to both inputs (one array for the two)."""

    def forward(self, a, b):
        self.fast = fast.relu_parts(a)
        if self.fast:
            self.y = fast.add_relu_forward(a, b, self.fast)
        else:
            self.y = get_array_module(a).maximum(a + b, 0)
        return self.y

    def backward(self, gy):
        g = fast.relu_backward(gy, self.y, self.fast) if self.fast else gy * (self.y > 0)
        needs = self.needs_input_grad
        return (g if needs[0] else None), (g if needs[1] else None)


class LeakyReLUOp(Function):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return get_array_module(x).where(self.mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, gy):
        xp = get_array_module(gy)
        return (xp.where(self.mask, gy, gy * gy.dtype.type(self.negative_slope)),)


class SigmoidOp(Function):
    def forward(self, x):
        xp = get_array_module(x)
        # exp of a non-positive number never overflows: split by sign.
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, gy):
        return (gy * self.y * (1 - self.y),)


class TanhOp(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return (gy * (1 - self.y * self.y),)


class SoftmaxOp(Function):
    """Softmax along ``axis``, shifted by the max for stability."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        self.y = fast_softmax.softmax_last(x, log=False) if self.axis in (-1, x.ndim - 1) else None
        if self.y is None:  # the reference
            e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
            self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        # Jacobian-vector product: gx = y * (gy - <gy, y>)
        return (y * (gy - (gy * y).sum(axis=self.axis, keepdims=True)),)


def log_softmax_array(x, axis=-1):
    """log softmax of a raw array along ``axis``, shifted by the max for stability (the fast
    strategy along the last axis; the cross-entropy shares it)."""
    y = fast_softmax.softmax_last(x, log=True) if axis in (-1, x.ndim - 1) else None
    if y is None:  # the reference
        xp = get_array_module(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return y


class LogSoftmaxOp(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.y = log_softmax_array(x, self.axis)
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return (gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True),)
