"""Max and average pooling over NHWC windows, and their backward.

Both loop over the kh*kw kernel taps (never over pixels, images or channels): tap (i, j) of every
window at once is the strided view ``xpad[:, i::sh, j::sw, :]`` of shape (n, oh, ow, c)
(:func:`striate.ops.geometry.offset_view`), so the forward is kh*kw element-wise max/add passes
over output-sized arrays, with no copy of the (n, oh, ow, kh, kw, c) window tensor. Max pooling's
faster strategy (threads, compiled loops) is :mod:`striate.backend.pooling`.
"""
from __future__ import annotations

from ..backend import pooling as fast
from ..tensor import Function, get_array_module
from .geometry import offset_view, pad_nhwc, unpad_nhwc


class MaxPool2dOp(Function):
    """Max over each window; padded cells are -inf so they never win.

    Ties: the gradient goes to the *first* maximum in row-major window order (top-left first),
    the same rule as PyTorch's CPU kernel, so results are deterministic.

    With ``relu=True`` it is max pooling of relu(x), computed as relu(max pooling of x): the two
    commute, and so do their gradients (a window whose maximum is positive routes it to the same
    first maximum; one whose maximum is <= 0 passes no gradient either way). The ReLU then touches
    the pooled output only, and the full-size relu(x) is never made.
    """

    def __init__(self, kernel, stride, pads, out_hw, relu=False, dilation=(1, 1), return_indices=False):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw
        self.relu, self.dilation = relu, tuple(dilation)
        self.return_indices = return_indices  # then forward also leaves self.indices (the switches)

    def macs(self, inputs, out):
        return 0  # comparisons or additions only

    def window(self, inputs):
        return self.kernel, self.stride, self.dilation, self.pads

    def forward(self, x):
        xp = get_array_module(x)
        xpad = pad_nhwc(x, self.pads, value=-xp.inf)
        need_index = bool(self.needs_input_grad and self.needs_input_grad[0])
        if self.kernel == (1, 1):  # each window is one pixel: a strided copy (ResNet's option-A shortcut)
            self.fast, y = None, offset_view(xpad, 0, 0, self.stride, self.out_hw).copy()
            if self.relu:
                xp.maximum(y, 0, out=y)
            self.argmax, self.xpad_shape, self.y = None, xpad.shape, (y if self.relu else None)
            if self.return_indices:
                self.indices = self.input_positions(xp.zeros(y.shape, xp.uint8), x.shape)
            return y
        # (the compiled loops take contiguous windows only)
        self.fast = fast.max_pool_strategy(x) if self.dilation == (1, 1) else None
        kh, kw = self.kernel
        index_dtype = xp.uint8 if kh * kw <= 256 else xp.int32  # offsets i*kw + j
        if self.fast is not None:
            y, idx = self.fast.forward(self, xpad, index_dtype)
        else:
            y, idx = self.window_max(xpad, index_dtype if need_index or self.return_indices else None)
            if self.relu:
                xp.maximum(y, 0, out=y)
        if self.return_indices:
            self.indices = self.input_positions(idx, x.shape)
        if need_index:
            self.argmax, self.xpad_shape = idx, xpad.shape
            self.y = y if self.relu else None
        return y

    def window_max(self, xpad, index_dtype):
        """kh*kw element-wise passes; with ``index_dtype``, also the first-maximum offsets."""
        xp = get_array_module(xpad)
        kh, kw = self.kernel
        offsets = [(i, j) for i in range(kh) for j in range(kw)]
        y = offset_view(xpad, 0, 0, self.stride, self.out_hw).copy()
        for i, j in offsets[1:]:
            xp.maximum(y, offset_view(xpad, i, j, self.stride, self.out_hw, self.dilation), out=y)
        if index_dtype is None:
            return y, None
        # index of the first maximum of each window: assign from the last offset to the first so
        # that earlier offsets overwrite later ones on ties. (n, oh, ow, c)
        idx = xp.zeros(y.shape, dtype=index_dtype)
        for k in range(len(offsets) - 1, 0, -1):
            i, j = offsets[k]
            xp.copyto(idx, k, where=offset_view(xpad, i, j, self.stride, self.out_hw, self.dilation) == y)
        xp.copyto(idx, 0, where=offset_view(xpad, 0, 0, self.stride, self.out_hw) == y)
        return y, idx

    def input_positions(self, argmax, x_shape):
        """The switches: each window's maximum as ``row * w + col`` of the unpadded input
        ``(n, h, w, c)``, from its offset ``i * kw + j`` in the window. (n, oh, ow, c) int64."""
        xp = get_array_module(argmax)
        (_, kw), (sh, sw), (dh, dw), (oh, ow) = self.kernel, self.stride, self.dilation, self.out_hw
        i, j = xp.divmod(argmax.astype(xp.int64), kw)
        rows = xp.arange(oh).reshape(1, oh, 1, 1) * sh + i * dh - self.pads[0]
        cols = xp.arange(ow).reshape(1, 1, ow, 1) * sw + j * dw - self.pads[2]
        return rows * x_shape[2] + cols

    def route_to_max(self, gy, argmax, y, gxpad):
        """Add each window's gradient to its first maximum in ``gxpad`` (zeros, padded)."""
        kh, kw = self.kernel
        if self.relu:
            gy = gy * (y > 0)  # the ReLU's gradient
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            # windows overlap when stride < kernel: accumulate
            offset_view(gxpad, i, j, self.stride, self.out_hw, self.dilation)[...] += gy * (argmax == k)

    def backward(self, gy):
        if self.kernel == (1, 1):  # the gradient goes back to the pixel each output copied
            gxpad = get_array_module(gy).zeros(self.xpad_shape, dtype=gy.dtype)
            offset_view(gxpad, 0, 0, self.stride, self.out_hw)[...] = gy * (self.y > 0) if self.relu else gy
        elif self.fast is not None:
            gxpad = self.fast.backward(self, gy)
        else:
            gxpad = get_array_module(gy).zeros(self.xpad_shape, dtype=gy.dtype)
            self.route_to_max(gy, self.argmax, self.y, gxpad)
        gx = unpad_nhwc(gxpad, self.pads)
        return (gx if gx.base is None else gx.copy(),)


