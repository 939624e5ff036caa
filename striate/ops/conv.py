"""2-D convolution: im2col + one GEMM, and its backward (the transposed convolution for gx).

Layouts: x is NHWC ``(n, h, w, c)``, the weight HWIO ``(kh, kw, c // groups, o)``, y NHWC
``(n, oh, ow, o)``. In NHWC the im2col matrix is a strided view of the padded input,
``(n, oh, ow, kh, kw, c)``; reshaped to ``(m, kh*kw*c)``, m = n*oh*ow, it lines up with the HWIO
weight reshaped to ``(kh*kw*c, o)``, so no transposes are needed. With groups, channels split into
g independent convolutions: a batched GEMM over the leading group axis.

The faster strategy for NumPy arrays (threads, cache blocks, direct planar loops for few channels) is
:mod:`striate.backend.conv`; it computes the same numbers, and tests compare the two.
"""
from __future__ import annotations

from ..backend import conv as fast
from ..tensor import Function
from .epilogue import Epilogue
from .geometry import col2im, im2col, pad_nhwc, unpad_nhwc


class Conv2dOp(Function):
    """y = conv(x, w) + b with explicit pads (top, bottom, left, right); see ``F.conv2d``.

    ``fused``: None, or (scale, shift, relu) of an eval-mode batch norm (and ReLU) applied to the
    output in the same pass (:mod:`striate.ops.epilogue`); inference only: no gradient then.
    """

    def __init__(self, stride, pads, dilation, groups, out_hw, fused=None):
        self.stride, self.pads, self.dilation = stride, pads, dilation
        self.groups, self.out_hw, self.fused = groups, out_hw, fused

    def macs(self, inputs, out) -> int:
        """Multiply-accumulates per image: oh * ow * o * kh * kw * c / groups (bias excluded)."""
        kh, kw, cg, _ = inputs[1].shape
        return int(out.shape[1] * out.shape[2] * out.shape[3]) * kh * kw * cg

    def window(self, inputs):
        return tuple(inputs[1].shape[:2]), self.stride, self.dilation, self.pads

    def forward(self, x, w, b=None):
        if self.fused is not None and any(self.needs_input_grad):
            raise RuntimeError("conv2d with a fused batch norm is for inference: run it under st.no_grad()")
        epilogue = Epilogue.after(b, self.fused)
        self.fast = fast.conv_strategy(self, x, w)  # None: the reference below
        if self.fast is not None:
            return self.fast.forward(x, w, epilogue=epilogue)
        kh, kw, cg, o = w.shape
        n, (oh, ow), g = x.shape[0], self.out_hw, self.groups
        self.x_shape, self.w = x.shape, w
        cols = im2col(pad_nhwc(x, self.pads), (kh, kw), self.stride, self.dilation, self.out_hw)
        # (m, kh*kw*c) -> (g, m, kh*kw*cg) and (kh, kw, cg, o) -> (g, kh*kw*cg, og)
        self.cols = cols.reshape(n * oh * ow, kh * kw, g, cg).transpose(2, 0, 1, 3).reshape(g, -1, kh * kw * cg)
        w2 = w.reshape(kh * kw * cg, g, o // g).transpose(1, 0, 2)
        y = self.cols @ w2  # (g, m, og) = (g, m, kh*kw*cg) @ (g, kh*kw*cg, og)
        y = y.transpose(1, 0, 2).reshape(n, oh, ow, o)
        return epilogue.apply(y)  # + b (or a fused batch norm and ReLU)

    def backward(self, gy):
        if self.fast is not None:
            return self.fast.backward(gy)
        kh, kw, cg, o = self.w.shape
        g, needs = self.groups, self.needs_input_grad
        gy2 = gy.reshape(-1, g, o // g).transpose(1, 0, 2)  # (g, m, og)
        gx = gw = gb = None
        if needs[0]:  # the transposed convolution: patches of gradient, scattered back by col2im
            w2 = self.w.reshape(kh * kw * cg, g, o // g).transpose(1, 2, 0)  # (g, og, kh*kw*cg)
            gcols = gy2 @ w2  # (g, m, kh*kw*cg) = (g, m, og) @ (g, og, kh*kw*cg)
            gcols = gcols.reshape(g, -1, kh * kw, cg).transpose(1, 2, 0, 3).reshape(-1, kh * kw * g * cg)
            n, h, w_, c = self.x_shape
            top, bottom, left, right = self.pads
            gxpad = col2im(gcols, (n, h + top + bottom, w_ + left + right, c), (kh, kw), self.stride,
                           self.dilation, self.out_hw)
            gx = unpad_nhwc(gxpad, self.pads).copy()
        if needs[1]:  # (g, kh*kw*cg, og) = (g, kh*kw*cg, m) @ (g, m, og)
            gw = (self.cols.transpose(0, 2, 1) @ gy2).reshape(g, kh, kw, cg, o // g)
            gw = gw.transpose(1, 2, 3, 0, 4).reshape(kh, kw, cg, o)
        if len(needs) > 2 and needs[2]:
            gb = gy.reshape(-1, o).sum(axis=0)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)
