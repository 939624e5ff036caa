"""The fast strategy of :class:`striate.ops.conv.Conv2dOp`: the same im2col + GEMM arithmetic, cut
into parts (one per thread) and cache-sized blocks, or the planar loops for few channels.

Two cuts of the work, neither of which changes the arithmetic of an output row: the batch is split
into parts run on several threads (:mod:`striate.backend.threads`), and each part is worked through
in blocks of output rows (:func:`blocks`), so that a patch matrix is read by its GEMM while still in
the CPU cache instead of going out to memory and back. Patches are built in :mod:`scratch` buffers;
small ones are kept from forward to backward for the weight gradient, larger ones rebuilt. The input
gradient of a stride-1 conv is the transposed convolution run through this same path (planar where
:func:`striate.backend.planar.planar_wins`); otherwise gradient patches are scattered back, by the
compiled col2im when available. Measurements: ``benchmarks/notes.md``.

2-D products go through ``xp.dot``, not ``@``: NumPy's matmul keeps the GIL through some BLAS calls,
which stalls the other threads; dot releases it. Products with few columns (o <= THIN_COLUMNS: a
conv with 16 filters or fewer, and its weight gradient) are the exception, made as one stacked
matmul of ROW_PIECE-row pieces (:func:`thin_dot`, :func:`thin_dot_tn`), which releases the GIL too.
"""
from __future__ import annotations

import numpy as np

from . import compiled, fast_paths_enabled, threads
from .epilogue import Epilogue
from .planar import PlanarConv, planar_wins
from .reductions import channel_sum
from .scratch import fresh, scratch
from .windows import im2col, offset_view, pad_nhwc, sliding_windows, unpad_nhwc
from .winograd import WinogradConv, winograd_wins

# Patch matrices are built and consumed one block at a time, each small enough to stay in the CPU
# cache between the copy that writes it and the GEMM that reads it.
BLOCK_BYTES = 4 * 2**20
# Patch matrices up to this size in all are kept from forward to backward instead of being rebuilt
# for the weight gradient.
KEEP_PATCHES_BYTES = 16 * 2**20
# Below this many output pixels (batch-1 inference) one strided copy beats kh*kw small row copies.
PATCHES_MAJOR_MIN_ROWS = 4096

WHOLE_BLOCK = ((slice(None), slice(None)),)  # every image, every row
# Products with at most this many columns run as a stack of ROW_PIECE-row GEMMs: OpenBLAS computes
# such thin products faster in short pieces than in one tall GEMM.
THIN_COLUMNS = 16
ROW_PIECE = 128


def _thin(a, n) -> int:
    """Rows of a (m, k) that :func:`thin_dot` takes in pieces (0: one plain GEMM)."""
    return a.shape[0] - a.shape[0] % ROW_PIECE if n <= THIN_COLUMNS and a.flags.c_contiguous else 0


def thin_dot(a, b, out):
    """out = a @ b, (m, n) = (m, k) @ (k, n), out contiguous; in pieces when n is small."""
    whole, (k, n) = _thin(a, b.shape[1]), b.shape
    if whole:  # (m/R, R, n) = (m/R, R, k) @ (k, n)
        np.matmul(a[:whole].reshape(-1, ROW_PIECE, k), b, out=out[:whole].reshape(-1, ROW_PIECE, n))
    if whole < len(a):
        np.dot(a[whole:], b, out=out[whole:])
    return out


def thin_dot_tn(a, b):
    """a^T @ b, (k, n) = (k, m) @ (m, n) for a (m, k); in pieces (summed) when n is small."""
    whole, (k, n) = _thin(a, b.shape[1]), (a.shape[1], b.shape[1])
    if not whole or not b.flags.c_contiguous:
        return np.dot(a.T, b)
    # (m/R, k, n) = (m/R, k, R) @ (m/R, R, n), summed over the pieces
    out = np.matmul(a[:whole].reshape(-1, ROW_PIECE, k).transpose(0, 2, 1), b[:whole].reshape(-1, ROW_PIECE, n)).sum(0)
    if whole < len(a):
        out += np.dot(a[whole:].T, b[whole:])
    return out


def conv_strategy(op, x, w):
    """A :class:`FastConv` for one call of ``op`` (a Conv2dOp) on NumPy arrays, or None (other
    array modules, or :func:`striate.backend.reference_only`)."""
    if type(x) is not np.ndarray or not fast_paths_enabled() or x.dtype not in compiled.DTYPES:
        return None  # (float16 and the like: NumPy's reference; the compiled loops take float32/64)
    return FastConv(op.stride, op.pads, op.dilation, op.groups, op.out_hw, x.shape, w.shape, op.needs_input_grad)


