"""Max and average pooling over NHWC windows, and their backward.

Both loop over the kh*kw kernel offsets (never over pixels, images or channels): offset (i, j) of
every window at once is the strided view ``xpad[:, i::sh, j::sw, :]`` of shape (n, oh, ow, c), so
the forward is kh*kw element-wise max/add passes over output-sized arrays, with no copy of the
(n, oh, ow, kh, kw, c) window tensor.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Function, get_array_module
from . import accel, parallel
from .conv import offset_view, pad_nhwc, unpad_nhwc


class MaxPool2d(Function):
    """Max over each window; padded cells are -inf so they never win.

    Ties: the gradient goes to the *first* maximum in row-major window order (top-left first),
    the same rule as PyTorch's CPU kernel, so results are deterministic.

    With ``relu=True`` it is max pooling of relu(x), computed as relu(max pooling of x): the two
    commute, and so do their gradients (a window whose maximum is positive routes it to the same
    first maximum; one whose maximum is <= 0 passes no gradient either way). The ReLU then touches
    the pooled output only, and the full-size relu(x) is never made.
    """

    def __init__(self, kernel, stride, pads, out_hw, relu=False):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw
        self.relu = relu

    def forward(self, x):
        xp = get_array_module(x)
        xpad = pad_nhwc(x, self.pads, value=-xp.inf)
        need_index = bool(self.needs_input_grad and self.needs_input_grad[0])
        kh, kw = self.kernel
        index_dtype = xp.uint8 if kh * kw <= 256 else xp.int32  # offsets i*kw + j
        # The compiled kernel (numba, optional) is used for inputs big enough to repay its call,
        # and never for inputs holding NaN, which it does not propagate (one cheap reduction).
        compiled = accel.kernels() if xp is np and x.size >= accel.MIN_SIZE else None
        if compiled is not None and np.isnan(x.sum()):
            compiled = None
        self.parts = parallel.split(x.shape[0], x.size)
        if compiled is None and self.parts is parallel.WHOLE:
            y, idx = self._forward_numpy(xpad, xp, index_dtype if need_index else None)
        else:  # one part of the batch per thread
            y = xp.empty((x.shape[0],) + tuple(self.out_hw) + (x.shape[3],), dtype=x.dtype)
            idx = xp.empty(y.shape, dtype=index_dtype)

            def part(s):
                if compiled is not None:
                    compiled.maxpool2d_forward(xpad[s], kh, kw, self.stride[0], self.stride[1], y[s], idx[s])
                else:
                    y[s], idx[s] = self._forward_numpy(xpad[s], xp, index_dtype)
                if self.relu:
                    xp.maximum(y[s], 0, out=y[s])

            parallel.map_parts(part, self.parts)
        if self.relu and self.parts is parallel.WHOLE and compiled is None:
            xp.maximum(y, 0, out=y)
        if need_index:
            self.argmax, self.xpad_shape, self.compiled = idx, xpad.shape, compiled
            self.y = y if self.relu else None
        return y

    def _forward_numpy(self, xpad, xp, index_dtype):
        """kh*kw element-wise passes; with ``index_dtype``, also the first-maximum offsets."""
        kh, kw = self.kernel
        offsets = [(i, j) for i in range(kh) for j in range(kw)]
        y = offset_view(xpad, 0, 0, self.stride, self.out_hw).copy()
        for i, j in offsets[1:]:
            xp.maximum(y, offset_view(xpad, i, j, self.stride, self.out_hw), out=y)
        if index_dtype is None:
            return y, None
        # index of the first maximum of each window: assign from the last offset to the first so
        # that earlier offsets overwrite later ones on ties. (n, oh, ow, c)
        idx = xp.zeros(y.shape, dtype=index_dtype)
        for k in range(len(offsets) - 1, 0, -1):
            i, j = offsets[k]
            xp.copyto(idx, k, where=offset_view(xpad, i, j, self.stride, self.out_hw) == y)
        xp.copyto(idx, 0, where=offset_view(xpad, 0, 0, self.stride, self.out_hw) == y)
        return y, idx

    def backward(self, gy):
        xp = get_array_module(gy)
        kh, kw = self.kernel
        # the compiled kernel zeroes each image itself, in its part's thread
        gxpad = (xp.empty if self.compiled is not None else xp.zeros)(self.xpad_shape, dtype=gy.dtype)

        def part(s):  # images s: route each window's gradient to its first maximum
            gys = gy[s] * (self.y[s] > 0) if self.relu else gy[s]  # the ReLU's gradient
            if self.compiled is not None:
                self.compiled.maxpool2d_backward(gys, self.argmax[s], kw, self.stride[0], self.stride[1], gxpad[s])
                return
            for k in range(kh * kw):
                i, j = divmod(k, kw)
                # windows overlap when stride < kernel: accumulate
                offset_view(gxpad[s], i, j, self.stride, self.out_hw)[...] += gys * (self.argmax[s] == k)

        parallel.map_parts(part, self.parts)
        gx = unpad_nhwc(gxpad, self.pads)
        return (gx if gx.base is None else gx.copy(),)


class AvgPool2d(Function):
    """Mean over each window; padded cells count as zeros (PyTorch's count_include_pad=True)."""

    def __init__(self, kernel, stride, pads, out_hw):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw

    def forward(self, x):
        kh, kw = self.kernel
        xpad = pad_nhwc(x, self.pads)
        self.xpad_shape = xpad.shape
        y = offset_view(xpad, 0, 0, self.stride, self.out_hw).copy()
        for k in range(1, kh * kw):
            i, j = divmod(k, kw)
            y += offset_view(xpad, i, j, self.stride, self.out_hw)
        y *= x.dtype.type(1.0 / (kh * kw))
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        kh, kw = self.kernel
        share = gy * gy.dtype.type(1.0 / (kh * kw))
        gxpad = xp.zeros(self.xpad_shape, dtype=gy.dtype)
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            offset_view(gxpad, i, j, self.stride, self.out_hw)[...] += share
        gx = unpad_nhwc(gxpad, self.pads)
        return (gx if gx.base is None else gx.copy(),)
