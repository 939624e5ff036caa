"""The validators every public boundary of striate uses, and GeometryError.

Messages follow one pattern (scikit-learn / Keras style): the rule, then what was received, e.g.
``"StepLR: step_size must be an int >= 1. Received: step_size=0."``; ``owner`` names the function
or class that checks, when given. This module imports only NumPy, so every floor may use it.
"""
from __future__ import annotations

import numbers

import numpy as np

# Python and NumPy integers, checked without the slow abstract-base-class machinery of
# numbers.Integral (some checks run on every op call); bool is refused separately.
_INTS = (int, np.integer)


def is_int(value) -> bool:
    """True for Python and NumPy integers, False for bool and everything else."""
    return isinstance(value, _INTS) and not isinstance(value, bool)


def _where(owner: str) -> str:
    return f"{owner}: " if owner else ""


def check_int(value, name: str, low: int = 1, owner: str = "") -> int:
    """An int >= ``low``, as a Python int ("must be a positive int" when ``low`` is 1)."""
    if not is_int(value) or value < low:
        rule = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{_where(owner)}{name} must be {rule}. Received: {name}={value!r}.")
    return int(value)


def check_int_at_least(value, name: str, low: int, owner: str = "") -> int:
    """An int >= ``low``, worded "must be an int >= low" whatever ``low`` is."""
    if not is_int(value) or value < low:
        raise ValueError(f"{_where(owner)}{name} must be an int >= {low}. Received: {name}={value!r}.")
    return int(value)


def check_number(value, name: str, low=None, high=None, low_open=False, high_open=False, owner="") -> float:
    """A finite real number in an interval, as a Python float (which keeps NumPy from upcasting
    float32 arrays it meets, as a NumPy float64 scalar would)."""
    where = _where(owner)
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{where}{name} must be a finite number. Received: {name}={value!r}.")
    value = float(value)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{where}{name} must lie in {interval}. Received: {name}={value!r}.")
    return value


def check_rate(value, name: str) -> float:
    """A probability-like rate in [0, 1) (dropout, label smoothing), as a Python float."""
    if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}.")
    return float(value)


def pair(value, name: str) -> tuple[int, int]:
    """An int or a 2-sequence of ints as ``(height, width)``."""
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and is_int(value[0]) and is_int(value[1]):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints (height, width). Received: {name}={value!r}.")


def positive_pair(value, name: str) -> tuple[int, int]:
    """:func:`pair`, each >= 1."""
    p = pair(value, name)
    if p[0] < 1 or p[1] < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={value!r}.")
    return p


class GeometryError(ValueError):
    """A sliding window that does not fit in its padded input: the output size would be zero or
    negative. Carries the sizes, so callers (the summary, the model zoo) need not parse the text.

    Attributes: op, in_hw, padded_hw, kernel, effective_kernel, stride, padding, out_hw.
    """

    def __init__(self, op, in_hw, padded_hw, kernel, effective_kernel, stride, padding, out_hw):
        self.op, self.in_hw, self.padded_hw, self.kernel = op, tuple(in_hw), tuple(padded_hw), tuple(kernel)
        self.effective_kernel, self.stride, self.padding, self.out_hw = effective_kernel, stride, padding, out_hw
        super().__init__(
            f"{op}: the kernel is larger than the padded input, so the computed output size would be "
            f"zero or negative. Received: input (height, width)={self.in_hw}, padded={self.padded_hw}, "
            f"kernel={self.kernel} (effective {effective_kernel} with dilation), stride={stride}, "
            f"padding={padding!r}; output would be {out_hw}. Use a smaller kernel, more padding, "
            "or padding='same'.")
