"""The compiled (numba) loops for the few ops NumPy does badly, each at module level.

Importing this module imports numba and fails without it: :func:`striate.backend.compiled.load`
imports it on first need. NumPy walks NHWC arrays with few channels in runs of c floats, and makes a
temporary array per operation of a formula; a compiled loop does the work in one pass:

* max pooling: the window max with its first-maximum index, and the gradient scatter;
* batch normalisation: the per-channel sums, the normalisation, and the two passes of backward;
* col2im, the scatter-add of gradient patches back onto a conv's input;
* the max of each short row, for softmax along a few classes;
* direct ("planar") convolution of few-channel images and its weight gradient (see
  :mod:`striate.backend.planar`).

Each loop is single-threaded and releases the GIL (``nogil``): striate's own threads run one part
of the batch each (:mod:`striate.backend.threads`). numba's ``parallel=True`` would start a second
thread pool fighting the first for the same cores. ``cache=True`` keeps the machine code on disk
next to this file; where that folder is read-only numba warns once and compiles in memory.
Measurements: ``benchmarks/notes.md``.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np


def _compile(fastmath):
    """numba.njit with the settings every loop here uses."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            return numba.njit(cache=True, nogil=True, fastmath=set(fastmath))(fn)
    return decorate


# "contract" lets LLVM fuse a*b + c into one FMA instruction (rounded once instead of twice); no
# other IEEE rule is relaxed.
jit = _compile({"contract"})
# Sums whose order may be changed, so that LLVM can split them over vector lanes.
jitr = _compile({"contract", "reassoc"})


@jit
def maxpool2d_forward(x, kh, kw, sh, sw, y, idx):
    """y[b, p, q, c] = max over the (kh, kw) window at (p*sh, q*sw) of padded x;
    idx = row-major offset i*kw + j of the first maximum. Returns whether a window held NaN:
    the comparisons do not propagate it (a NaN branch in the inner loop would slow it down
    several times), so the caller then pools with NumPy instead."""
    n, oh, ow, c = y.shape
    nan = False
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                for ch in range(c):
                    best = x[b, p * sh, q * sw, ch]
                    k_best = 0
                    for i in range(kh):
                        for j in range(kw):
                            v = x[b, p * sh + i, q * sw + j, ch]
                            nan = nan | (v != v)
                            if v > best:
                                best = v
                                k_best = i * kw + j
                    y[b, p, q, ch] = best
                    idx[b, p, q, ch] = k_best
    return nan

@jit
def maxpool2d_backward(gy, idx, kw, sh, sw, gx):
    """gx = 0, then gx[window's winner] += gy for every window (windows may overlap). Zeroing
    an image just before its scatter keeps it in the cache, and in the calling thread."""
    n, oh, ow, c = gy.shape
    for b in range(n):
        gx[b] = 0
        for p in range(oh):
            for q in range(ow):
                for ch in range(c):
                    k = idx[b, p, q, ch]
                    i = k // kw
                    gx[b, p * sh + i, q * sw + (k - i * kw), ch] += gy[b, p, q, ch]

