"""Shared fixtures of the test suite.

Tolerances (the issue's contract): results agree with the reference to a relative tolerance of
1e-9 in float64 and 2e-4 in float32. "Relative" is measured both element-wise and against the
largest magnitude of the reference, so that entries that happen to be near zero (sums of terms of
both signs) are judged on the scale of the whole array, as ``torch.testing`` does with its atol.
"""
from __future__ import annotations

import numpy as np
import pytest

RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 2e-4}


def _assert_close(actual, expected, rtol=None, dtype=None, what="value"):
    """Assert ``actual`` matches ``expected`` to the per-dtype relative tolerance.

    ``rtol`` defaults to :data:`RTOL` of ``dtype`` (or of ``actual``'s dtype).
    """
    actual = np.asarray(getattr(actual, "data", actual))
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    if rtol is None:
        rtol = RTOL[np.dtype(dtype if dtype is not None else actual.dtype)]
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-12), err_msg=what)


@pytest.fixture
def assert_close():
    """``assert_close(actual, expected, rtol=None, dtype=None, what='value')``."""
    return _assert_close


@pytest.fixture
def rng():
    """A fresh, seeded NumPy Generator per test (tests never share random state)."""
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Keep PyTorch (the oracle, when installed) to one thread: the test machine is shared."""
    try:
        import torch
    except ImportError:  # torch is optional: the golden and numerical tests run without it
        yield
        return
    torch.set_num_threads(1)
    yield
