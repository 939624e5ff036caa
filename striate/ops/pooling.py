"""Max and average pooling over NHWC windows, and their backward.

Both read the input through the same strided window view as convolution
(``(n, oh, ow, kh, kw, c)``) and scatter gradients back with one loop over the kh*kw offsets.
"""
from __future__ import annotations

from ..tensor import Function, get_array_module
from .conv import pad_nhwc, sliding_windows, unpad_nhwc


def _scatter_windows(gwin, padded_shape, kernel, stride, out_hw):
    """Add per-window gradients ``(n, oh, ow, kh, kw, c)`` back into a padded input of zeros."""
    xp = get_array_module(gwin)
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    gx = xp.zeros(padded_shape, dtype=gwin.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += gwin[:, :, :, i, j, :]
    return gx


class MaxPool2d(Function):
    """Max over each window; padded cells are -inf so they never win.

    Ties: the gradient goes to the *first* maximum in row-major window order (top-left first),
    the same rule as PyTorch's CPU kernel, so results are deterministic.
    """

    def __init__(self, kernel, stride, pads, out_hw):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw

    def forward(self, x):
        xp = get_array_module(x)
        (kh, kw), (oh, ow) = self.kernel, self.out_hw
        n, c = x.shape[0], x.shape[3]
        xpad = pad_nhwc(x, self.pads, value=-xp.inf)
        win = sliding_windows(xpad, self.kernel, self.stride, (1, 1), self.out_hw)
        flat = win.reshape(n, oh, ow, kh * kw, c)  # one copy: (n, oh, ow, kh*kw, c)
        if self.needs_input_grad and self.needs_input_grad[0]:
            self.argmax = flat.argmax(axis=3)  # (n, oh, ow, c), first max wins
            self.xpad_shape = xpad.shape
            return xp.take_along_axis(flat, self.argmax[:, :, :, None, :], axis=3)[:, :, :, 0, :]
        return flat.max(axis=3)

    def backward(self, gy):
        xp = get_array_module(gy)
        (kh, kw), (oh, ow) = self.kernel, self.out_hw
        n, c = gy.shape[0], gy.shape[3]
        # one-hot of the winning offset: (n, oh, ow, kh*kw, c)
        onehot = self.argmax[:, :, :, None, :] == xp.arange(kh * kw).reshape(1, 1, 1, -1, 1)
        gwin = (onehot * gy[:, :, :, None, :]).reshape(n, oh, ow, kh, kw, c)
        gx = _scatter_windows(gwin, self.xpad_shape, self.kernel, self.stride, self.out_hw)
        gx = unpad_nhwc(gx, self.pads)
        return (gx if gx.base is None else gx.copy(),)


class AvgPool2d(Function):
    """Mean over each window; padded cells count as zeros (PyTorch's count_include_pad=True)."""

    def __init__(self, kernel, stride, pads, out_hw):
        self.kernel, self.stride, self.pads, self.out_hw = kernel, stride, pads, out_hw

    def forward(self, x):
        kh, kw = self.kernel
        xpad = pad_nhwc(x, self.pads)
        self.xpad_shape = xpad.shape
        win = sliding_windows(xpad, self.kernel, self.stride, (1, 1), self.out_hw)
        return win.sum(axis=(3, 4)) * x.dtype.type(1.0 / (kh * kw))

    def backward(self, gy):
        xp = get_array_module(gy)
        (kh, kw), (oh, ow) = self.kernel, self.out_hw
        n, c = gy.shape[0], gy.shape[3]
        share = gy * gy.dtype.type(1.0 / (kh * kw))
        gwin = xp.broadcast_to(share[:, :, :, None, None, :], (n, oh, ow, kh, kw, c))
        gx = _scatter_windows(gwin, self.xpad_shape, self.kernel, self.stride, self.out_hw)
        gx = unpad_nhwc(gx, self.pads)
        return (gx if gx.base is None else gx.copy(),)
