"""Optional compiled kernels (numba) for the few ops NumPy does badly.

NumPy walks NHWC arrays with few channels in runs of c floats, and makes a temporary array per
operation of a formula. A compiled loop does the work in one pass:

* max pooling: the window max with its first-maximum index, and the gradient scatter (LeNet-5's
  first pooling: forward 3.9 -> 0.5 ms, backward 1.8 -> 0.3 ms);
* batch normalisation: the per-channel sums, the normalisation, and the two passes of its
  backward, reading x once each (ResNet-20's 19 BN layers: 131 -> 31 ms per training step);
* col2im, the scatter-add of gradient patches back onto a conv's input (LeNet-5's conv2 input
  gradient: 2.0 -> 1.3 ms per half batch).

The kernels are used only when numba is installed (``pip install striate[fast]``) and not turned
off with the environment variable ``STRIATE_NUMBA=0`` or :func:`set_enabled`; the NumPy code in the
ops is the reference and the fallback, and tests/test_accel.py compares the two. numba is imported,
and the kernels compiled (cached on disk), at the first call that wants them, never at import. They
release the GIL (``nogil``), so the parts of a batch run on several threads at once
(:mod:`striate.ops.parallel`).
"""
from __future__ import annotations

import os
import warnings

# Inputs with fewer elements than this stay on the NumPy path (dispatching a numba call costs
# about as much as pooling a single small image).
MIN_SIZE = 16384

_state = {"enabled": os.environ.get("STRIATE_NUMBA", "1") != "0", "kernels": None, "tried": False}


def set_enabled(flag: bool) -> bool:
    """Turn the compiled kernels on or off (e.g. to compare with the NumPy path); returns the old value."""
    old = _state["enabled"]
    _state["enabled"] = bool(flag)
    return old


def kernels():
    """The compiled kernels, or None when numba is missing or the kernels are turned off."""
    if not _state["enabled"]:
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["kernels"] = _compile()
        except ImportError:
            _state["kernels"] = None
    return _state["kernels"]


def _compile():
    import numba

    # cache=True keeps the machine code on disk next to this file; where that folder is read-only
    # numba warns once and compiles in memory, which is fine. Each kernel is single-threaded and
    # releases the GIL: striate's own threads run one part of the batch each. numba's parallel=True
    # would start a second thread pool fighting the first for the same cores (measured: a LeNet-5
    # step 2.5x slower).
    def jit(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", numba.NumbaWarning)
            return numba.njit(cache=True, nogil=True)(fn)

    @jit
    def maxpool2d_forward(x, kh, kw, sh, sw, y, idx):
        """y[b, p, q, c] = max over the (kh, kw) window at (p*sh, q*sw) of padded x;
        idx = row-major offset i*kw + j of the first maximum. NaN is not handled (a NaN test in
        the inner loop made it 3.5x slower): callers send inputs with NaN to the NumPy path."""
        n, oh, ow, c = y.shape
        for b in range(n):
            for p in range(oh):
                for q in range(ow):
                    for ch in range(c):
                        best = x[b, p * sh, q * sw, ch]
                        k_best = 0
                        for i in range(kh):
                            for j in range(kw):
                                v = x[b, p * sh + i, q * sw + j, ch]
                                if v > best:
                                    best = v
                                    k_best = i * kw + j
                        y[b, p, q, ch] = best
                        idx[b, p, q, ch] = k_best

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

    # Batch normalisation: each pass reads x (and gy) once, where NumPy makes a temporary per
    # operation. Sums are accumulated in float64. x, y, gy, gx: (m, c) rows; the rest (c,).
    @jit
    def channel_moments(x, shift, total, squares):
        """total[j] = sum_i d, squares[j] = sum_i d*d, with d = x[i, j] - shift[j]."""
        m, c = x.shape
        for j in range(c):
            total[j] = 0.0
            squares[j] = 0.0
        for i in range(m):
            for j in range(c):
                d = x[i, j] - shift[j]
                total[j] += d
                squares[j] += d * d

    @jit
    def channel_affine(x, mean, scale, beta, y):
        """y = (x - mean) * scale + beta."""
        m, c = x.shape
        for i in range(m):
            for j in range(c):
                y[i, j] = (x[i, j] - mean[j]) * scale[j] + beta[j]

    @jit
    def bn_grad_sums(gy, x, mean, sg, sgx):
        """sg[j] = sum_i gy[i, j], sgx[j] = sum_i gy[i, j] * (x[i, j] - mean[j])."""
        m, c = x.shape
        for j in range(c):
            sg[j] = 0.0
            sgx[j] = 0.0
        for i in range(m):
            for j in range(c):
                g = gy[i, j]
                sg[j] += g
                sgx[j] += g * (x[i, j] - mean[j])

    @jit
    def bn_grad_apply(gy, x, mean, a, k, e, gx):
        """gx = a * gy + k * (x - mean) + e."""
        m, c = x.shape
        for i in range(m):
            for j in range(c):
                gx[i, j] = a[j] * gy[i, j] + k[j] * (x[i, j] - mean[j]) + e[j]

    @jit
    def col2im_add(cols, gx, p0, sh, sw, dh):
        """Adjoint of im2col for column dilation 1: gx[b, (p0+p)*sh + i*dh, q*sw + j, ch] +=
        cols[b, p, q, i, j*c + ch]. cols (n, r, ow, kh, kw*c): gradient patches of output rows
        p0.. p0+r; gx (n, hp, wp, c), padded. A kernel row's kw*c values land on one contiguous
        run of gx, so the inner loop is a plain vector add (NumPy walks runs of c floats)."""
        n, r, ow, kh, kwc = cols.shape
        c = gx.shape[3]
        g = gx.reshape(n, gx.shape[1], gx.shape[2] * c)
        for b in range(n):
            for p in range(r):
                for i in range(kh):
                    row = g[b, (p0 + p) * sh + i * dh]
                    for q in range(ow):
                        base = q * sw * c
                        src = cols[b, p, q, i]
                        for t in range(kwc):
                            row[base + t] += src[t]

    return type("Kernels", (), {name: staticmethod(fn) for name, fn in (
        ("col2im_add", col2im_add),
        ("maxpool2d_forward", maxpool2d_forward), ("maxpool2d_backward", maxpool2d_backward),
        ("channel_moments", channel_moments), ("channel_affine", channel_affine),
        ("bn_grad_sums", bn_grad_sums), ("bn_grad_apply", bn_grad_apply))})
