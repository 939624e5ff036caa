"""The library's own Python sources, for tests that check where a piece of logic lives."""
from __future__ import annotations

import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "striate")


def library_sources():
    """``(path relative to striate/, text)`` of every ``.py`` file of the library, in sorted order."""
    for folder, dirs, files in os.walk(ROOT):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT).replace(os.sep, "/"), f.read()
