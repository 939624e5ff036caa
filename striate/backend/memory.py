"""Opt-in: keep freed memory for reuse instead of handing it back to the operating system (glibc).

A training step allocates and frees the same large arrays (activations, gradients, patch blocks)
every time. glibc's malloc serves arrays above its mmap threshold with fresh pages from the kernel
and returns them on free, so every step page-faults its way through memory it had a moment ago
(figures: ``benchmarks/notes.md``). PyTorch's CPU allocator suffers the same, and its docs suggest
jemalloc or tcmalloc; :func:`keep_freed_memory` instead asks glibc, through ``mallopt``, to serve
large arrays from its heap and to keep freed heap memory (the process's resident size then stays at
its peak, as with any caching allocator).

It changes the whole process, so ``import striate`` never calls it: the ``striate`` command and the
benchmarks do, and a user may (``striate.backend.memory.keep_freed_memory()``). Linux with glibc
only; elsewhere, or with the environment variable ``STRIATE_KEEP_MEMORY=0``, it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1   # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_LARGE = 2**31 - 1       # the largest value mallopt takes: ~2 GiB

_state = {"applied": False}


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse; True if it was applied (now or before)."""
    if _state["applied"]:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("STRIATE_KEEP_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both, or large arrays would still be mmap-ed (threshold) or still be trimmed away (trim)
    _state["applied"] = bool(mallopt(_M_MMAP_THRESHOLD, _LARGE)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGE))
    return _state["applied"]


def is_applied() -> bool:
    """Whether :func:`keep_freed_memory` took effect in this process."""
    return _state["applied"]
