"""Winograd's minimal filtering F(4x4, 3x3): stride-1 3x3 convolutions with 4x fewer multiplies.

The reference conv (:mod:`striate.ops.conv`) spends 9 multiplies per output pixel, input channel and
filter. Winograd (Lavin & Gray, 2015) cuts the output into 4x4 tiles; tile t of the output reads a
6x6 tile d_t of the (zero-padded) input, and for one input channel c and filter o

    y_t = A^T [ (G g G^T) ⊙ (B^T d_t B) ] A             (6x6 element-wise product ⊙)

with the constant matrices below (points 0, +-1, +-2 and infinity). Summed over channels, the 36
element-wise products become 36 GEMMs, one per position (p, q) of the 6x6 transformed tile:

    M[p, q] = V[p, q] @ U[p, q]      (tiles, o) = (tiles, c) @ (c, o)
    V = B^T d B per tile and channel (the *input transform*), U = G g G^T (the *weight transform*),

and y = A^T M A per tile and filter (the *output transform*): 36 multiplies per 16 outputs instead of
144. The transforms are additions with small constants, done by :func:`transform_tiles` and
:func:`untile` (compiled loops when numba is present, else NumPy).

The same algebra gives the other two products of training. The input gradient of a stride-1 conv is
itself a stride-1 conv (the transposed one, :meth:`striate.backend.conv.FastConv.backward_data_as_conv`)
and runs through the forward. The weight gradient follows from y being linear in g:

    dL/dg = G^T [ sum_t (A dy_t A^T) ⊙ (B^T d_t B) ] G    (dy_t: the 4x4 tile t of dL/dy)

that is, 36 GEMMs GW[p, q] = V[p, q]^T @ Y[p, q], (c, o) = (c, tiles) @ (tiles, o), with Y the
transform of the output-gradient tiles by A (6x4) in place of B^T.

The price is float32 rounding: the transforms mix values with weights up to 8 (1e-6 to 1e-5 relative
error against the exact sum, where the reference has ~1e-7); the tests hold the two within the
tolerance the PyTorch comparisons use.
"""
from __future__ import annotations

import numpy as np

from . import compiled, threads
from .scratch import scratch

M = 4                     # output tile: 4x4
R = 3                     # kernel: 3x3
ALPHA = M + R - 1         # input tile: 6x6

BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)          # (6, 6)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)                      # (6, 3)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)          # (4, 6)

# Fewer channels than this (in or out) and the 36 GEMMs are too thin to beat the direct paths;
# NumPy's transforms (einsums) are slower than the compiled ones, so without numba only wide convs gain.
MIN_CHANNELS = 16
NUMPY_MIN_CHANNELS = 128
# Fewer tiles than this in a call and the weight transform (36 c o values written) costs more than
# the multiplies it saves.
MIN_TILES = 128
# Transformed tiles of a block of images, V and M together, stay within this many bytes (the CPU
# cache), so the GEMMs read what the transforms just wrote...
BLOCK_BYTES = 2 * 2**20
# ...unless that leaves a block fewer tiles than this: the 36 GEMMs read all of U (36 c o values)
# once per block, and with many channels and few tiles per block that read would cost more than
# the multiplies.
MIN_BLOCK_TILES = 256


def winograd_wins(w_shape, stride, dilation, groups, images, out_hw) -> bool:
    """Whether a conv of this geometry runs as Winograd F(4x4, 3x3): 3x3 kernels, stride 1, no
    dilation, no groups; at least :data:`MIN_CHANNELS` channels in and out with the compiled
    transforms, :data:`NUMPY_MIN_CHANNELS` without (NumPy's transforms cost more than the multiplies
    saved on narrower convs); at least :data:`MIN_TILES` tiles in the batch (the weight transform is
    paid once per call); and tiles at least half used (a 2x2 output fills a quarter of its tile:
    9 multiplies per output, no gain)."""
    kh, kw, c, o = w_shape
    rows, cols = tiles_of(out_hw)
    least = MIN_CHANNELS if compiled.load() is not None else NUMPY_MIN_CHANNELS
    return (kh, kw) == (R, R) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1 \
        and min(c, o) >= least and images * rows * cols >= MIN_TILES \
        and 2 * out_hw[0] * out_hw[1] >= M * M * rows * cols


