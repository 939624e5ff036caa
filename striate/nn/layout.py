"""Where striate's layout meets a channels-first one: the order of a flattened feature map.

striate flattens an ``(h, w, c)`` map in that order (NHWC, row-major), so feature ``i`` is
``(y, x, k)`` with ``i = (y * w + x) * c + k``. PyTorch, ONNX and other NCHW frameworks flatten
``(c, h, w)``: their feature ``j = (k * h + y) * w + x``. The dense layer after a flatten therefore
needs its weight rows reordered when weights cross between the two -- by :func:`flatten_perm`, the one
place that states the order (used by ONNX export and import and by PyTorch weight loading).
"""
from __future__ import annotations

import numpy as np


def flatten_perm(h: int, w: int, c: int) -> np.ndarray:
    """Position ``j`` of the channels-first ``(c, h, w)`` flatten holds striate's ``(h, w, c)`` feature ``perm[j]``.

    ``features_nchw = features_nhwc[perm]``; the inverse, ``np.argsort(perm)``, goes back:
    ``features_nhwc = features_nchw[np.argsort(perm)]`` (and the same for a dense weight's rows).

    Shape:
        returns ``(h * w * c,)`` int64, a permutation of ``0 .. h*w*c - 1``.

    Example:
        >>> flatten_perm(1, 2, 2)      # (y, x, k): (0,0,0) (0,0,1) (0,1,0) (0,1,1) -> k first
        array([0, 2, 1, 3])
    """
    return np.arange(h * w * c, dtype=np.int64).reshape(h, w, c).transpose(2, 0, 1).ravel()
