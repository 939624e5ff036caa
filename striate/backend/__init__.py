"""Faster strategies for the math of :mod:`striate.ops`: the *backend*.

Every op in ``striate/ops`` holds a short reference forward and backward. When a faster way to
compute the same numbers applies, the op's first line hands the work to its strategy here:

* :mod:`.threads`    split the batch into parts run on several threads; BLAS scoped to one thread
* :mod:`.memory`     opt-in malloc tuning (keep freed memory for the next step)
* :mod:`.compiled`   switch and loader of the optional numba code in :mod:`.jit`
* :mod:`.conv`, :mod:`.planar`, :mod:`.pooling`, :mod:`.normalization`, :mod:`.activation`
                     the strategies of one op family each: threads, cache blocks, scratch
                     buffers, compiled loops

Tests compare every strategy with the op's reference (``tests/test_backend.py``). Nothing here is
imported by ``import striate.backend``. :mod:`.threads` hands its BLAS scope to the engine
(:func:`striate.tensor.set_backward_scope`) when it is imported, so that imports point down only.
"""
from __future__ import annotations

import contextlib
import os

_state = {"reference": os.environ.get("STRIATE_REFERENCE", "0") == "1"}


def fast_paths_enabled() -> bool:
    """Whether ops may hand their work to a strategy here (False: every op runs its reference)."""
    return not _state["reference"]


@contextlib.contextmanager
def reference_only():
    """Run every op on its reference forward and backward inside this block (NumPy, one thread,
    no compiled loops): what the tests compare the strategies with. Also ``STRIATE_REFERENCE=1``."""
    old, _state["reference"] = _state["reference"], True
    try:
        yield
    finally:
        _state["reference"] = old
