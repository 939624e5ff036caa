"""Drawing with striate.vis leaves the user's matplotlib backend alone (a notebook's inline plots)."""
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

SCRIPT = """
import matplotlib
matplotlib.use("svg")                       # the user's choice, before striate draws anything
import matplotlib.pyplot as plt
import numpy as np
import striate.vis as vis
from striate.vis import draw
rgb = vis.overlay(np.zeros((8, 8, 1), np.float32), np.ones((8, 8)))
draw.pyplot()
print(matplotlib.get_backend(), rgb.shape)
"""


def test_drawing_keeps_the_users_matplotlib_backend():
    # a fresh interpreter: the backend of this test process is not ours to change
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    backend, _ = out.stdout.strip().split(" ", 1)
    assert backend == "svg", f"striate.vis switched the backend to {backend}"
