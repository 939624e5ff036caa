"""Reusable scratch arrays for values that die inside one op call.

A patch matrix consumed by its GEMM, or a per-offset product, lives for microseconds; allocating it
fresh costs as much in first-touch page faults as the copy into it (``benchmarks/notes.md``). So each
thread keeps one buffer per (shape, dtype), the few most recently used.
"""
from __future__ import annotations

import threading

SCRATCH_BUFFERS = 8

_scratch = threading.local()


def scratch(shape, dtype, xp, tag: str = ""):
    """A reusable array of ``shape`` and ``dtype``, valid until the next call on this thread with the
    same shape, dtype and ``tag`` (two buffers alive at once with one shape need two tags). The caller
    must not let it escape the call (never return it, never save it).
    """
    pool = _scratch.__dict__.setdefault("buffers", {})  # per thread: threads never share one
    key = (tuple(shape), xp.dtype(dtype).str, xp.__name__, tag)
    buf = pool.pop(key, None)
    if buf is None:
        buf = xp.empty(shape, dtype=dtype)
    pool[key] = buf  # most recently used last
    while len(pool) > SCRATCH_BUFFERS:
        pool.pop(next(iter(pool)))
    return buf


def fresh(shape, dtype, xp):
    """A new array (the allocator of values that outlive the call)."""
    return xp.empty(shape, dtype)
