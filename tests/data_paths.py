"""Where the tests find real data: the read-only MNIST copy beside the repository, when it is there."""
from __future__ import annotations

import os

import pytest

MNIST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")
if not os.path.isdir(MNIST_DIR):
    MNIST_DIR = "/work/shared/data/mnist"

needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="shared MNIST copy not present")