def tiles_of(out_hw) -> tuple:
    """(rows, columns) of 4x4 output tiles covering an output of ``out_hw`` (the last ones cropped)."""
    return -(-out_hw[0] // M), -(-out_hw[1] // M)


# ----------------------------------------------------------------------------- transforms
def transform_tiles(x, top, left, L, grid, out):
    """out[p, q, t, c] = (L d_t L^T)[p, q] for every tile t of every image of x (n, h, w, c).

    Tile t = (image b, row i, column j) of ``grid`` = (rows, columns) is the k x k patch
    (k = L.shape[1]) of x at (4i - top, 4j - left), zero outside x; ``out`` is (a, a, n*rows*cols, c)
    with a = L.shape[0]. The input transform is L = B^T (k = 6); the output gradient's, L = A (k = 4)
    with no offset: the compiled loops have these two built in. Below them, the formula in NumPy.
    """
    loops = compiled.load()
    if loops is not None:
        x = np.ascontiguousarray(x)  # (the loops read rows of an image as one run)
        if L.shape[1] == ALPHA:
            loops.winograd_input_tiles(x, top, left, grid[0], grid[1], out)
        else:
            loops.winograd_grad_tiles(x, grid[0], grid[1], out)
        return out
    n, h, w, c = x.shape
    k = L.shape[1]
    rows, cols = grid
    # zero-pad x so that every tile lies inside, then a strided view of the tiles
    hp, wp = M * (rows - 1) + k, M * (cols - 1) + k
    xp = np.zeros((n, hp, wp, c), x.dtype)
    r0, r1, c0, c1 = max(0, top), min(hp, top + h), max(0, left), min(wp, left + w)
    xp[:, r0:r1, c0:c1] = x[:, r0 - top:r1 - top, c0 - left:c1 - left]
    s = xp.strides
    tiles = np.lib.stride_tricks.as_strided(xp, (n, rows, cols, k, k, c),
                                            (s[0], M * s[1], M * s[2], s[1], s[2], s[3]), writeable=False)
    Lx = L.astype(x.dtype)
    out.reshape(L.shape[0], L.shape[0], n, rows, cols, c)[...] = np.einsum(
        "pi,nrsijc,qj->pqnrsc", Lx, tiles, Lx, optimize=True)
    return out


def untile(m, epilogue, y):
    """y tile t = A^T M_t A, then ``epilogue.apply`` (bias, or a fused batch norm and ReLU), cropped
    to y (n, oh, ow, o); m is (6, 6, n*rows*cols, o)."""
    loops = compiled.load()
    at = AT.astype(m.dtype)
    if loops is not None:
        scale, shift, floor = epilogue.coefficients(y.shape[3], m.dtype)
        loops.winograd_output_tiles(m, scale, shift, floor, y)
        return y
    n, oh, ow, o = y.shape
    rows, cols = tiles_of((oh, ow))
    tiles = np.einsum("ip,pqnrso,jq->nrisjo", at, m.reshape(ALPHA, ALPHA, n, rows, cols, o), at, optimize=True)
    full = tiles.reshape(n, rows * M, cols * M, o)
    y[...] = full[:, :oh, :ow]
    return epilogue.apply(y)


def sandwich(L, a):
    """L a L^T over the first two axes of ``a`` (k, k, ...) -> (m, m, ...), L (m, k): two GEMMs
    over the trailing axes at once (an einsum of this takes several times longer for wide convs)."""
    k, rest = a.shape[0], a.shape[2:]
    left = np.dot(L, a.reshape(k, -1)).reshape(L.shape[0], k, -1)  # (m, k, ...)
    out = np.empty((L.shape[0], L.shape[0], left.shape[2]), a.dtype)
    for p in range(L.shape[0]):
        np.dot(L, left[p], out=out[p])
    return out.reshape((L.shape[0], L.shape[0]) + rest)


def weight_transform(w):
    """U[p, q] = G g G^T for every (channel, filter): (6, 6, c, o) from HWIO (3, 3, c, o)."""
    return sandwich(G.astype(w.dtype), w)


# ----------------------------------------------------------------------------- the conv
class WinogradConv:
    """One stride-1 3x3 conv as F(4x4, 3x3): its forward, and its weight gradient.

    Args:
        pads: (top, bottom, left, right); out_hw: the output's (oh, ow); x_shape, w_shape: NHWC
        input and HWIO weight shapes.
    """

    def __init__(self, pads, out_hw, x_shape, w_shape):
        self.top, self.left = pads[0], pads[2]
        self.out_hw, self.x_shape, self.w_shape = tuple(out_hw), x_shape, w_shape
        self.grid = tiles_of(out_hw)

    def _image_blocks(self, images, channels):
        """Slices of ``range(images)``: blocks whose transformed tiles fit :data:`BLOCK_BYTES`, of
        even size (8 images in blocks of at most 7 are 4 + 4, not 7 + a thin 1)."""
        tiles = self.grid[0] * self.grid[1]
        step = max(1, BLOCK_BYTES // (ALPHA * ALPHA * tiles * channels * 4), -(-MIN_BLOCK_TILES // tiles))
        count = -(-images // step)
        bounds = [images * i // count for i in range(count + 1)]
        return [slice(bounds[i], bounds[i + 1]) for i in range(count)]

    def forward(self, x, w, epilogue, y, parts):
        """y = conv(x, w), then ``epilogue`` (an :class:`striate.ops.epilogue.Epilogue`: the bias, or
        a fused batch norm and ReLU), into ``y`` (n, oh, ow, o), the batch cut into ``parts``."""
        with threads.one_blas_thread(parts):  # the weight transform's GEMMs too
            u = weight_transform(w)  # (6, 6, c, o)
            threads.map_parts(lambda s: self._forward_part(x[s], u, epilogue, y[s]), parts)
        return y

    def _forward_part(self, x, u, epilogue, y):
        c, o = u.shape[2], u.shape[3]
        bt = BT.astype(x.dtype)
        for images in self._image_blocks(len(x), c + o):
            t = (images.stop - images.start) * self.grid[0] * self.grid[1]
            v = transform_tiles(x[images], self.top, self.left, bt, self.grid, scratch((ALPHA, ALPHA, t, c), x.dtype, np))
            m = scratch((ALPHA, ALPHA, t, o), x.dtype, np, "out")
            # (36, t, o) = (36, t, c) @ (36, c, o): one call (36 np.dot calls would each take the GIL)
            np.matmul(v.reshape(-1, t, c), u.reshape(-1, c, o), out=m.reshape(-1, t, o))
            untile(m, epilogue, y[images])

    def weight_grad(self, x, gy, parts):
        """dL/dw (3, 3, c, o) of the forward on x, given dL/dy ``gy``."""
        with threads.one_blas_thread(parts):
            gws = threads.map_parts(lambda s: self._weight_grad_part(x[s], gy[s]), parts)
            gw = gws[0]
            for more in gws[1:]:
                gw += more
            return sandwich(G.T.astype(gw.dtype), gw)  # G^T GW G: (3, 3, c, o)

    def _weight_grad_part(self, x, gy):
        c, o = self.w_shape[2], self.w_shape[3]
        bt, a = BT.astype(x.dtype), AT.T.astype(x.dtype)  # A: (6, 4)
        gw = np.empty((ALPHA * ALPHA, c, o), x.dtype)
        for k, images in enumerate(self._image_blocks(len(x), c + o)):
            t = (images.stop - images.start) * self.grid[0] * self.grid[1]
            v = transform_tiles(x[images], self.top, self.left, bt, self.grid, scratch((ALPHA, ALPHA, t, c), x.dtype, np))
            yt = transform_tiles(gy[images], 0, 0, a, self.grid, scratch((ALPHA, ALPHA, t, o), x.dtype, np, "out"))
            # (36, c, o) (+)= (36, c, t) @ (36, t, o)
            vt, yt = v.reshape(-1, t, c).transpose(0, 2, 1), yt.reshape(-1, t, o)
            if k == 0:
                np.matmul(vt, yt, out=gw)
            else:
                gw += np.matmul(vt, yt)
        return gw.reshape(ALPHA, ALPHA, c, o)