class AvgPool2dOp(Function):
    """Sum over each window divided by ``divisor``: kh*kw by default, padded cells counting as zeros
    (PyTorch's count_include_pad=True), or a (1, oh, ow, 1) array of each window's count of counted
    cells (count_include_pad=False, Keras/TensorFlow's 'same' average; the windows ceil_mode adds),
    made by :func:`striate.functional.avg_pool2d`."""

    def __init__(self, kernel, stride, pads, out_hw, dilation=(1, 1), divisor=None):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw
        self.dilation, self.divisor = tuple(dilation), divisor

    def scale(self, a):
        """``a`` divided by each window's divisor (in ``a``'s dtype)."""
        kh, kw = self.kernel
        if self.divisor is None:
            return a * a.dtype.type(1.0 / (kh * kw))
        return a / self.divisor.astype(a.dtype)

    def macs(self, inputs, out):
        return 0  # comparisons or additions only

    def window(self, inputs):
        return self.kernel, self.stride, self.dilation, self.pads

    def forward(self, x):
        kh, kw = self.kernel
        xpad = pad_nhwc(x, self.pads)
        self.xpad_shape = xpad.shape
        y = offset_view(xpad, 0, 0, self.stride, self.out_hw).copy()
        for k in range(1, kh * kw):
            i, j = divmod(k, kw)
            y += offset_view(xpad, i, j, self.stride, self.out_hw, self.dilation)
        return self.scale(y)

    def backward(self, gy):
        xp = get_array_module(gy)
        kh, kw = self.kernel
        share = self.scale(gy)
        gxpad = xp.zeros(self.xpad_shape, dtype=gy.dtype)
        for k in range(kh * kw):
            i, j = divmod(k, kw)
            offset_view(gxpad, i, j, self.stride, self.out_hw, self.dilation)[...] += share
        gx = unpad_nhwc(gxpad, self.pads)
        return (gx if gx.base is None else gx.copy(),)


class MaxUnpool2dOp(Function):
    """The partial inverse of max pooling (Zeiler & Fergus 2014, sec. 2.1, "unpooling" with the
    "switches"): each value goes back to the input position its window's maximum came from, every
    other cell is 0. ``indices`` (n, oh, ow, c) hold ``row * w + col`` in the output plane
    ``out_hw = (h, w)``, as ``F.max_pool2d(..., return_indices=True)`` gives them.

    The forward is the adjoint of gathering at the switches: where overlapping windows share a
    maximum, their values add up, exactly as max pooling's gradient routes them. So unpooling a
    signal is max pooling's backward pass, and the backward here is the gather
    gx[n, p, q, c] = gy[n, row, col, c] at each switch.
    """

    def __init__(self, indices, out_hw):
        self.indices, self.out_hw = indices, out_hw

    def forward(self, x):
        xp = get_array_module(x)
        n, oh, ow, c = x.shape
        h, w = self.out_hw
        y = xp.zeros((n, h * w, c), dtype=x.dtype)  # each image and channel a flat plane of h*w cells
        images = xp.arange(n).reshape(n, 1, 1)
        channels = xp.arange(c).reshape(1, 1, c)
        xp.add.at(y, (images, self.indices.reshape(n, oh * ow, c), channels), x.reshape(n, oh * ow, c))
        return y.reshape(n, h, w, c)

    def backward(self, gy):
        xp = get_array_module(gy)
        n, oh, ow, c = self.indices.shape
        gx = xp.take_along_axis(gy.reshape(n, -1, c), self.indices.reshape(n, oh * ow, c), axis=1)
        return (gx.reshape(n, oh, ow, c),)