@jit
def maxpool2x2_forward(x, y, idx):
    """maxpool2d_forward for the common 2x2 window with stride 2, its four taps written out (the
    general loop's window loops cost it 3x here)."""
    n, oh, ow, c = y.shape
    nan = False
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                for ch in range(c):
                    v0, v1 = x[b, 2 * p, 2 * q, ch], x[b, 2 * p, 2 * q + 1, ch]
                    v2, v3 = x[b, 2 * p + 1, 2 * q, ch], x[b, 2 * p + 1, 2 * q + 1, ch]
                    nan = nan | (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                    best, k = v0, 0
                    if v1 > best:
                        best, k = v1, 1
                    if v2 > best:
                        best, k = v2, 2
                    if v3 > best:
                        best, k = v3, 3
                    y[b, p, q, ch] = best
                    idx[b, p, q, ch] = k
    return nan


@jit
def maxpool2x2_backward(gy, idx, gx):
    """maxpool2d_backward for 2x2 windows with stride 2: the windows tile gx without overlap, so
    each of a window's four cells is written once (gy at the winner, 0 elsewhere); rows and
    columns past the last window are zeroed."""
    n, oh, ow, c = gy.shape
    h, w = gx.shape[1], gx.shape[2]
    zero = gx.dtype.type(0)
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                for ch in range(c):
                    g, k = gy[b, p, q, ch], idx[b, p, q, ch]
                    gx[b, 2 * p, 2 * q, ch] = g if k == 0 else zero
                    gx[b, 2 * p, 2 * q + 1, ch] = g if k == 1 else zero
                    gx[b, 2 * p + 1, 2 * q, ch] = g if k == 2 else zero
                    gx[b, 2 * p + 1, 2 * q + 1, ch] = g if k == 3 else zero
        for r in range(2 * oh, h):
            gx[b, r] = 0
        for r in range(2 * oh):
            for col in range(2 * ow, w):
                gx[b, r, col] = 0


@jit
def add_relu_flat(a, b, y):
    """y = max(a + b, 0) over flat arrays, one pass (NumPy: the sum, then the max, two)."""
    for i in range(y.shape[0]):
        y[i] = max(a[i] + b[i], 0)


@jit
def relu_grad_flat(gy, y, gx):
    """gx = gy where y > 0, else 0, over flat arrays (NumPy: a mask array, then a product)."""
    zero = gx.dtype.type(0)
    for i in range(gx.shape[0]):
        gx[i] = gy[i] if y[i] > 0 else zero


# Batch normalisation: each pass reads x (and gy) once, where NumPy makes a temporary per
# operation. x, y, gy, gx: (m, c) rows; the rest (c,). Sums are float64; the moments' are made of
# partial sums over blocks of SUM_BLOCK rows in x's dtype (float32 adds run twice as wide; 64 terms
# lose no more than ~64 ulp of float32 before they join the float64 total).
SUM_BLOCK = 64


@jit
def channel_moments(x, shift, total, squares):
    """total[j] = sum_i d, squares[j] = sum_i d*d, with d = x[i, j] - shift[j]."""
    m, c = x.shape
    part_d, part_dd = np.zeros(c, x.dtype), np.zeros(c, x.dtype)
    sh = shift.astype(x.dtype)
    for j in range(c):
        total[j] = 0.0
        squares[j] = 0.0
    for i0 in range(0, m, SUM_BLOCK):
        part_d[:] = 0
        part_dd[:] = 0
        for i in range(i0, min(m, i0 + SUM_BLOCK)):
            for j in range(c):
                d = x[i, j] - sh[j]
                part_d[j] += d
                part_dd[j] += d * d
        for j in range(c):
            total[j] += part_d[j]
            squares[j] += part_dd[j]

@jit
def channel_affine(x, mean, scale, beta, relu, y):
    """y = (x - mean) * scale + beta, then max(y, 0) when ``relu`` (a ReLU fused after)."""
    m, c = x.shape
    for i in range(m):
        for j in range(c):
            y[i, j] = (x[i, j] - mean[j]) * scale[j] + beta[j]
        if relu:
            for j in range(c):
                y[i, j] = max(y[i, j], 0)

@jit
def bn_grad_sums(gy, x, mean, relu_out, sg, sgx):
    """sg[j] = sum_i g, sgx[j] = sum_i g * (x[i, j] - mean[j]) with g = gy[i, j], or 0 where a
    fused ReLU cut the output (``relu_out`` (m, c) <= 0; an empty relu_out: no ReLU)."""
    m, c = x.shape
    masked = relu_out.shape[0] == m
    for j in range(c):
        sg[j] = 0.0
        sgx[j] = 0.0
    for i in range(m):
        for j in range(c):
            g = gy[i, j]
            if masked and not relu_out[i, j] > 0:
                g = 0
            sg[j] += g
            sgx[j] += g * (x[i, j] - mean[j])

@jit
def bn_grad_apply(gy, x, mean, a, k, e, relu_out, gx):
    """gx = a * g + k * (x - mean) + e, g as in bn_grad_sums."""
    m, c = x.shape
    masked = relu_out.shape[0] == m
    for i in range(m):
        for j in range(c):
            g = gy[i, j]
            if masked and not relu_out[i, j] > 0:
                g = 0
            gx[i, j] = a[j] * g + k[j] * (x[i, j] - mean[j]) + e[j]

@jit
def col2im_add(cols, gx, p0, sh, sw, dh):
    """Adjoint of im2col for column dilation 1: gx[b, (p0+p)*sh + i*dh, q*sw + j, ch] +=
    cols[b, p, q, i, j*c + ch]. cols (n, r, ow, kh, kw*c): gradient patches of output rows
    p0.. p0+r; gx (n, hp, wp, c), padded. A kernel row's kw*c values land on one contiguous
    run of gx, so the inner loop is a plain vector add (NumPy walks runs of c floats). The run is
    taken as a slice: indexing ``row[base + t]`` would add a negative-index check per element and
    stop LLVM from vectorising the add (see the planar loops below)."""
    n, r, ow, kh, kwc = cols.shape
    c = gx.shape[3]
    g = gx.reshape(n, gx.shape[1], gx.shape[2] * c)
    for b in range(n):
        for p in range(r):
            for i in range(kh):
                row = g[b, (p0 + p) * sh + i * dh]
                for q in range(ow):
                    run = row[q * sw * c:q * sw * c + kwc]
                    src = cols[b, p, q, i]
                    for t in range(kwc):
                        run[t] += src[t]

# Direct convolution of few-channel images, stride 1 ("planar"). Each image is copied into a
# zero-padded channel-major scratch xs (c, hp, wp), flattened. Output pixel (p, q) is lane
# l = p*wp + q of a flat accumulator row, and kernel tap (ch, i, j) reads the input at
# l + offs[t], offs[t] = ch*hp*wp + i*dh*wp + j*dw: so each tap is one long vector FMA over all
# L = (oh-1)*wp + ow lanes (the lanes q >= ow of a row are computed and dropped). Taps go four
# at a time and filters two at a time, so that a lane's four inputs, read once, feed eight
# FMAs and the accumulators are stored once per four taps: im2col + GEMM on LeNet-5's 1- and
# 6-channel layers is bound by moving patch matrices instead. The tap count T is padded to a
# multiple of 4 (zero weights at offset 0) and the filter count O to a multiple of 2.
#
# The taps are read through slices, xs[o:o + L]: indexing xs[l + o] with a run-time offset makes
# numba add a negative-index check per element, which stops LLVM from vectorising the loop
# (``benchmarks/notes.md``). The caller rounds L up to a multiple of LANE_BLOCK (acc's width) and
# gives xs as many floats of zero slack at its end: LLVM's vector loop takes 32 lanes a step,
# and a scalar tail of up to 31 lanes cost as much as the rest of a short row (LeNet's conv2:
# 136 lanes).
@jit
def _load_planar(x, b, top, left, xs):
    """xs[ch, top + r, left + col] = x[b, r, col, ch]; the border of xs is left as it is."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    for ch in range(c):
        for r in range(h):
            src = x[b, r, :, ch]
            dst = xs[ch, top + r, left:left + w]
            for col in range(w):
                dst[col] = src[col]

@jit
def conv_planar_forward(x, top, left, hp, wp, offs, wt, bias, floor, y, xf, acc):
    """y[b] = max(conv(x[b]) + bias, floor) for every image b, stride 1 (floor 0: a ReLU after
    it, -inf: none; NaN stays NaN). x (n, h, w, c); offs (T,); wt (T, O) tap-major weights;
    bias (O,); y (n, oh, ow, o) with o <= O. Scratch: xf, the flat (c, hp, wp) padded image and
    its slack; acc, (O, L) lanes."""
    n, c = x.shape[0], x.shape[3]
    oh, ow, o = y.shape[1], y.shape[2], y.shape[3]
    taps, filters = wt.shape
    lanes = acc.shape[1]
    xf[:] = 0
    xs = xf[:c * hp * wp].reshape(c, hp, wp)
    for b in range(n):
        _load_planar(x, b, top, left, xs)
        for f in range(filters):
            acc[f] = bias[f]
        for t in range(0, taps, 4):
            v0 = xf[offs[t]:offs[t] + lanes]
            v1 = xf[offs[t + 1]:offs[t + 1] + lanes]
            v2 = xf[offs[t + 2]:offs[t + 2] + lanes]
            v3 = xf[offs[t + 3]:offs[t + 3] + lanes]
            for f in range(0, filters, 2):
                w00, w10, w20, w30 = wt[t, f], wt[t + 1, f], wt[t + 2, f], wt[t + 3, f]
                w01, w11, w21, w31 = wt[t, f + 1], wt[t + 1, f + 1], wt[t + 2, f + 1], wt[t + 3, f + 1]
                a0 = acc[f]
                a1 = acc[f + 1]
                for l in range(lanes):
                    x0, x1, x2, x3 = v0[l], v1[l], v2[l], v3[l]
                    a0[l] += w00 * x0 + w10 * x1 + w20 * x2 + w30 * x3
                    a1[l] += w01 * x0 + w11 * x1 + w21 * x2 + w31 * x3
        for p in range(oh):  # lanes -> NHWC
            row = y[b, p]
            for f in range(o):
                src = acc[f, p * wp:p * wp + ow]
                for q in range(ow):
                    v = src[q]
                    row[q, f] = floor if v < floor else v

@jitr
def conv_planar_wgrad(x, top, left, hp, wp, offs, gy, gw, xf, g):
    """gw[t, f] += sum over images b and pixels of x at tap t times gy[b, ..., f]: the weight
    gradient of :func:`conv_planar_forward`, same layouts; gw (T, O); scratch g (O, L)."""
    n, c = x.shape[0], x.shape[3]
    oh, ow, o = gy.shape[1], gy.shape[2], gy.shape[3]
    taps, filters = gw.shape
    lanes = g.shape[1]
    xf[:] = 0
    xs = xf[:c * hp * wp].reshape(c, hp, wp)
    g[:] = 0  # the dropped lanes (q >= ow, and the slack) and padded filters stay zero
    zero = gw.dtype.type(0)
    for b in range(n):
        _load_planar(x, b, top, left, xs)
        for p in range(oh):  # NHWC -> lanes
            row = gy[b, p]
            for f in range(o):
                dst = g[f, p * wp:p * wp + ow]
                for q in range(ow):
                    dst[q] = row[q, f]
        for t in range(0, taps, 4):
            v0 = xf[offs[t]:offs[t] + lanes]
            v1 = xf[offs[t + 1]:offs[t + 1] + lanes]
            v2 = xf[offs[t + 2]:offs[t + 2] + lanes]
            v3 = xf[offs[t + 3]:offs[t + 3] + lanes]
            for f in range(0, filters, 2):
                g0 = g[f]
                g1 = g[f + 1]
                s00 = s10 = s20 = s30 = s01 = s11 = s21 = s31 = zero
                for l in range(lanes):
                    x0, x1, x2, x3 = v0[l], v1[l], v2[l], v3[l]
                    ga, gb = g0[l], g1[l]
                    s00 += x0 * ga
                    s10 += x1 * ga
                    s20 += x2 * ga
                    s30 += x3 * ga
                    s01 += x0 * gb
                    s11 += x1 * gb
                    s21 += x2 * gb
                    s31 += x3 * gb
                gw[t, f] += s00
                gw[t + 1, f] += s10
                gw[t + 2, f] += s20
                gw[t + 3, f] += s30
                gw[t, f + 1] += s01
                gw[t + 1, f + 1] += s11
                gw[t + 2, f + 1] += s21
                gw[t + 3, f + 1] += s31



# Winograd F(4x4, 3x3) transforms (striate.backend.winograd), one 6- or 4-vector at a time, written
# out so that the channel loop around them vectorises. float32 constants: an int literal would
# promote float32 arithmetic to float64.
_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@jit
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d: the input transform of one column (or row) of a 6x6 tile."""
    return (_4 * d0 - _5 * d2 + d4, d3 + d4 - _4 * (d1 + d2), _4 * (d1 - d2) + d4 - d3,
            _2 * (d3 - d1) + d4 - d2, _2 * (d1 - d3) + d4 - d2, _4 * d1 - _5 * d3 + d5)


@jit
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m: the output transform of one column (or row) of a 6x6 tile, to 4 values."""
    s, d = m1 + m2, m1 - m2
    s2, d2 = m3 + m4, m3 - m4
    return m0 + s + s2, d + _2 * d2, s + _4 * s2, d + _8 * d2 + m5


@jit
def _a(g0, g1, g2, g3):
    """A g: the transform of one column (or row) of a 4x4 output-gradient tile, to 6 values."""
    e, o = g0 + g2, g1 + g3
    e4, o2 = g0 + _4 * g2, _2 * g1 + _8 * g3
    return g0, e + o, e - o, e4 + o2, e4 - o2, g3


@jit
def _load_padded(x, b, top, left, xp):
    """The interior of the zero-bordered image buffer xp (hp, wp, c) = image b of x (n, h, w, c)
    placed at (top, left), cropped to xp; xp's border is never written, so it stays zero. (Loops:
    numba's slice assignment and array views cost more than the copy itself.)"""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    hp, wp = xp.shape[0], xp.shape[1]
    xf, xq = x[b].reshape(h, w * c), xp.reshape(hp, wp * c)
    run = min(w, wp - left) * c
    for r in range(max(0, -top), min(h, hp - top)):
        src, dst = xf[r], xq[r + top, left * c:left * c + run]  # (a slice: see col2im_add)
        for e in range(run):
            dst[e] = src[e]


@jit
def winograd_input_tiles(x, top, left, rows, cols, out):
    """out[p, q, t, c] = (B^T d_t B)[p, q] for tile t = (b*rows + i)*cols + j: d_t the 6x6 patch of
    x (n, h, w, c) at (4i - top, 4j - left), zero outside x; out is (6, 6, n*rows*cols, c).
    top, left >= 0 (a conv's pads)."""
    n, c = x.shape[0], x.shape[3]
    xp = np.zeros((4 * rows + 2, 4 * cols + 2, c), x.dtype)  # one image, zero-padded around
    tmp = np.empty((6, 6, c), x.dtype)
    t = 0
    for b in range(n):
        _load_padded(x, b, top, left, xp)
        for i in range(rows):
            for j in range(cols):
                y0, x0 = 4 * i, 4 * j
                for v in range(6):  # columns: tmp = B^T d
                    for ch in range(c):
                        r0, r1, r2, r3, r4, r5 = _bt(xp[y0, x0 + v, ch], xp[y0 + 1, x0 + v, ch], xp[y0 + 2, x0 + v, ch],
                                                     xp[y0 + 3, x0 + v, ch], xp[y0 + 4, x0 + v, ch], xp[y0 + 5, x0 + v, ch])
                        tmp[0, v, ch], tmp[1, v, ch], tmp[2, v, ch] = r0, r1, r2
                        tmp[3, v, ch], tmp[4, v, ch], tmp[5, v, ch] = r3, r4, r5
                for p in range(6):  # rows: out = tmp B
                    for ch in range(c):
                        r0, r1, r2, r3, r4, r5 = _bt(tmp[p, 0, ch], tmp[p, 1, ch], tmp[p, 2, ch], tmp[p, 3, ch],
                                                     tmp[p, 4, ch], tmp[p, 5, ch])
                        out[p, 0, t, ch], out[p, 1, t, ch], out[p, 2, t, ch] = r0, r1, r2
                        out[p, 3, t, ch], out[p, 4, t, ch], out[p, 5, t, ch] = r3, r4, r5
                t += 1


@jit
def winograd_grad_tiles(gy, rows, cols, out):
    """out[p, q, t, o] = (A g_t A^T)[p, q]: g_t the 4x4 tile (i, j) of gy (n, oh, ow, o), zero
    outside; out is (6, 6, n*rows*cols, o), tiles in winograd_input_tiles' order."""
    n, o = gy.shape[0], gy.shape[3]
    gp = np.zeros((4 * rows, 4 * cols, o), gy.dtype)  # one image, zero-padded to whole tiles
    tmp = np.empty((6, 4, o), gy.dtype)
    t = 0
    for b in range(n):
        _load_padded(gy, b, 0, 0, gp)
        for i in range(rows):
            for j in range(cols):
                y0, x0 = 4 * i, 4 * j
                for v in range(4):  # columns: tmp = A g
                    for ch in range(o):
                        r0, r1, r2, r3, r4, r5 = _a(gp[y0, x0 + v, ch], gp[y0 + 1, x0 + v, ch], gp[y0 + 2, x0 + v, ch],
                                                    gp[y0 + 3, x0 + v, ch])
                        tmp[0, v, ch], tmp[1, v, ch], tmp[2, v, ch] = r0, r1, r2
                        tmp[3, v, ch], tmp[4, v, ch], tmp[5, v, ch] = r3, r4, r5
                for p in range(6):  # rows: out = tmp A^T
                    for ch in range(o):
                        r0, r1, r2, r3, r4, r5 = _a(tmp[p, 0, ch], tmp[p, 1, ch], tmp[p, 2, ch], tmp[p, 3, ch])
                        out[p, 0, t, ch], out[p, 1, t, ch], out[p, 2, t, ch] = r0, r1, r2
                        out[p, 3, t, ch], out[p, 4, t, ch], out[p, 5, t, ch] = r3, r4, r5
                t += 1


@jit
def _untile_rows(tmp, scale, shift, floor, out, b, y0, x0):
    """out[b, y0 + p, x0 + q] = max((tmp A)[p, q] * scale + shift, floor) for a whole 4x4 tile;
    tmp (4, 6, o); scale, shift (o,)."""
    for p in range(4):
        for ch in range(tmp.shape[2]):
            r0, r1, r2, r3 = _at(tmp[p, 0, ch], tmp[p, 1, ch], tmp[p, 2, ch], tmp[p, 3, ch], tmp[p, 4, ch], tmp[p, 5, ch])
            s, t = scale[ch], shift[ch]
            out[b, y0 + p, x0, ch], out[b, y0 + p, x0 + 1, ch] = max(r0 * s + t, floor), max(r1 * s + t, floor)
            out[b, y0 + p, x0 + 2, ch], out[b, y0 + p, x0 + 3, ch] = max(r2 * s + t, floor), max(r3 * s + t, floor)


@jit
def winograd_output_tiles(m, scale, shift, floor, y):
    """y tile t = max((A^T M_t A) * scale + shift, floor), cropped to y (n, oh, ow, o); m is
    (6, 6, n*rows*cols, o), tiles in winograd_input_tiles' order; scale, shift (o,) (a bias:
    ones and the bias; with a fused eval-mode batch norm its coefficients); floor -inf, or 0 for a
    fused ReLU (max(NaN, floor) stays NaN). Tiles over y's edge are made whole in ``edge`` and
    copied in part (a test of the edge in the inner loops would slow every tile down)."""
    n, oh, ow, o = y.shape
    rows, cols = (oh + 3) // 4, (ow + 3) // 4
    tmp = np.empty((4, 6, o), m.dtype)
    edge = np.empty((1, 4, 4, o), m.dtype)
    t = 0
    for b in range(n):
        for i in range(rows):
            for j in range(cols):
                for q in range(6):  # columns: tmp = A^T M
                    for ch in range(o):
                        r0, r1, r2, r3 = _at(m[0, q, t, ch], m[1, q, t, ch], m[2, q, t, ch], m[3, q, t, ch],
                                             m[4, q, t, ch], m[5, q, t, ch])
                        tmp[0, q, ch], tmp[1, q, ch], tmp[2, q, ch], tmp[3, q, ch] = r0, r1, r2, r3
                if 4 * i + 3 < oh and 4 * j + 3 < ow:  # rows: y = tmp A, scaled and shifted
                    _untile_rows(tmp, scale, shift, floor, y, b, 4 * i, 4 * j)
                else:
                    _untile_rows(tmp, scale, shift, floor, edge, 0, 0, 0)
                    for p in range(min(4, oh - 4 * i)):
                        for q in range(min(4, ow - 4 * j)):
                            for ch in range(o):
                                y[b, 4 * i + p, 4 * j + q, ch] = edge[0, p, q, ch]
                t += 1


@jit
def row_max(z, out):
    """out[i] = max of row i of z (m, k), or NaN where the row holds one (as NumPy's max)."""
    m, k = z.shape
    for i in range(m):
        top = z[i, 0]
        nan = top != top
        for j in range(1, k):
            v = z[i, j]
            nan = nan | (v != v)
            if v > top:
                top = v
        out[i] = np.nan if nan else top
