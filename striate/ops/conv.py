"""2-D convolution as im2col + one BLAS GEMM, and its backward.

Layouts: x is NHWC ``(n, h, w, c)``, the weight HWIO ``(kh, kw, c // groups, o)``, y NHWC
``(n, oh, ow, o)``. In NHWC the im2col matrix is a strided *view* of the padded input with shape
``(n, oh, ow, kh, kw, c)``: reshaping it to ``(n*oh*ow, kh*kw*c)`` makes one contiguous copy and
lines up with the HWIO weight reshaped to ``(kh*kw*c, o)``, so no transposes are needed. col2im, the
adjoint, loops over the ``kh*kw`` kernel offsets only (never over pixels, images or channels).
"""
from __future__ import annotations

import threading

from ..tensor import Function, get_array_module
from .reductions import channel_sum


def pad_nhwc(x, pads, value=0.0):
    """Pad the two spatial axes of an NHWC array; ``pads`` = (top, bottom, left, right)."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    xp = get_array_module(x)
    n, h, w, c = x.shape
    out = xp.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def unpad_nhwc(x, pads):
    """Inverse of :func:`pad_nhwc` (a view)."""
    top, bottom, left, right = pads
    h, w = x.shape[1], x.shape[2]
    return x[:, top:h - bottom, left:w - right, :]


def offset_view(a, i, j, stride, out_hw, dilation=(1, 1)):
    """Kernel tap (i, j) of every window at once: the strided view
    ``a[:, i*dh + sh*p, j*dw + sw*q, :]`` for all p < oh, q < ow, shape (n, oh, ow, c).

    Sliding-window ops loop over the kh*kw taps with it, never over pixels.
    """
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return a[:, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw, :]


def sliding_windows(x, kernel, stride, dilation, out_hw):
    """Strided view ``(n, oh, ow, kh, kw, c)`` of a padded NHWC array: window (i, j) at [:, i, j]."""
    xp = get_array_module(x)
    n, _, _, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    s_n, s_h, s_w, s_c = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, oh, ow, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c), writeable=False)


def scratch(shape, dtype, xp):
    """A reusable array for a value that dies inside one op call (a patch matrix consumed by its
    GEMM, a per-offset product). Fresh multi-megabyte arrays cost as much in first-touch page
    faults as the copy into them (measured: 75 MB of ResNet-20 patches, 11 ms fresh vs 5 ms
    reused), so each (shape, dtype) keeps one buffer; the few most recent are kept.

    The caller must not let the array escape the call (never return it, never save it).
    """
    pool = _scratch.__dict__.setdefault("buffers", {})  # per thread: threads never share one
    key = (tuple(shape), xp.dtype(dtype).str, xp.__name__)
    buf = pool.pop(key, None)
    if buf is None:
        buf = xp.empty(shape, dtype=dtype)
    pool[key] = buf  # most recently used last
    while len(pool) > SCRATCH_BUFFERS:
        pool.pop(next(iter(pool)))
    return buf


_scratch = threading.local()
SCRATCH_BUFFERS = 8


def im2col(x, kernel, stride, dilation, out_hw, reuse=False):
    """(n, hp, wp, c) padded input -> (n*oh*ow, kh*kw*c) patch matrix (one copy).

    ``reuse=True`` copies into a :func:`scratch` buffer: only for patches that die in the caller.
    """
    n, c = x.shape[0], x.shape[3]
    (kh, kw), (oh, ow) = kernel, out_hw
    windows = sliding_windows(x, kernel, stride, dilation, out_hw)  # (n, oh, ow, kh, kw, c) view
    if not reuse:
        return windows.reshape(n * oh * ow, kh * kw * c)
    xp = get_array_module(x)
    out = scratch(windows.shape, x.dtype, xp)
    xp.copyto(out, windows)
    return out.reshape(n * oh * ow, kh * kw * c)


def col2im(cols, padded_shape, kernel, stride, dilation, out_hw):
    """Adjoint of :func:`im2col`: scatter-add (n, oh, ow, kh, kw, c) patches into the padded input.

    Overlapping windows add up, which is exactly the gradient of reading a pixel several times.
    """
    xp = get_array_module(cols)
    n, hp, wp, c = padded_shape
    (kh, kw), (oh, ow) = kernel, out_hw
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    gx = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            offset_view(gx, i, j, stride, out_hw, dilation)[...] += cols[:, :, :, i, j, :]
    return gx


# Patch matrices up to this size are kept from forward to backward instead of being recomputed
# (LeNet's at batch 128: 10 MB; ResNet-20's first stage: 75 MB, recomputed).
KEEP_PATCHES_BYTES = 16 * 2**20
# Below this many output pixels (batch-1 inference) one strided copy beats kh*kw small row copies.
PATCHES_MAJOR_MIN_ROWS = 4096


def _patches_major(x, kernel, stride, dilation, out_hw):
    """Patch matrix of a single-channel padded input, transposed: ``(kh*kw, n*oh*ow)``.

    Row (i, j) is the strided view x[:, i*dh::sh, j*dw::sw, 0], copied whole: kh*kw fast copies.
    """
    xp = get_array_module(x)
    n = x.shape[0]
    (kh, kw), (oh, ow) = kernel, out_hw
    out = xp.empty((kh, kw, n, oh, ow, 1), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[i, j] = offset_view(x, i, j, stride, out_hw, dilation)
    return out.reshape(kh * kw, n * oh * ow)


class Conv2d(Function):
    """y = conv(x, w) + b with explicit pads (top, bottom, left, right); see ``F.conv2d``."""

    def __init__(self, stride, pads, dilation, groups, out_hw):
        self.stride, self.pads, self.dilation = stride, pads, dilation
        self.groups, self.out_hw = groups, out_hw

    def _patches(self, xp_pad, kernel, reuse=False):
        """Patch matrix ``(n*oh*ow, kh*kw*c)``, grouped as (g, n*oh*ow, kh*kw*cg) when groups > 1.

        With one input channel (a grayscale first layer) NHWC patches would be copied one float
        at a time; there they are built patches-major, ``(kh*kw, n*oh*ow)``, from kh*kw row
        copies, and returned transposed (BLAS takes the transposed operand for free).
        """
        n, c = xp_pad.shape[0], xp_pad.shape[3]
        oh, ow = self.out_hw
        if self.groups == 1 and c == 1 and n * oh * ow >= PATCHES_MAJOR_MIN_ROWS:
            return _patches_major(xp_pad, kernel, self.stride, self.dilation, self.out_hw).T
        if self.groups == 1:
            return im2col(xp_pad, kernel, self.stride, self.dilation, self.out_hw, reuse)
        g, (kh, kw) = self.groups, kernel
        win = sliding_windows(xp_pad, kernel, self.stride, self.dilation, self.out_hw)
        win = win.reshape(n, oh, ow, kh, kw, g, c // g)
        # (g, n, oh, ow, kh, kw, cg) -> (g, n*oh*ow, kh*kw*cg): one GEMM per group, batched
        return win.transpose(5, 0, 1, 2, 3, 4, 6).reshape(g, n * oh * ow, kh * kw * (c // g))

    def _grouped_weight(self, w):
        kh, kw, cg, o = w.shape
        g = self.groups
        if g == 1:
            return w.reshape(kh * kw * cg, o)
        # (kh, kw, cg, g, og) -> (g, kh*kw*cg, og)
        return w.reshape(kh, kw, cg, g, o // g).transpose(3, 0, 1, 2, 4).reshape(g, kh * kw * cg, o // g)

    def forward(self, x, w, b=None):
        kh, kw, _, o = w.shape
        n, c = x.shape[0], x.shape[3]
        oh, ow = self.out_hw
        xpad = pad_nhwc(x, self.pads)
        w2 = self._grouped_weight(w)
        # The weight gradient needs the patches again. Small patch matrices are kept; larger ones
        # are recomputed from x (usually alive anyway as the previous layer's output): kh*kw
        # times less memory for one extra copy. Patches that are not kept go to a scratch buffer.
        needs_w = len(self.needs_input_grad) > 1 and self.needs_input_grad[1]
        keep = needs_w and n * oh * ow * kh * kw * c * x.itemsize <= KEEP_PATCHES_BYTES
        cols = self._patches(xpad, (kh, kw), reuse=not keep)
        if self.groups == 1:
            y = cols @ w2  # (n*oh*ow, o) = (n*oh*ow, kh*kw*c) @ (kh*kw*c, o)
        else:
            # (g, n*oh*ow, og) = (g, n*oh*ow, kh*kw*cg) @ (g, kh*kw*cg, og)
            y = (cols @ w2).transpose(1, 0, 2)
        y = y.reshape(n, oh, ow, o)
        if b is not None:
            y += b
        self.xpad_shape = xpad.shape
        self.w = w if self.needs_input_grad and self.needs_input_grad[0] else None
        self.w_shape = w.shape
        self.cols = cols if keep else None
        self.x = x if needs_w and not keep else None
        return y

    def _transposed_pads(self):
        """Pads of the stride-1 transposed convolution that maps gy back onto x (None if a pad
        would be negative, i.e. the forward padding exceeds the kernel's reach)."""
        (kh, kw), (dh, dw) = self.w_shape[:2], self.dilation
        top, bottom, left, right = self.pads
        pads = ((kh - 1) * dh - top, (kh - 1) * dh - bottom, (kw - 1) * dw - left, (kw - 1) * dw - right)
        return pads if min(pads) >= 0 else None

    def _backward_data_as_conv(self, gy):
        """Input gradient of a stride-1 convolution, computed as a convolution of gy with the
        flipped, in/out-swapped kernel (the transposed convolution), through the same im2col +
        GEMM path: much faster than scattering patches with col2im.

        gx[a] = sum_i gy[a + top - i*d] w[i]  ==  sum_i' gy_pad[a + i'*d] w[kh-1-i'],
        with gy padded by (kh-1)*d - top above (likewise the other sides).
        """
        kh, kw, cg, o = self.w_shape
        g = self.groups
        # (kh, kw, cg, g, og) flipped -> (kh, kw, og, g*cg): output channel g*cg+ci reads group g
        wt = self.w[::-1, ::-1].reshape(kh, kw, cg, g, o // g).transpose(0, 1, 4, 3, 2).reshape(kh, kw, o // g, g * cg)
        n, hp, wp, c = self.xpad_shape
        top, bottom, left, right = self.pads
        out_hw = (hp - top - bottom, wp - left - right)
        conv = Conv2d((1, 1), self._transposed_pads(), self.dilation, g, out_hw)
        conv.needs_input_grad = (False, False)  # nothing to save: this is a one-off forward
        return conv.forward(gy, wt)

    def _backward_data_scatter(self, gy2):
        """Input gradient by scattering, one kernel offset at a time (groups == 1).

        For offset (i, j): (n*oh*ow, c) = (n*oh*ow, o) @ (o, c), added into the strided view of the
        padded gradient that offset read in forward. Each add reads a contiguous block, unlike
        col2im over the (n, oh, ow, kh, kw, c) patch layout.
        """
        xp = get_array_module(gy2)
        kh, kw, c, o = self.w_shape
        n = self.xpad_shape[0]
        oh, ow = self.out_hw
        gxpad = xp.zeros(self.xpad_shape, dtype=gy2.dtype)
        for i in range(kh):
            for j in range(kw):
                # (n*oh*ow, c) = (n*oh*ow, o) @ (o, c)
                g = xp.matmul(gy2, self.w[i, j].T, out=scratch((gy2.shape[0], c), gy2.dtype, xp))
                offset_view(gxpad, i, j, self.stride, self.out_hw, self.dilation)[...] += g.reshape(n, oh, ow, c)
        gx = unpad_nhwc(gxpad, self.pads)
        return gx if gx.base is None else gx.copy()

    def backward(self, gy):
        kh, kw, cg, o = self.w_shape
        n, oh, ow = gy.shape[0], gy.shape[1], gy.shape[2]
        g = self.groups
        gy2 = gy.reshape(n * oh * ow, o)
        needs = self.needs_input_grad
        gx = gw = gb = None
        # Input gradient, by the fastest of three equivalent forms (timed layer by layer): the
        # transposed convolution for stride 1 when it reads no more than forward did (o <= c,
        # grouped convs), else a scatter per kernel offset (groups == 1), else col2im.
        transposable = self.stride == (1, 1) and self._transposed_pads() is not None
        if needs[0] and transposable and (o <= g * cg or g > 1):
            gx = self._backward_data_as_conv(gy)
        elif needs[0] and g == 1:
            gx = self._backward_data_scatter(gy2)
        elif needs[0]:
            w2 = self._grouped_weight(self.w)
            if g == 1:
                gcols = gy2 @ w2.T  # (n*oh*ow, kh*kw*c) = (n*oh*ow, o) @ (o, kh*kw*c)
            else:
                gyg = gy2.reshape(-1, g, o // g).transpose(1, 0, 2)  # (g, n*oh*ow, og)
                gcols = gyg @ w2.transpose(0, 2, 1)  # (g, n*oh*ow, kh*kw*cg)
                gcols = gcols.reshape(g, n, oh, ow, kh, kw, cg).transpose(1, 2, 3, 4, 5, 0, 6)
            gxp = col2im(gcols, self.xpad_shape, (kh, kw), self.stride, self.dilation, self.out_hw)
            gx = unpad_nhwc(gxp, self.pads)
            if gx.base is not None:
                gx = gx.copy()
        if needs[1]:
            cols = self.cols
            if cols is None:
                cols = self._patches(pad_nhwc(self.x, self.pads), (kh, kw), reuse=True)
            if g == 1:
                gw = (cols.T @ gy2).reshape(self.w_shape)  # (kh*kw*c, o) = (kh*kw*c, m) @ (m, o)
            else:
                gyg = gy2.reshape(-1, g, o // g).transpose(1, 0, 2)
                gwg = cols.transpose(0, 2, 1) @ gyg  # (g, kh*kw*cg, og)
                gw = gwg.reshape(g, kh, kw, cg, o // g).transpose(1, 2, 3, 0, 4).reshape(self.w_shape)
        if len(needs) > 2 and needs[2]:
            gb = channel_sum(gy2)
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)
