"""The one source of randomness: a seedable NumPy Generator.

Everything random in striate (initialisers, dropout, shuffling, augmentation) takes an optional
``rng`` argument; when it is omitted, the default generator below is used, and
:func:`manual_seed` resets it, so ``st.manual_seed(0)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numbers

import numpy as np

_default_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Re-seed the default generator; returns it."""
    global _default_generator
    _default_generator = np.random.default_rng(seed)
    return _default_generator


def default_generator() -> np.random.Generator:
    return _default_generator


def get_state() -> dict:
    """State of the default generator (for checkpoints)."""
    return _default_generator.bit_generator.state


def set_state(state: dict) -> None:
    _default_generator.bit_generator.state = state


def check_random_state(rng) -> np.random.Generator:
    """Turn ``None`` (default generator), an int seed or a Generator into a Generator."""
    if rng is None:
        return _default_generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator. Received: {type(rng).__name__}."
    )
