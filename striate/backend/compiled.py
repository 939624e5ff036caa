"""Switch and loader of the optional compiled (numba) loops in :mod:`striate.backend.jit`.

The compiled loops are used only when numba is installed (``pip install striate[fast]``) and not
turned off with the environment variable ``STRIATE_NUMBA=0`` or :func:`set_enabled`. numba is
imported, and the loops compiled (cached on disk), at the first call that wants them, never at
import. Each op's NumPy reference stays the fallback, and the tests compare the two.
"""
from __future__ import annotations

import os

import numpy as np

# The dtypes the compiled loops are made for (others, such as float16, run NumPy's reference).
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Lanes of the planar conv loops come in multiples of this (see jit.conv_planar_forward).
LANE_BLOCK = 32
# Inputs with fewer elements than this stay on the NumPy path (dispatching a numba call costs
# about as much as pooling a single small image).
MIN_SIZE = 16384

_state = {"enabled": os.environ.get("STRIATE_NUMBA", "1") != "0", "module": None, "tried": False}


def set_enabled(flag: bool) -> bool:
    """Turn the compiled loops on or off (e.g. to compare with the NumPy path); returns the old value."""
    old = _state["enabled"]
    _state["enabled"] = bool(flag)
    return old


def load():
    """The module :mod:`striate.backend.jit` of compiled loops, or None when numba is missing or
    the loops are turned off."""
    if not _state["enabled"]:
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            from . import jit
        except ImportError:
            jit = None
        _state["module"] = jit
    return _state["module"]


def load_for(x):
    """:func:`load` when ``x`` is a float32 or float64 NumPy array big enough (:data:`MIN_SIZE`) to
    repay a call."""
    return load() if type(x) is np.ndarray and x.size >= MIN_SIZE and x.dtype in DTYPES else None
