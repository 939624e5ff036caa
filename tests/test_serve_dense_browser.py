"""The dense view of ``striate serve`` in a real headless browser: Debian's Chromium driven by Playwright.

Tiny detection and segmentation runs (trained here in seconds) are served from a thread; the test
draws two strokes at two places of the canvas with mouse events and checks that boxes (or the mask)
appear over it without a reload, that the canvas the page sends is light on dark with the pen of the
training canvases, and that the page stays free of errors. Screenshots are copied to
$STRIATE_SCREENSHOT_DIR when it is set. It skips, saying why, only where Chromium is not installed.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("flask")
pytest.importorskip("sklearn")
pytest.importorskip("playwright.sync_api")

from serve_helpers import chromium_browser, serve_app, stroke, tiny_dense_run  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _stroke(page, points):
    stroke(page, "#dense-pad", points)


def _sent_canvas(request) -> np.ndarray:
    from PIL import Image

    url = json.loads(request.post_data)["image"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def _overlay_pixels(page) -> int:
    return page.evaluate("""() => { const c = document.getElementById('dense-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n; }""")


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_two_strokes_at_two_places_show_the_answer_live(task, browser, tmp_path):
    from striate.serve import create_app, load_served_model

    with serve_app(create_app(load_served_model(tiny_dense_run(task)))) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        problems = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.goto(server + "/")                                # a dense model: / leads to the dense view
        assert page.url.endswith("/dense")
        page.wait_for_function("document.getElementById('model-line').textContent.includes('parameters')")
        assert task in page.inner_text("#model-line")
        page.evaluate("window.__sameDocument = true")          # gone if anything reloads the page
        requests, responses = [], []
        page.on("request", lambda r: requests.append(r) if r.url.endswith("/api/dense") else None)
        page.on("response", lambda r: responses.append(r) if r.url.endswith("/api/dense") else None)
        if task == "detection":                                # an untrained detector scores low: show all
            page.evaluate("""() => { const s = document.getElementById('min-score'); s.value = '0.05';
                s.dispatchEvent(new Event('input')); }""")
        assert _overlay_pixels(page) == 0

        # a "1" on the left, then a "7" on the right: the answer follows each
        with page.expect_request(lambda r: r.url.endswith("/api/dense")):
            _stroke(page, [(0.2, 0.25), (0.18, 0.7)])
        page.wait_for_function("Number(document.body.dataset.strokes || 0) === 1")
        first = int(page.evaluate("Number(document.body.dataset.predictions)"))
        with page.expect_request(lambda r: r.url.endswith("/api/dense")):
            _stroke(page, [(0.55, 0.35), (0.85, 0.35), (0.65, 0.8)])
        page.wait_for_function("Number(document.body.dataset.strokes || 0) === 2")
        page.wait_for_timeout(300)                             # a last debounced request, if any
        page.click("#show-overlay")                            # hide the answer, then draw a dot
        _stroke(page, [(0.9, 0.9)])
        page.click("#show-overlay")
        page.wait_for_function("n => Number(document.body.dataset.predictions) > n", arg=first)
        page.wait_for_function("Number(document.body.dataset.strokes || 0) === 3")
        page.wait_for_timeout(500)
        assert page.evaluate("window.__sameDocument === true")
        assert len(requests) == len(responses) >= 3
        assert int(page.evaluate("Number(document.body.dataset.predictions)")) == len(responses)

        # what the page sent last: the whole canvas, light strokes on black, at the training strokes' width
        canvas = _sent_canvas(requests[-1])
        model = page.evaluate("fetch('/api/model').then(r => r.json())")
        assert canvas.shape == (384, 384) and np.median(canvas) == 0 and canvas.max() == 255
        left, right = canvas[:, :150] > 127, canvas[:, 180:320] > 127
        assert left.sum() > 2000 and right.sum() > 3000           # both strokes, at their places
        row = canvas[int(0.5 * 384), :150] > 127                  # across the vertical stroke of the "1"
        assert abs(row.sum() - model["stroke"] * 384) <= 3, row.sum()

        result = responses[-1].json()
        assert _overlay_pixels(page) > 0                          # drawn over the canvas, no reload
        if task == "detection":
            assert len(result["boxes"]) > 0
            assert page.locator(".found .item").count() == len(result["boxes"])
            best = result["boxes"][0]
            assert page.locator(".found .item").first.inner_text().startswith(best["class"])
        else:
            assert page.locator("#legend .entry").count() == len(model["classes"]) - 1
            assert page.locator(".found .item").count() == len(result["present"])
        assert "server:" in page.inner_text("#dense-timing")
        assert page.locator("#dense-error").is_hidden()

        shot = tmp_path / f"serve_{task}.png"
        page.screenshot(path=str(shot))
        if os.environ.get("STRIATE_SCREENSHOT_DIR"):
            shutil.copy(shot, os.environ["STRIATE_SCREENSHOT_DIR"])

        # Undo takes the last stroke back and asks again; Clear empties the answer
        before = len(responses)
        page.click("#dense-undo")
        page.wait_for_function("Number(document.body.dataset.strokes) === 2")
        assert len(responses) > before
        page.click("#dense-clear")
        page.wait_for_timeout(200)
        assert _overlay_pixels(page) == 0 and page.locator(".found .item").count() == 0
        assert not problems, problems
        page.close()
