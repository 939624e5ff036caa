"""The primitives behind Tensor's operators: arithmetic, matmul, reductions, reshapes, indexing.

Each is a :class:`striate.tensor.Function` with forward and backward side by side, as micrograd's
``Value`` has them. Compositions (``x.mean()`` is a sum times 1/n, ``x.sqrt()`` a power) need no
backward of their own.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Function, _axes, get_array_module


def unbroadcast(g, shape):
    """Adjoint of NumPy broadcasting: sum ``g`` down to ``shape``."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


class AddOp(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        sa, sb = self.shapes
        return (unbroadcast(gy, sa) if self.needs_input_grad[0] else None,
                unbroadcast(gy, sb) if self.needs_input_grad[1] else None)


class SubOp(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        sa, sb = self.shapes
        return (unbroadcast(gy, sa) if self.needs_input_grad[0] else None,
                unbroadcast(-gy, sb) if self.needs_input_grad[1] else None)


class MulOp(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        a, b = self.a, self.b
        return (unbroadcast(gy * b, a.shape) if self.needs_input_grad[0] else None,
                unbroadcast(gy * a, b.shape) if self.needs_input_grad[1] else None)


class DivOp(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = unbroadcast(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class NegOp(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return (-gy,)


class PowOp(Function):
    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, a):
        self.a = a
        return a ** self.exponent

    def backward(self, gy):
        p = self.exponent
        return (gy * p * self.a ** (p - 1),)


class ExpOp(Function):
    def forward(self, a):
        self.y = get_array_module(a).exp(a)
        return self.y

    def backward(self, gy):
        return (gy * self.y,)


class LogOp(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).log(a)

    def backward(self, gy):
        return (gy / self.a,)


class AbsOp(Function):
    def forward(self, a):
        self.sign = get_array_module(a).sign(a)
        return abs(a)

    def backward(self, gy):
        return (gy * self.sign,)


class CastOp(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, a):
        self.src = a.dtype
        return a.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.src),)


class MatMulOp(Function):
    """Matrix product of 2-D (or batched) arrays: (..., m, k) @ (..., k, n) -> (..., m, n)."""

    def macs(self, inputs, out):
        n = out.shape[0] if out.ndim else 1
        return int(np.prod(out.shape)) * inputs[0].shape[-1] // max(n, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(gy @ b.swapaxes(-1, -2), a.shape) if b.ndim > 1 else None
        if self.needs_input_grad[1]:
            gb = unbroadcast(a.swapaxes(-1, -2) @ gy, b.shape) if a.ndim > 1 else None
        if (ga is None and self.needs_input_grad[0]) or (gb is None and self.needs_input_grad[1]):
            raise NotImplementedError("backward of matmul with a 1-D operand; reshape it to 2-D")
        return ga, gb


class SumOp(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.shape = a.shape
        return a.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.axis is not None and not self.keepdims:
            axes = tuple(ax % len(self.shape) for ax in _axes(self.axis))
            gy = xp.expand_dims(gy, axes)
        return (xp.broadcast_to(gy, self.shape).copy(),)


class MaxOp(Function):
    """Maximum along axes; the gradient is split evenly among tied maxima."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        y = a.max(axis=self.axis, keepdims=True)
        self.mask = a == y
        return y if self.keepdims else (y.reshape(()) if self.axis is None else y.squeeze(self.axis))

    def backward(self, gy):
        xp = get_array_module(gy)
        if not self.keepdims:
            gy = gy.reshape(()) if self.axis is None else xp.expand_dims(gy, self.axis)
        # the tie count is an integer array: cast it, or float32 / int64 would give float64
        count = self.mask.sum(axis=self.axis, keepdims=True).astype(gy.dtype)
        return (self.mask * (gy / count),)


class ReshapeOp(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        self.in_shape = a.shape
        return a.reshape(self.shape)

    def backward(self, gy):
        return (gy.reshape(self.in_shape),)


class TransposeOp(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, a):
        self.ndim = a.ndim
        return a.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return (gy.transpose(),)
        inverse = np.argsort([ax % self.ndim for ax in self.axes])
        return (gy.transpose(inverse),)


class GetItemOp(Function):
    """Basic and advanced indexing. Backward writes gy back where the forward read it: one
    assignment for basic indexing (ints, slices, ``...``, None: every element is read once), and
    ``np.add.at`` for advanced indexing, so that repeated indices add."""

    def __init__(self, index):
        self.index = index

    def forward(self, a):
        self.shape, self.dtype = a.shape, a.dtype
        return a[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        g = xp.zeros(self.shape, dtype=self.dtype)
        if _basic_index(self.index):
            g[self.index] = gy
        else:
            xp.add.at(g, self.index, gy)
        return (g,)


def _basic_index(index) -> bool:
    """Whether ``index`` is basic indexing (a view of distinct elements), not advanced."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, slice)
               or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))) for p in parts)
