"""striate against golden outputs and gradients recorded from PyTorch (scripts/make_golden.py).

Runs without torch: the oracle's answers are stored in tests/golden/*.npz, so the suite keeps an
independent reference on every machine. Regenerate with ``python scripts/make_golden.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))

def test_golden_fixtures_are_present_and_small():
    assert len(FILES) >= 30, f"golden fixtures missing in {GOLDEN}: run python scripts/make_golden.py"
    total = sum(f.stat().st_size for f in FILES)
    assert total < 320 * 1024, f"golden fixtures take {total / 1024:.0f} KiB"


def test_every_op_has_a_golden_case(golden_ops):
    ops = {json.loads(str(np.load(f)["meta"]))["op"] for f in FILES}
    assert ops == set(golden_ops)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_matches_golden(path, check_golden):
    check_golden(path)


def test_max_pool_ties_golden_is_first_max_rule():
    # a direct reading of the fixture: 3x3 windows at stride 2 over a 5x5 field of ones; each of the
    # 4 windows sends its gradient to its top-left cell (0,0), (0,2), (2,0), (2,2)
    data = np.load(GOLDEN / "max_pool2d_ties.npz")
    gy = data["gy"]
    expected = np.zeros((1, 5, 5, 2))
    for i in range(2):
        for j in range(2):
            expected[0, 2 * i, 2 * j] = gy[0, i, j]
    np.testing.assert_array_equal(data["grad_x"], expected)
