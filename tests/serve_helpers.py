"""Helpers shared by the tests of ``striate serve`` (test_serve.py, test_serve_browser.py)."""
from __future__ import annotations

import atexit
import functools
import io
import os
import shutil
import tempfile

import numpy as np


@functools.lru_cache(maxsize=None)
def trained_cache() -> str:
    """A cache folder holding the default model, trained once per test process (~5-10 s).

    Its layout is the real one (``<cache>/serve/digits_cnn.npz``), so ``STRIATE_CACHE=<it>`` makes
    ``striate serve`` load it instead of training.
    """
    from striate.serve.model_file import train_default_model

    folder = tempfile.mkdtemp(prefix="striate-serve-test-")
    atexit.register(shutil.rmtree, folder, True)
    train_default_model(os.path.join(folder, "serve", "digits_cnn.npz"))
    return folder


def trained_path() -> str:
    return os.path.join(trained_cache(), "serve", "digits_cnn.npz")


def draw_digit(kind: str, size: int = 280, width: int = 24, dark_on_light: bool = False):
    """A PIL picture of a hand-drawn-looking digit: light strokes on black (or the reverse)."""
    from PIL import Image, ImageDraw

    ink, ground = (0, 255) if dark_on_light else (255, 0)
    img = Image.new("L", (size, size), ground)
    d = ImageDraw.Draw(img)
    s = size / 280
    if kind == "1":
        d.line([(150 * s, 50 * s), (140 * s, 230 * s)], fill=ink, width=width)
    elif kind == "0":
        d.ellipse([90 * s, 50 * s, 190 * s, 230 * s], outline=ink, width=width)
    elif kind == "7":
        d.line([(80 * s, 60 * s), (200 * s, 60 * s), (120 * s, 230 * s)], fill=ink, width=width, joint="curve")
    elif kind == "blank":
        pass
    else:
        raise ValueError(kind)
    return img


def png_bytes(img, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def decode_data_url_png(url: str) -> np.ndarray:
    """A PNG data URL -> its pixels, read back with Pillow."""
    import base64

    from PIL import Image

    assert url.startswith("data:image/png;base64,"), url[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
