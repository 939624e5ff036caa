"""Where the tests find real data: the read-only MNIST copy beside the repository, and Debian's packaged
Fashion-MNIST (``apt-get install dataset-fashion-mnist``, its files gzipped again), when they are there."""
from __future__ import annotations

import os

import pytest

MNIST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")
if not os.path.isdir(MNIST_DIR):
    MNIST_DIR = "/work/shared/data/mnist"

needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="shared MNIST copy not present")

# Debian's dataset-fashion-mnist installs the four IDX files here, re-compressed (other gzip bytes than the
# published archives, the same content)
FASHION_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
needs_fashion_debian = pytest.mark.skipif(not os.path.isdir(FASHION_DEBIAN_DIR),
                                          reason="Debian's dataset-fashion-mnist package not installed")
