"""Grids of tiles and per-tile scaling: the arrays behind filter and activation pictures.

Every function here returns float arrays in [0, 1] (grayscale ``(H, W)`` or RGB ``(H, W, 3)``);
drawing them to a file is :mod:`striate.vis.draw`'s job.
"""
from __future__ import annotations

import math

import numpy as np


def normalize(a, axis=None) -> np.ndarray:
    """Scale ``a`` to [0, 1] by its own min and max (over ``axis``); a constant array becomes 0.5.

    Example::

        >>> normalize(np.array([2.0, 4.0, 3.0]))
        array([0. , 1. , 0.5])
    """
    a = np.asarray(a, dtype=np.float64)
    lo = a.min(axis=axis, keepdims=True)
    span = a.max(axis=axis, keepdims=True) - lo
    flat = span <= 1e-12 * np.maximum(1.0, np.abs(lo))
    out = (a - lo) / np.where(flat, 1.0, span)
    return np.where(flat, 0.5, out)


def grid_shape(n: int, ncols: int | None = None) -> tuple:
    """(rows, cols) for ``n`` tiles: ``ncols`` columns, or as square as possible."""
    if n < 1:
        raise ValueError(f"a grid needs at least one tile. Received: n={n}.")
    cols = ncols if ncols else math.ceil(math.sqrt(n))
    cols = max(1, min(int(cols), n))
    return math.ceil(n / cols), cols


def tile(images, ncols: int | None = None, border: int = 1, border_value: float = 1.0) -> np.ndarray:
    """Tiles ``(n, h, w)`` or ``(n, h, w, 3)`` side by side in a grid with a ``border``-pixel frame.

    Args:
        images: the tiles, already scaled as they should appear (e.g. by :func:`normalize`).
        ncols: columns of the grid (default: as square as possible).
        border: pixels between tiles and around the grid.
        border_value: value of the border pixels (1.0 = white).

    Shape:
        ``(rows * (h + border) + border, cols * (w + border) + border[, 3])``.

    Example::

        >>> tile(np.zeros((6, 3, 3)), ncols=3).shape
        (9, 13)
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"tile expects (n, h, w) or (n, h, w, 3) tiles. Received: shape {images.shape}.")
    n, h, w = images.shape[:3]
    rows, cols = grid_shape(n, ncols)
    b = int(border)
    shape = (rows * (h + b) + b, cols * (w + b) + b) + images.shape[3:]
    out = np.full(shape, float(border_value))
    for i in range(n):  # one slice assignment per tile (tens to a few thousand tiles)
        r, c = divmod(i, cols)
        y, x = b + r * (h + b), b + c * (w + b)
        out[y:y + h, x:x + w] = images[i]
    return out


def upsample_nearest(a, factor: int) -> np.ndarray:
    """Repeat every pixel ``factor`` x ``factor`` times (crisp enlargement of tiny maps)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive int. Received: factor={factor}.")
    return np.repeat(np.repeat(np.asarray(a), factor, axis=0), factor, axis=1)


def resize_bilinear(a, size) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` or ``(h, w, c)`` to ``size = (H, W)`` with half-pixel centres.

    Output pixel ``i`` samples input coordinate ``(i + 0.5) * h / H - 0.5`` (clamped at the border):
    the convention of OpenCV's ``resize`` and PyTorch's ``interpolate(align_corners=False)``, which
    Grad-CAM implementations use to bring the coarse map to the input's size.
    """
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape[:2]
    oh, ow = int(size[0]), int(size[1])

    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(h, oh)
    x0, x1, fx = axis(w, ow)
    extra = (None,) * (a.ndim - 2)
    fy = fy[(slice(None), None) + extra]
    fx = fx[(None, slice(None)) + extra]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx      # (H, W[, c]) rows interpolated along x
    bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy
