"""2-D convolution as im2col + BLAS GEMMs or, for stride 1 and few channels, a direct compiled
kernel; and its backward.

Layouts: x is NHWC ``(n, h, w, c)``, the weight HWIO ``(kh, kw, c // groups, o)``, y NHWC
``(n, oh, ow, o)``. In NHWC the im2col matrix is a strided *view* of the padded input with shape
``(n, oh, ow, kh, kw, c)``: reshaping it to ``(n*oh*ow, kh*kw*c)`` makes one contiguous copy and
lines up with the HWIO weight reshaped to ``(kh*kw*c, o)``, so no transposes are needed. The input
gradient scatters back one kernel offset at a time (never a loop over pixels, images or channels),
or goes through the compiled col2im of :mod:`striate.ops.accel`, or, for stride 1, is itself a
convolution (the transposed one).

2-D products go through ``xp.dot``, not ``@``: NumPy's matmul keeps the GIL through some BLAS calls
(a (25, 50176) @ (50176, 6) weight gradient held it for its whole 0.7 ms), which stalled the other
thread; dot releases it.

With few channels (LeNet-5's one-channel first layer, ResNet-20's 3- and 16-channel ones) im2col +
GEMM mostly moves patch matrices around. There, when numba is installed, a direct "planar" kernel
(:mod:`striate.ops.accel`) does the convolution and its weight gradient without any patch matrix,
and the input gradient as the transposed convolution; :func:`planar_wins` picks the path.

Speed comes from two cuts of the work, neither of which changes the arithmetic of a row: the batch
is split into one part per thread (:mod:`striate.ops.parallel`), and each part is worked through in
cache-sized blocks of output rows (:func:`blocks`), so that a patch matrix is read by its GEMM while
still in the CPU cache instead of going out to memory and back.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from ..tensor import Function, get_array_module
from . import accel, parallel
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
    shape, strides = (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
    if xp is np and x.flags.c_contiguous:  # the ndarray constructor: ~10x cheaper than as_strided
        return np.ndarray(shape, x.dtype, buffer=x, strides=strides)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)


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


def im2col(x, kernel, stride, dilation, out_hw, rows=slice(None), buffer=None):
    """(n, hp, wp, c) padded input -> ``(n*r*ow, kh*kw*c)`` patch matrix of output rows ``rows``
    (all by default; r of them): one copy of the strided windows view.

    ``buffer(shape, dtype, xp)`` makes the array copied into (default: a fresh one); :func:`scratch`
    reuses one, for patches that die in the caller.
    """
    xp = get_array_module(x)
    c = x.shape[3]
    kh, kw = kernel
    windows = sliding_windows(x, kernel, stride, dilation, out_hw)[:, rows]  # (n, r, ow, kh, kw, c) view
    out = (buffer or _fresh)(windows.shape, x.dtype, xp)
    xp.copyto(out, windows)
    return out.reshape(-1, kh * kw * c)


def _fresh(shape, dtype, xp):
    return xp.empty(shape, dtype)


# Patch matrices are built and consumed one block at a time, each small enough to stay in the CPU
# cache between the copy that writes it and the GEMM that reads it. Whole patch matrices (75 MB for
# ResNet-20's first stage at batch 128) went out to memory and back, which made the small-channel
# convs memory-bound (measured, ResNet-20's 32x32x16 conv: 20 -> 13.5 ms forward on one thread).
BLOCK_BYTES = 4 * 2**20
# Patch matrices up to this size in all are kept from forward to backward instead of being rebuilt
# for the weight gradient (LeNet-5's at batch 128: 10 MB, 1.6 -> 2.5 ms backward when rebuilt).
KEEP_PATCHES_BYTES = 16 * 2**20
# Below this many output pixels (batch-1 inference) one strided copy beats kh*kw small row copies.
PATCHES_MAJOR_MIN_ROWS = 4096


WHOLE_BLOCK = ((slice(None), slice(None)),)  # every image, every row


def blocks(images: int, oh: int, image_bytes: int):
    """Cut ``images`` x ``oh`` output rows into blocks of at most :data:`BLOCK_BYTES` of patches
    (``image_bytes`` per image; at least one row per block): several whole images when an image
    fits, else bands of rows of one image. Returns ``(images slice, rows slice)`` pairs; the NHWC
    output of a block, ``y[images, rows]``, is always one contiguous piece of memory.
    """
    if images * image_bytes <= BLOCK_BYTES:
        return WHOLE_BLOCK
    if image_bytes <= BLOCK_BYTES:  # groups of whole images, of even size
        count = -(-images // (BLOCK_BYTES // image_bytes))
        bounds = [images * i // count for i in range(count + 1)]
        return [(slice(bounds[i], bounds[i + 1]), slice(None)) for i in range(count)]
    count = -(-oh // max(1, BLOCK_BYTES * oh // image_bytes))  # bands of rows of one image, even
    bounds = [oh * i // count for i in range(count + 1)]
    return [(slice(b, b + 1), slice(bounds[i], bounds[i + 1])) for b in range(images) for i in range(count)]


def planar_wins(w_shape, pads, in_hw, out_hw, dilation) -> bool:
    """Whether the direct (planar) kernels of :mod:`striate.ops.accel` beat im2col + GEMM for a
    stride-1 conv: few channels each way (a GEMM needs them to amortise moving its patch matrices,
    the direct kernel does not), and at least PLANAR_MIN_KEPT of the multiply-adds it computes
    are needed: it also computes lanes that it drops (the columns past ``ow`` of each row, and
    the round-up of lanes and taps) and it multiplies padding zeros.

    Measured against im2col + GEMM (2 threads, batch 128, forward + backward, the layers of
    ``benchmarks/run.py --only conv``): LeNet-5's conv1 (1 -> 6 channels, 72% kept) 2.7x faster,
    ResNet-20's first conv (3 -> 16, 87%) 1.7x, its 16 -> 16 convs (90%) 1.4x; LeNet-5's conv2
    (6 -> 16 at 14x14, 62%) 0.8x; 32 channels 0.8x, 64 channels 0.5x.
    """
    kh, kw, c, o = w_shape
    if c > PLANAR_MAX_CHANNELS or o > PLANAR_MAX_CHANNELS:
        return False
    top, bottom, left, right = pads
    (h, w), (oh, ow), (dh, dw) = in_hw, out_hw, dilation
    # (output row, kernel row) pairs that read a real input row, likewise for columns
    rows = sum(min(oh, top + h - i * dh) - max(0, top - i * dh) for i in range(kh))
    cols = sum(min(ow, left + w - j * dw) - max(0, left - j * dw) for j in range(kw))
    taps, filters = planar_counts(w_shape)
    _, lanes = planar_lanes(w + left + right, out_hw)
    return rows * cols * c * o >= PLANAR_MIN_KEPT * taps * filters * lanes


PLANAR_MAX_CHANNELS = 16
PLANAR_MIN_KEPT = 2 / 3


def planar_counts(w_shape):
    """(T, O) of the planar kernels for an HWIO kernel: kh*kw*c taps rounded up to a multiple of 4
    (they go four at a time) and o filters rounded up to even (two at a time)."""
    kh, kw, c, o = w_shape
    return -(-kh * kw * c // 4) * 4, o + o % 2


def planar_lanes(wp: int, out_hw):
    """(L, L rounded up to a multiple of LANE_BLOCK): the lanes of a planar kernel's rows, output
    pixel (p, q) being lane p*wp + q."""
    oh, ow = out_hw
    lanes = (oh - 1) * wp + ow
    return lanes, lanes - lanes % -accel.LANE_BLOCK


@functools.lru_cache(maxsize=256)
def planar_offsets(w_shape, hp: int, wp: int, dilation):
    """Where each tap of an HWIO kernel ``(kh, kw, c, o)`` reads a flat (c, hp, wp) padded image,
    for the planar kernels of :mod:`striate.ops.accel`: ``(T,)`` offsets, tap t = (ch, i, j) in that
    order, T = kh*kw*c rounded up to a multiple of 4 (the extra taps read offset 0)."""
    kh, kw, c, _ = w_shape
    ch, i, j = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    offs = np.zeros(planar_counts(w_shape)[0], dtype=np.int64)
    offs[:kh * kw * c] = (ch * hp * wp + i * dilation[0] * wp + j * dilation[1]).ravel()
    return offs


def planar_weights(w):
    """The HWIO weight as tap-major ``(T, O)`` rows for :func:`planar_offsets`' taps, zero for the
    extra taps and, when o is odd, for one extra filter (O = o rounded up to even)."""
    kh, kw, c, o = w.shape
    wt = np.zeros(planar_counts(w.shape), dtype=w.dtype)
    wt[:kh * kw * c, :o] = w.transpose(2, 0, 1, 3).reshape(kh * kw * c, o)  # (c, kh, kw, o) -> (T, o)
    return wt


def planar_weight_grad(gw_t, w_shape):
    """Inverse of :func:`planar_weights`: ``(T, O)`` rows -> the HWIO ``(kh, kw, c, o)`` gradient."""
    kh, kw, c, o = w_shape
    return gw_t[:kh * kw * c, :o].reshape(c, kh, kw, o).transpose(1, 2, 0, 3)


class Conv2d(Function):
    """y = conv(x, w) + b with explicit pads (top, bottom, left, right); see ``F.conv2d``.

    The batch is split into one part per thread (:mod:`striate.ops.parallel`), and each part is
    worked through in cache-sized :func:`blocks`: patches of the block, one GEMM, next block.
    """

    def __init__(self, stride, pads, dilation, groups, out_hw):
        self.stride, self.pads, self.dilation = stride, pads, dilation
        self.groups, self.out_hw = groups, out_hw

    def _patches(self, xpad, kernel, rows, keep=False):
        """Patch matrix of output rows ``rows`` of every image of the padded ``xpad``:
        ``(m, kh*kw*c)``, m = images * rows * ow, or ``(g, m, kh*kw*cg)`` when grouped. In a
        :func:`scratch` buffer, valid until the next call on this thread, unless ``keep``.

        With one input channel (a grayscale first layer) NHWC patches would be copied one float
        at a time; there they are built patches-major, ``(kh*kw, m)``, from kh*kw row copies, and
        returned transposed (BLAS takes the transposed operand for free).
        """
        xp = get_array_module(xpad)
        n, c = xpad.shape[0], xpad.shape[3]
        (kh, kw), (oh, ow), g = kernel, self.out_hw, self.groups
        r = oh if rows == slice(None) else len(range(oh)[rows])
        buffer = _fresh if keep else scratch
        if g == 1 and c == 1 and n * r * ow >= PATCHES_MAJOR_MIN_ROWS:
            out = buffer((kh, kw, n, r, ow, 1), xpad.dtype, xp)
            for i in range(kh):
                for j in range(kw):
                    out[i, j] = offset_view(xpad, i, j, self.stride, self.out_hw, self.dilation)[:, rows]
            return out.reshape(kh * kw, n * r * ow).T
        if g == 1:
            return im2col(xpad, kernel, self.stride, self.dilation, self.out_hw, rows, buffer)
        win = sliding_windows(xpad, kernel, self.stride, self.dilation, self.out_hw)[:, rows]
        # (n, r, ow, kh, kw, g, cg) -> (g, n, r, ow, kh, kw, cg) -> (g, m, kh*kw*cg): a batched GEMM
        win = win.reshape(n, r, ow, kh, kw, g, c // g).transpose(5, 0, 1, 2, 3, 4, 6)
        out = buffer(win.shape, xpad.dtype, xp)
        xp.copyto(out, win)
        return out.reshape(g, n * r * ow, kh * kw * (c // g))

    def _grouped_weight(self, w):
        kh, kw, cg, o = w.shape
        g = self.groups
        if g == 1:
            return w.reshape(kh * kw * cg, o)
        # (kh, kw, cg, g, og) -> (g, kh*kw*cg, og)
        return w.reshape(kh, kw, cg, g, o // g).transpose(3, 0, 1, 2, 4).reshape(g, kh * kw * cg, o // g)

    def _blocks(self, images):
        kh, kw, cg, _ = self.w_shape
        oh, ow = self.out_hw
        return blocks(images, oh, oh * ow * kh * kw * cg * self.groups * self.itemsize)

    def _planar_kernels(self, xp):
        """The compiled kernels when this conv runs direct (:func:`planar_wins`), else None."""
        if xp is not np or self.groups != 1 or self.stride != (1, 1) or self._transposed_pads() is None \
                or not planar_wins(self.w_shape, self.pads, self.x_shape[1:3], self.out_hw, self.dilation):
            return None  # (the input gradient of a direct conv must be a conv too)
        return accel.kernels()

    def _planar_geometry(self):
        """(top, left, hp, wp): where the planar kernels put an image in their padded scratch."""
        _, hp, wp, _ = self._padded_shape(1)
        return self.pads[0], self.pads[2], hp, wp

    def _planar_offsets(self):
        _, _, hp, wp = self._planar_geometry()
        return planar_offsets(tuple(self.w_shape), hp, wp, tuple(self.dilation))

    def _planar_scratch(self, filters, dtype):
        """Per-call scratch of the planar kernels: the flat padded image (c*hp*wp,) with zero slack
        at its end, and the (O, L) lanes, L rounded up to a multiple of LANE_BLOCK."""
        _, hp, wp, c = self._padded_shape(1)
        lanes, rounded = planar_lanes(wp, self.out_hw)
        return np.empty(c * hp * wp + rounded - lanes, dtype), np.empty((filters, rounded), dtype)

    def _forward_planar(self, kernels, x, w, b, y):
        """y = conv(x, w) + b by the direct kernel, one part of the batch per thread."""
        offs, wt = self._planar_offsets(), planar_weights(w)
        bias = np.zeros(wt.shape[1], dtype=y.dtype)
        if b is not None:
            bias[:len(b)] = b
        x = np.ascontiguousarray(x, dtype=y.dtype)
        geometry = self._planar_geometry()
        parallel.map_parts(lambda s: kernels.conv_planar_forward(
            x[s], *geometry, offs, wt, bias, y[s], *self._planar_scratch(wt.shape[1], y.dtype)), self.parts)

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        kh, kw, _, o = w.shape
        n = x.shape[0]
        oh, ow = self.out_hw
        self.x_shape, self.w_shape, self.itemsize = x.shape, w.shape, x.itemsize
        y = xp.empty((n, oh, ow, o), dtype=xp.result_type(x, w))
        needs = self.needs_input_grad
        needs_w = len(needs) > 1 and needs[1]
        self.planar = self._planar_kernels(xp)
        if self.planar is not None:
            self.parts = parallel.split(n, y.size * kh * kw * x.shape[3])
            self._forward_planar(self.planar, x, w, b, y)
            self.w = w if needs and needs[0] else None
            self.x = x if needs_w else None
            self.kept = None
            return y
        w2 = self._grouped_weight(w)
        # the weight gradient needs the patches again: small ones are kept, larger ones rebuilt
        # block by block from x (usually alive anyway as the previous layer's output)
        keep = needs_w and n * oh * ow * kh * kw * x.shape[3] * x.itemsize <= KEEP_PATCHES_BYTES

        def part(s):  # images s of the batch, block by block: patches, one GEMM, bias
            xpad, ys, kept = pad_nhwc(x[s], self.pads), y[s], []
            for images, rows in self._blocks(len(ys)):
                cols = self._patches(xpad[images], (kh, kw), rows, keep)
                if keep:
                    kept.append(cols)
                yb = ys[images, rows]  # contiguous: reshapes below are views
                if self.groups == 1:
                    # (m, o) = (m, kh*kw*c) @ (kh*kw*c, o), written in place
                    xp.dot(cols, w2, out=yb.reshape(-1, o))
                else:
                    # (g, m, og) = (g, m, kh*kw*cg) @ (g, kh*kw*cg, og) -> (m, g, og)
                    yb[...] = (cols @ w2).transpose(1, 0, 2).reshape(yb.shape)
                if b is not None:
                    yb += b
            return kept

        self.parts = parallel.split(n, y.size * kh * kw * x.shape[3])
        kept = parallel.map_parts(part, self.parts)
        self.w = w if needs and needs[0] else None
        self.x = x if needs_w and not keep else None
        self.kept = kept if keep else None  # per part, per block
        return y

    def _transposed_pads(self):
        """Pads of the stride-1 transposed convolution that maps gy back onto x (None if a pad
        would be negative, i.e. the forward padding exceeds the kernel's reach)."""
        (kh, kw), (dh, dw) = self.w_shape[:2], self.dilation
        top, bottom, left, right = self.pads
        pads = ((kh - 1) * dh - top, (kh - 1) * dh - bottom, (kw - 1) * dw - left, (kw - 1) * dw - right)
        return pads if min(pads) >= 0 else None

    def _padded_shape(self, images):
        _, h, w, c = self.x_shape
        top, bottom, left, right = self.pads
        return (images, h + top + bottom, w + left + right, c)

    def _transposed(self):
        """The stride-1 transposed convolution that maps gy back onto x (see
        :meth:`_backward_data_as_conv`), with nothing to save: a one-off forward."""
        conv = Conv2d((1, 1), self._transposed_pads(), self.dilation, self.groups, self.x_shape[1:3])
        conv.needs_input_grad = (False, False)
        kh, kw, cg, o = self.w_shape
        conv.x_shape = (self.x_shape[0],) + tuple(self.out_hw) + (o,)  # its input is gy
        conv.w_shape = (kh, kw, o // self.groups, self.groups * cg)
        return conv

    def _transposed_is_planar(self, xp):
        return self._transposed()._planar_kernels(xp) is not None

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
        return self._transposed().forward(gy, wt)

    def _scatter_block(self, gxpad, gy2, rows, kernels):
        """Add the input gradient of one block into ``gxpad`` (its images, padded). ``gy2`` is the
        block's output gradient, (m, o).

        With the compiled kernels (groups 1, column dilation 1): the gradient patches in one GEMM,
        (m, kh*kw*c) = (m, o) @ (o, kh*kw*c), added back by a compiled col2im. Otherwise one kernel
        offset at a time: for offset (i, j), (m, c) = (m, o) @ (o, c) is added into the strided
        view that offset read in forward.
        """
        xp = get_array_module(gy2)
        kh, kw, cg, o = self.w_shape
        g, n, ow = self.groups, gxpad.shape[0], self.out_hw[1]
        c = g * cg
        if kernels is not None:
            cols = xp.dot(gy2, self.w.reshape(kh * kw * c, o).T,
                             out=scratch((gy2.shape[0], kh * kw * c), gy2.dtype, xp))
            kernels.col2im_add(cols.reshape(n, -1, ow, kh, kw * c), gxpad, rows.start or 0,
                               self.stride[0], self.stride[1], self.dilation[0])
            return
        for i in range(kh):
            for j in range(kw):
                if g == 1:
                    # (m, c) = (m, o) @ (o, c)
                    d = xp.dot(gy2, self.w[i, j].T, out=scratch((gy2.shape[0], c), gy2.dtype, xp))
                else:
                    # (g, m, cg) = (g, m, og) @ (g, og, cg) -> (m, g, cg)
                    wg = self.w[i, j].reshape(cg, g, o // g).transpose(1, 2, 0)
                    d = (gy2.reshape(-1, g, o // g).transpose(1, 0, 2) @ wg).transpose(1, 0, 2)
                view = offset_view(gxpad, i, j, self.stride, self.out_hw, self.dilation)[:, rows]
                view += d.reshape(n, -1, ow, c)

    def _weight_grad_planar(self, x, gy):
        """The weight gradient share of images x (gy theirs) by the direct kernel, as (kh*kw*c, o)."""
        kh, kw, c, o = self.w_shape
        gw_t = np.zeros(planar_counts(self.w_shape), dtype=gy.dtype)  # (T, O) of planar_weights
        self.planar.conv_planar_wgrad(np.ascontiguousarray(x, dtype=gy.dtype), *self._planar_geometry(),
                                      self._planar_offsets(), np.ascontiguousarray(gy), gw_t,
                                      *self._planar_scratch(gw_t.shape[1], gy.dtype))
        return planar_weight_grad(gw_t, self.w_shape).reshape(kh * kw * c, o)

    def backward(self, gy):
        xp = get_array_module(gy)
        kh, kw, cg, o = self.w_shape
        g = self.groups
        needs = self.needs_input_grad
        # Input gradient: for stride 1, when it reads no more than forward did (o <= c, or grouped)
        # or runs planar, the transposed convolution; else a scatter per kernel offset (timed layer
        # by layer). The weight gradient comes from the planar kernel when forward ran planar.
        as_conv = self.stride == (1, 1) and self._transposed_pads() is not None and (
            o <= g * cg or g > 1 or self._transposed_is_planar(xp))
        scatter = needs[0] and not as_conv
        planar_w = needs[1] and self.planar is not None  # else from patches, through GEMMs
        gemm_w = needs[1] and not planar_w
        gx = xp.empty(self.x_shape, dtype=gy.dtype) if needs[0] else None
        kernels = accel.kernels() if scatter and xp is np and g == 1 and self.dilation[1] == 1 else None
        w2_shape = (kh * kw * cg, o) if g == 1 else (g, kh * kw * cg, o // g)  # of _grouped_weight

        def part(k_s):  # images s of the batch (part k): their gx, their share of gw
            k, s = k_s
            gys = gy[s]
            if needs[0] and as_conv:
                gx[s] = self._backward_data_as_conv(gys)
            gw = self._weight_grad_planar(self.x[s], gys) if planar_w else None
            if not (scatter or gemm_w):
                return gw
            gxpad = xp.zeros(self._padded_shape(len(gys)), dtype=gy.dtype) if scatter else None
            xpad = pad_nhwc(self.x[s], self.pads) if gemm_w and self.kept is None else None
            gw = xp.zeros(w2_shape, dtype=gy.dtype) if gemm_w else gw
            for block, (images, rows) in enumerate(self._blocks(len(gys))):
                gy2 = gys[images, rows].reshape(-1, o)  # (m, o)
                if scatter:
                    self._scatter_block(gxpad[images], gy2, rows, kernels)
                if gemm_w:
                    cols = self._patches(xpad[images], (kh, kw), rows) if xpad is not None else \
                        self.kept[k][block]
                    if g == 1:
                        gw += xp.dot(cols.T, gy2)  # (kh*kw*c, o) += (kh*kw*c, m) @ (m, o)
                    else:  # (g, kh*kw*cg, og) += (g, kh*kw*cg, m) @ (g, m, og)
                        gw += cols.transpose(0, 2, 1) @ gy2.reshape(-1, g, o // g).transpose(1, 0, 2)
            if scatter:
                gx[s] = unpad_nhwc(gxpad, self.pads)
            return gw

        gw_parts = parallel.map_parts(part, list(enumerate(self.parts)))
        gw = gb = None
        if needs[1]:
            gw = gw_parts[0]
            for more in gw_parts[1:]:
                gw += more
            if g == 1:
                gw = gw.reshape(self.w_shape)
            else:  # (g, kh, kw, cg, og) -> (kh, kw, cg, g, og)
                gw = gw.reshape(g, kh, kw, cg, o // g).transpose(1, 2, 3, 0, 4).reshape(self.w_shape)
        if len(needs) > 2 and needs[2]:
            gb = channel_sum(gy.reshape(-1, o))
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)
