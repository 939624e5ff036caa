"""2-D convolution: im2col + one GEMM, and its backward (the transposed convolution for gx).

Layouts: x is NHWC ``(n, h, w, c)``, the weight HWIO ``(kh, kw, c // groups, o)``, y NHWC
``(n, oh, ow, o)``. In NHWC the im2col matrix is a strided view of the padded input,
``(n, oh, ow, kh, kw, c)``; reshaped to ``(m, kh*kw*c)``, m = n*oh*ow, it lines up with the HWIO
weight reshaped to ``(kh*kw*c, o)``, so no transposes are needed. With groups, channels split into
g independent convolutions: a batched GEMM over the leading group axis.

The faster strategy for NumPy arrays (threads, cache blocks, direct planar loops for few channels) is
:mod:`striate.backend.conv`; it computes the same numbers, and tests compare the two.

The transposed convolution (:class:`ConvTranspose2dOp`) is the same math run the other way: its
forward is the conv's input gradient, its backward the conv and the conv's weight gradient, all
three the module-level functions at the end of this file. Its fast strategy runs the same three
on the conv's fast path (:class:`striate.backend.conv.FastConvTranspose`).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

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
        self.x_shape, self.w = x.shape, w
        y, self.cols = conv_gemm(x, w, self.stride, self.pads, self.dilation, self.groups, self.out_hw)
        return epilogue.apply(y)  # + b (or a fused batch norm and ReLU)

    def backward(self, gy):
        if self.fast is not None:
            return self.fast.backward(gy)
        needs = self.needs_input_grad
        gx = gw = gb = None
        if needs[0]:  # the transposed convolution
            gx = conv_input_grad(gy, self.w, self.x_shape, self.stride, self.pads, self.dilation, self.groups,
                                 self.out_hw)
        if needs[1]:
            gw = conv_weight_grad(self.cols, gy, self.w.shape, self.groups)
        if len(needs) > 2 and needs[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)


class ConvTranspose2dOp(Function):
    """y = conv_transpose(x, w) + b: the adjoint of ``Conv2dOp`` with the same weight and geometry;
    see ``F.conv_transpose2d``.

    x ``(n, h, w, c_in)`` plays the conv's output, y ``(n, H, W, c_out)`` the conv's input, and the
    HWIO weight ``(kh, kw, c_out // groups, c_in)`` is the conv's. So the forward is the conv's
    input gradient (a GEMM into patches, then col2im), and the backward reuses the conv itself:
    gx = conv(gy, w), and gw is the conv's weight gradient with gy as the conv's input and x as the
    gradient of its output.
    """

    def __init__(self, stride, pads, dilation, groups, out_hw):
        self.stride, self.pads, self.dilation = stride, pads, dilation
        self.groups, self.out_hw = groups, out_hw  # out_hw: (H, W) of y

    def macs(self, inputs, out) -> int:
        """Multiply-accumulates per image: h * w * c_in * kh * kw * c_out / groups (bias excluded)."""
        kh, kw, cg, _ = inputs[1].shape
        x_shape = inputs[0].shape
        return int(x_shape[1] * x_shape[2] * x_shape[3]) * kh * kw * cg

    def reads(self, inputs, out):
        """Output position Y is fed by input x through tap i when ``Y = x * s - pad + i * d``."""
        kh, kw = inputs[1].shape[:2]
        sizes = inputs[0].shape[1:3]
        return tuple(transposed_reads(size, len_out, k, s, d, pad)
                     for size, len_out, k, s, d, pad in zip(sizes, self.out_hw, (kh, kw), self.stride,
                                                            self.dilation, self.pads[::2]))

    def forward(self, x, w, b=None):
        self.fast = fast.conv_transpose_strategy(self, x, w)  # None: the reference below
        if self.fast is not None:
            return self.fast.forward(x, w, b)
        n, h, w_, _ = x.shape
        kh, kw, cg, _ = w.shape
        self.in_hw, self.w = (h, w_), w
        self.x = x if self.needs_input_grad[1:2] == (True,) else None  # only the weight gradient needs x
        y = conv_input_grad(x, w, (n, *self.out_hw, cg * self.groups), self.stride, self.pads, self.dilation,
                            self.groups, self.in_hw)
        return y if b is None else y + b

    def backward(self, gy):
        if self.fast is not None:
            return self.fast.backward(gy)
        needs = self.needs_input_grad
        kh, kw, _, _ = self.w.shape
        gx = gw = gb = None
        # the patches of gy, as the conv would take them from its input: (g, m, kh*kw*cg), m = n*h*w
        cols = grouped_patches(gy, (kh, kw), self.stride, self.pads, self.dilation, self.groups, self.in_hw)
        if needs[0]:  # the conv itself, on the same windows
            gx = conv_gemm(gy, self.w, self.stride, self.pads, self.dilation, self.groups, self.in_hw,
                           cols=cols)[0]
        if needs[1]:
            gw = conv_weight_grad(cols, self.x, self.w.shape, self.groups)
        if len(needs) > 2 and needs[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)


def transposed_reads(in_size, out_size, kernel, stride, dilation, pad_before):
    """Along one axis of a transposed conv: for every output position, the first and last input
    positions it reads (-1 where it reads none), and the size ratio in / out as a Fraction."""
    num = np.arange(out_size)[:, None] + pad_before - np.arange(kernel)[None, :] * dilation  # (out, k)
    x = num // stride
    valid = (num % stride == 0) & (x >= 0) & (x < in_size)
    lo = np.where(valid, x, in_size).min(axis=1)
    hi = np.where(valid, x, -1).max(axis=1)
    lo[hi < 0] = -1
    return lo, hi, Fraction(1, stride)


# --------------------------------------------------------------------------- the reference math
# Three functions on raw arrays, shared by Conv2dOp and ConvTranspose2dOp (whose forward is the
# conv's input gradient, and whose backward is the conv forward and the conv's weight gradient).
def conv_gemm(x, w, stride, pads, dilation, groups, out_hw, cols=None):
    """y = conv(x, w) without bias: im2col + one (batched over groups) GEMM.

    Returns ``(y, cols)``: y ``(n, oh, ow, o)`` and the grouped patch matrix ``(g, m, kh*kw*cg)``,
    m = n*oh*ow, which the weight gradient needs. ``out_hw`` fixes the windows taken (a transposed
    conv's output_padding leaves rows beyond the last window unused). ``cols``: x's grouped patch
    matrix, when the caller has made it already.
    """
    kh, kw, cg, o = w.shape
    n, (oh, ow), g = x.shape[0], out_hw, groups
    if cols is None:
        cols = grouped_patches(x, (kh, kw), stride, pads, dilation, groups, out_hw)
    w2 = w.reshape(kh * kw * cg, g, o // g).transpose(1, 0, 2)  # (kh, kw, cg, o) -> (g, kh*kw*cg, og)
    y = cols @ w2  # (g, m, og) = (g, m, kh*kw*cg) @ (g, kh*kw*cg, og)
    return y.transpose(1, 0, 2).reshape(n, oh, ow, o), cols


def grouped_patches(x, kernel, stride, pads, dilation, groups, out_hw):
    """im2col of the padded x, split by group: ``(g, m, kh*kw*cg)``, m = n*oh*ow."""
    (kh, kw), g = kernel, groups
    cg = x.shape[3] // g
    cols = im2col(pad_nhwc(x, pads), (kh, kw), stride, dilation, out_hw)  # (m, kh*kw*c)
    return cols.reshape(-1, kh * kw, g, cg).transpose(2, 0, 1, 3).reshape(g, -1, kh * kw * cg)


def conv_input_grad(gy, w, x_shape, stride, pads, dilation, groups, out_hw):
    """gx of y = conv(x, w): the transposed convolution of gy ``(n, oh, ow, o)`` -> ``x_shape``.

    Each output pixel's gradient becomes a patch, ``gy @ w^T``, and col2im adds the patches back
    where im2col read them; the padding's share is cut off.
    """
    kh, kw, cg, o = w.shape
    g = groups
    gy2 = gy.reshape(-1, g, o // g).transpose(1, 0, 2)  # (g, m, og)
    w2 = w.reshape(kh * kw * cg, g, o // g).transpose(1, 2, 0)  # (g, og, kh*kw*cg)
    gcols = gy2 @ w2  # (g, m, kh*kw*cg) = (g, m, og) @ (g, og, kh*kw*cg)
    gcols = gcols.reshape(g, -1, kh * kw, cg).transpose(1, 2, 0, 3).reshape(-1, kh * kw * g * cg)
    n, h, w_, c = x_shape
    top, bottom, left, right = pads
    gxpad = col2im(gcols, (n, h + top + bottom, w_ + left + right, c), (kh, kw), stride, dilation, out_hw)
    gx = unpad_nhwc(gxpad, pads)
    return gx if gx.base is None else gx.copy()


def conv_weight_grad(cols, gy, w_shape, groups):
    """gw of y = conv(x, w) from x's grouped patch matrix ``cols`` ``(g, m, kh*kw*cg)`` and gy."""
    kh, kw, cg, o = w_shape
    g = groups
    gy2 = gy.reshape(-1, g, o // g).transpose(1, 0, 2)  # (g, m, og)
    # (g, kh*kw*cg, og) = (g, kh*kw*cg, m) @ (g, m, og)
    gw = (cols.transpose(0, 2, 1) @ gy2).reshape(g, kh, kw, cg, o // g)
    return gw.transpose(1, 2, 3, 0, 4).reshape(kh, kw, cg, o)
