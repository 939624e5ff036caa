"""Helpers shared by the tests of ``striate serve`` (test_serve*.py): a trained model, drawn digits, the
app in a server thread, and Debian's Chromium driven by Playwright."""
from __future__ import annotations

import atexit
import contextlib
import functools
import io
import os
import shutil
import signal
import tempfile
import threading

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


# Debian's package installs /usr/bin/chromium; elsewhere take the one on PATH
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else (shutil.which("chromium")
                                                                            or "/usr/bin/chromium")


@contextlib.contextmanager
def serve_app(app):
    """``app`` served from a thread on a free local port; yields its base URL."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def chromium_browser():
    """A headless Chromium driven by Playwright; the test skips, saying why, where Chromium is missing."""
    import pytest

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium): browser test skipped")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@functools.lru_cache(maxsize=None)
def tiny_dense_run(task: str) -> str:
    """The weights of a tiny localiser, detector or segmenter trained once per test process (a few
    seconds): one epoch on 48 canvases of 1-2 embedded digits (one for localisation) at 32x32, written
    as ``striate train`` writes a run."""
    from striate.data import load_dataset
    from striate.data.canvas import make_canvas_dataset
    from striate.training.dense_run import dense_config, train_dense
    from striate.training.run_dir import RunDir

    src = load_dataset("digits")
    digits = (1, 1) if task == "localisation" else (1, 2)
    ds = make_canvas_dataset(src.x_train, src.y_train, src.x_test, src.y_test, src.class_names, 48, 8,
                             canvas=32, digits=digits, seed=0, name="tiny")
    folder = tempfile.mkdtemp(prefix=f"striate-serve-{task}-")
    atexit.register(shutil.rmtree, folder, True)
    run = RunDir(os.path.join(folder, "run"))
    with run.open(run_id="test"):
        train_dense(ds, dense_config(task, epochs=1, dataset="tiny"), run, run_id="test", verbose=0)
    return os.path.join(folder, "run", "weights.npz")


def draw_digits(size=(384, 384), width: int = 20):
    """A PIL canvas with a "1" on the left and a "7" on the right, light strokes on black."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    d.line([(0.22 * w, 0.25 * h), (0.20 * w, 0.65 * h)], fill=255, width=width)
    d.line([(0.55 * w, 0.40 * h), (0.85 * w, 0.40 * h), (0.65 * w, 0.80 * h)], fill=255, width=width, joint="curve")
    return img


def stroke(page, selector: str, points) -> None:
    """Press, move through ``points`` (fractions of the element ``selector``), release: real mouse events."""
    box = page.locator(selector).bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for b in xy[1:]:
        page.mouse.move(*b, steps=8)
    page.mouse.up()


def ctrl_c_works() -> None:
    """``preexec_fn`` of a server started to be stopped with Ctrl-C (SIGINT). A shell starts a
    background job (``cmd &``) with SIGINT ignored, its children inherit that, and Python then never
    turns SIGINT into KeyboardInterrupt: a test suite run that way would wait on servers forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