def conv_transpose_strategy(op, x, w):
    """A :class:`FastConvTranspose` for one call of ``op`` (a ConvTranspose2dOp), or None, as
    :func:`conv_strategy` decides."""
    if type(x) is not np.ndarray or not fast_paths_enabled() or x.dtype not in compiled.DTYPES:
        return None
    return FastConvTranspose(op, x.shape, w.shape)


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


class FastConv:
    """One call of a conv on the fast path: its geometry, and what its backward needs.

    Args:
        stride, pads, dilation, groups, out_hw: the op's geometry (pads: top, bottom, left, right).
        x_shape, w_shape: NHWC input and HWIO weight shapes; ``needs``: the op's needs_input_grad.
    """

    def __init__(self, stride, pads, dilation, groups, out_hw, x_shape, w_shape, needs):
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups
        self.out_hw, self.x_shape, self.w_shape, self.needs = out_hw, x_shape, w_shape, needs
        self.winograd = WinogradConv(pads, out_hw, x_shape, w_shape) \
            if winograd_wins(w_shape, stride, dilation, groups, x_shape[0], out_hw) else None
        self.planar = None if self.winograd is not None else self._planar(np)

    # ----------------------------------------------------------------- geometry
    def _planar(self, xp):
        """A :class:`PlanarConv` when this conv runs planar (:func:`planar_wins`), else None."""
        if xp is not np or self.groups != 1 or self.stride != (1, 1) or self.transposed_pads() is None \
                or not planar_wins(self.w_shape, self.pads, self.x_shape[1:3], self.out_hw, self.dilation):
            return None  # (the input gradient of a direct conv must be a conv too)
        loops = compiled.load()
        return None if loops is None else (loops, PlanarConv(self.x_shape, self.w_shape, self.pads,
                                                             self.dilation, self.out_hw))

    def _blocks(self, images, itemsize):
        kh, kw, cg, _ = self.w_shape
        oh, ow = self.out_hw
        return blocks(images, oh, oh * ow * kh * kw * cg * self.groups * itemsize)

    def padded_shape(self, images):
        _, h, w, c = self.x_shape
        top, bottom, left, right = self.pads
        return (images, h + top + bottom, w + left + right, c)

    def transposed_pads(self):
        """Pads of the stride-1 transposed convolution that maps gy back onto x (None if a pad
        would be negative, i.e. the forward padding exceeds the kernel's reach). Rows and columns
        of x below and right of the last window (a transposed conv's output_padding makes them)
        widen the bottom and right pads: their gradient is zero."""
        (kh, kw), (dh, dw), (oh, ow) = self.w_shape[:2], self.dilation, self.out_hw
        top, bottom, left, right = self.pads
        _, h, w, _ = self.x_shape
        below = h + top + bottom - (oh - 1) * self.stride[0] - (kh - 1) * dh - 1
        beyond = w + left + right - (ow - 1) * self.stride[1] - (kw - 1) * dw - 1
        pads = ((kh - 1) * dh - top, (kh - 1) * dh - bottom + below,
                (kw - 1) * dw - left, (kw - 1) * dw - right + beyond)
        return pads if min(pads) >= 0 else None

    def transposed(self):
        """The stride-1 transposed convolution that maps gy back onto x, with nothing to save."""
        kh, kw, cg, o = self.w_shape
        gy_shape = (self.x_shape[0],) + tuple(self.out_hw) + (o,)  # its input is gy
        w_shape = (kh, kw, o // self.groups, self.groups * cg)
        return FastConv((1, 1), self.transposed_pads(), self.dilation, self.groups, self.x_shape[1:3],
                        gy_shape, w_shape, (False, False))

    # ----------------------------------------------------------------- patches
    def patches(self, xpad, rows, keep=False):
        """Patch matrix of output rows ``rows`` of every image of the padded ``xpad``:
        ``(m, kh*kw*c)``, m = images * rows * ow, or ``(g, m, kh*kw*cg)`` when grouped. In a
        :func:`scratch` buffer, valid until the next call on this thread, unless ``keep``.

        With one input channel (a grayscale first layer) NHWC patches would be copied one float
        at a time; there they are built patches-major, ``(kh*kw, m)``, from kh*kw row copies, and
        returned transposed (BLAS takes the transposed operand for free).
        """
        xp = np
        n, c = xpad.shape[0], xpad.shape[3]
        kh, kw = self.w_shape[:2]
        (oh, ow), g = self.out_hw, self.groups
        r = oh if rows == slice(None) else len(range(oh)[rows])
        alloc = fresh if keep else scratch
        if g == 1 and c == 1 and n * r * ow >= PATCHES_MAJOR_MIN_ROWS:
            out = alloc((kh, kw, n, r, ow, 1), xpad.dtype, xp)
            for i in range(kh):
                for j in range(kw):
                    out[i, j] = offset_view(xpad, i, j, self.stride, self.out_hw, self.dilation)[:, rows]
            return out.reshape(kh * kw, n * r * ow).T
        if g == 1 and (kh, kw) == (1, 1) and self.stride == (1, 1) and xpad.shape[1:3] == tuple(self.out_hw):
            pixels = xpad[:, rows]
            if pixels.flags.c_contiguous:  # a 1x1 conv's patches are its input's pixels: no copy
                return pixels.reshape(-1, c)
        if g == 1:
            return im2col(xpad, (kh, kw), self.stride, self.dilation, self.out_hw, rows, alloc)
        win = sliding_windows(xpad, (kh, kw), self.stride, self.dilation, self.out_hw)[:, rows]
        # (n, r, ow, kh, kw, g, cg) -> (g, n, r, ow, kh, kw, cg) -> (g, m, kh*kw*cg): a batched GEMM
        win = win.reshape(n, r, ow, kh, kw, g, c // g).transpose(5, 0, 1, 2, 3, 4, 6)
        out = alloc(win.shape, xpad.dtype, xp)
        xp.copyto(out, win)
        return out.reshape(g, n * r * ow, kh * kw * (c // g))

    def grouped_weight(self, w):
        kh, kw, cg, o = w.shape
        g = self.groups
        if g == 1:
            return w.reshape(kh * kw * cg, o)
        # (kh, kw, cg, g, og) -> (g, kh*kw*cg, og)
        return w.reshape(kh, kw, cg, g, o // g).transpose(3, 0, 1, 2, 4).reshape(g, kh * kw * cg, o // g)

    # ----------------------------------------------------------------- forward
    def forward(self, x, w, b=None, epilogue=None):
        """y = conv(x, w) + b (or ``epilogue`` after the sum: :class:`striate.ops.epilogue.Epilogue`),
        NHWC ``(n, oh, ow, o)``; saves on ``self`` what backward needs."""
        epilogue = Epilogue(None, b) if epilogue is None else epilogue
        if epilogue.scale is not None:  # conv(x, w) * s == conv(x, w * s): one pass fewer over y
            w = (w * epilogue.scale).astype(w.dtype, copy=False)
            epilogue = Epilogue(None, epilogue.shift, epilogue.relu)
        kh, kw, _, o = w.shape
        n = x.shape[0]
        y = np.empty((n,) + tuple(self.out_hw) + (o,), dtype=np.result_type(x, w))
        needs_w = len(self.needs) > 1 and self.needs[1]
        self.parts = threads.split(n, y.size * kh * kw * x.shape[3])
        self.w = w if self.needs and self.needs[0] else None
        if self.winograd is not None:
            self.x, self.kept = (x if needs_w else None), None
            return self.winograd.forward(x, w, epilogue, y, self.parts)
        if self.planar is not None:
            loops, planar = self.planar
            planar.forward(loops, x, w, epilogue.shift, y, self.parts, relu=epilogue.relu)  # (scale folded in above)
            self.x, self.kept = (x if needs_w else None), None
            return y
        # the weight gradient needs the patches again: small ones are kept, larger ones rebuilt
        # block by block from x (usually alive anyway as the previous layer's output)
        keep = needs_w and n * y.shape[1] * y.shape[2] * kh * kw * x.shape[3] * x.itemsize <= KEEP_PATCHES_BYTES
        w2 = self.grouped_weight(w)
        kept = threads.map_parts(lambda s: self._forward_part(x[s], w2, epilogue, y[s], keep), self.parts)
        self.x = x if needs_w and not keep else None
        self.kept = kept if keep else None  # per part, per block
        return y

    def _forward_part(self, x, w2, epilogue, y, keep):
        """Images x of the batch into y, block by block: patches, one GEMM, the epilogue (bias).
        Returns the patches of each block when ``keep``."""
        xpad, kept, o = pad_nhwc(x, self.pads), [], y.shape[3]
        for images, rows in self._blocks(len(y), x.itemsize):
            cols = self.patches(xpad[images], rows, keep)
            if keep:
                kept.append(cols)
            yb = y[images, rows]  # contiguous: reshapes below are views
            if self.groups == 1:
                thin_dot(cols, w2, yb.reshape(-1, o))  # (m, o) = (m, kh*kw*c) @ (kh*kw*c, o)
            else:  # (g, m, og) = (g, m, kh*kw*cg) @ (g, kh*kw*cg, og) -> (m, g, og)
                yb[...] = (cols @ w2).transpose(1, 0, 2).reshape(yb.shape)
            epilogue.apply(yb)
        return kept

    # ----------------------------------------------------------------- backward
    def backward(self, gy):
        """(gx, gw[, gb]) of the forward call; None where not needed."""
        kh, kw, cg, o = self.w_shape
        g, needs = self.groups, self.needs
        if self.winograd is not None:  # gx: the transposed conv, Winograd too; gw: its own transform
            gx = self.backward_data_as_conv(gy) if needs[0] else None
            gw = self.winograd.weight_grad(self.x, gy, self.parts) if needs[1] else None
            gb = channel_sum(gy.reshape(-1, o)) if len(needs) > 2 and needs[2] else None
            return (gx, gw, gb) if len(needs) > 2 else (gx, gw)
        # Input gradient: for stride 1, when it reads no more than forward did (o <= c, or grouped)
        # or runs planar, the transposed convolution; else a scatter per kernel offset. The weight
        # gradient comes from the planar loops when forward ran planar, else from patches by GEMMs.
        as_conv = self.stride == (1, 1) and self.transposed_pads() is not None and (
            o <= g * cg or g > 1 or self.transposed().planar is not None)
        plan = {"as_conv": needs[0] and as_conv, "scatter": needs[0] and not as_conv,
                "planar_w": needs[1] and self.planar is not None,
                "gemm_w": needs[1] and self.planar is None}
        plan["col2im"] = compiled.load() if plan["scatter"] and g == 1 and self.dilation[1] == 1 else None
        gx = np.empty(self.x_shape, dtype=gy.dtype) if needs[0] else None
        gw_parts = threads.map_parts(lambda k_s: self._backward_part(k_s[0], k_s[1], gy, gx, plan),
                                     list(enumerate(self.parts)))
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

    def _backward_part(self, k, s, gy, gx, plan):
        """Images s of the batch (part k): their gx, and their share of gw (or None)."""
        kh, kw, cg, o = self.w_shape
        gys = gy[s]
        if plan["as_conv"]:
            gx[s] = self.backward_data_as_conv(gys)
        gw = self.planar[1].weight_grad(self.planar[0], self.x[s], gys) if plan["planar_w"] else None
        if not (plan["scatter"] or plan["gemm_w"]):
            return gw
        g = self.groups
        gxpad = np.zeros(self.padded_shape(len(gys)), dtype=gy.dtype) if plan["scatter"] else None
        xpad = pad_nhwc(self.x[s], self.pads) if plan["gemm_w"] and self.kept is None else None
        if plan["gemm_w"]:
            gw = np.zeros((kh * kw * cg, o) if g == 1 else (g, kh * kw * cg, o // g), dtype=gy.dtype)
        for block, (images, rows) in enumerate(self._blocks(len(gys), gy.itemsize)):
            gy2 = gys[images, rows].reshape(-1, o)  # (m, o)
            if plan["scatter"]:
                self.scatter_block(gxpad[images], gy2, rows, plan["col2im"])
            if plan["gemm_w"]:
                cols = self.patches(xpad[images], rows) if xpad is not None else self.kept[k][block]
                if g == 1:
                    gw += thin_dot_tn(cols, gy2)  # (kh*kw*c, o) += (kh*kw*c, m) @ (m, o)
                else:  # (g, kh*kw*cg, og) += (g, kh*kw*cg, m) @ (g, m, og)
                    gw += cols.transpose(0, 2, 1) @ gy2.reshape(-1, g, o // g).transpose(1, 0, 2)
        if plan["scatter"]:
            gx[s] = unpad_nhwc(gxpad, self.pads)
        return gw

    def backward_data_as_conv(self, gy):
        """Input gradient of a stride-1 convolution, computed as a convolution of gy with the
        flipped, in/out-swapped kernel (the transposed convolution), through the same path.

        gx[a] = sum_i gy[a + top - i*d] w[i]  ==  sum_i' gy_pad[a + i'*d] w[kh-1-i'],
        with gy padded by (kh-1)*d - top above (likewise the other sides).
        """
        kh, kw, cg, o = self.w_shape
        g = self.groups
        # (kh, kw, cg, g, og) flipped -> (kh, kw, og, g*cg): output channel g*cg+ci reads group g
        wt = self.w[::-1, ::-1].reshape(kh, kw, cg, g, o // g).transpose(0, 1, 4, 3, 2).reshape(kh, kw, o // g, g * cg)
        return self.transposed().forward(gy, wt)

    def scatter_block(self, gxpad, gy2, rows, loops):
        """Add the input gradient of one block into ``gxpad`` (its images, padded). ``gy2`` is the
        block's output gradient, (m, o).

        With the compiled col2im (groups 1, column dilation 1): the gradient patches in one GEMM,
        (m, kh*kw*c) = (m, o) @ (o, kh*kw*c), added back by the compiled loop. Otherwise one
        kernel offset at a time: for offset (i, j), (m, c) = (m, o) @ (o, c) is added into the
        strided view that offset read in forward.
        """
        kh, kw, cg, o = self.w_shape
        g, n, ow = self.groups, gxpad.shape[0], self.out_hw[1]
        c = g * cg
        if loops is not None:
            cols = np.dot(gy2, self.w.reshape(kh * kw * c, o).T, out=scratch((gy2.shape[0], kh * kw * c), gy2.dtype, np))
            loops.col2im_add(cols.reshape(n, -1, ow, kh, kw * c), gxpad, rows.start or 0,
                             self.stride[0], self.stride[1], self.dilation[0])
            return
        for i in range(kh):
            for j in range(kw):
                if g == 1:  # (m, c) = (m, o) @ (o, c)
                    d = np.dot(gy2, self.w[i, j].T, out=scratch((gy2.shape[0], c), gy2.dtype, np))
                else:  # (g, m, cg) = (g, m, og) @ (g, og, cg) -> (m, g, cg)
                    wg = self.w[i, j].reshape(cg, g, o // g).transpose(1, 2, 0)
                    d = (gy2.reshape(-1, g, o // g).transpose(1, 0, 2) @ wg).transpose(1, 0, 2)
                view = offset_view(gxpad, i, j, self.stride, self.out_hw, self.dilation)[:, rows]
                view += d.reshape(n, -1, ow, c)


class FastConvTranspose:
    """One call of a transposed conv on the fast path.

    A transposed conv is the adjoint of the conv with the same weight and geometry, whose input has
    y's shape ``(n, H, W, c_out)`` and whose output has x's ``(n, h, w, c_in)``. So it runs on that
    conv's :class:`FastConv` (threads, blocks, the compiled col2im): its forward is the conv's input
    gradient of x, its backward the conv's forward of gy (gx) and the conv's weight gradient with x
    in the place of the conv's output gradient (gw).
    """

    def __init__(self, op, x_shape, w_shape):
        n, h, w, _ = x_shape
        self.y_shape = (n,) + tuple(op.out_hw) + (w_shape[2] * op.groups,)
        self.geometry = (op.stride, op.pads, op.dilation, op.groups, (h, w))
        self.w_shape, self.needs = w_shape, op.needs_input_grad

    def _conv(self, needs):
        return FastConv(*self.geometry, self.y_shape, self.w_shape, needs)

    def forward(self, x, w, b=None):
        """y ``(n, H, W, c_out)`` = the conv's input gradient of x, + b."""
        kh, kw, cg, _ = w.shape
        conv = self._conv((True, False))  # set up as its forward would have left it
        conv.w, conv.x, conv.kept = w, None, None
        conv.parts = threads.split(len(x), x.size * kh * kw * cg * conv.groups)
        y = conv.backward(x)[0]
        if b is not None:
            y += b
        self.w, self.x = w, (x if self.needs[1] else None)  # the weight gradient reads x
        return y

    def backward(self, gy):
        """(gx, gw[, gb]): gx = conv(gy, w); gw = the conv's weight gradient for input gy, output gradient x."""
        needs = self.needs
        conv = self._conv((False, needs[1]))
        gx = conv.forward(gy, self.w) if needs[0] or needs[1] else None  # forward keeps gy's patches for gw
        gw = conv.backward(self.x)[1] if needs[1] else None
        gx = gx if needs[0] else None
        if len(needs) > 2:
            return gx, gw, (channel_sum(gy.reshape(-1, gy.shape[3])) if needs[2] else None)
        return gx, gw
