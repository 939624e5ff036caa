"""``striate serve`` end to end in a real headless browser: Debian's Chromium driven by Playwright.

The server runs in a thread on a free port with the default model (trained once per test run);
the test draws a stroke with mouse events, waits for the answer, and checks the page: probabilities
that sum to 1, an activation image for every layer, a receptive field on hover, an upload, the
conv-arithmetic explorer, touch input. It saves screenshots (copied to $STRIATE_SCREENSHOT_DIR when set,
to look at them). It skips, saying why, only where Chromium is not installed.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("flask")
playwright_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import chromium_browser, draw_digit, png_bytes, serve_app, stroke, trained_path  # noqa: E402

@pytest.fixture(scope="module")
def server():
    from striate.serve import create_app, load_served_model

    with serve_app(create_app(load_served_model(trained_path()))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def _stroke(page, points):
    stroke(page, "#pad", points)


def _predictions(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.predictions || 0)"))


def test_draw_a_digit_and_watch_every_layer(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(server + "/")
    page.wait_for_selector(".layer")
    model = page.evaluate("fetch('/api/model').then(r => r.json())")
    assert page.locator(".layer").count() == len(model["layers"])

    # a "7": across the top, then down to the left; the last answer is the one for the whole stroke
    with page.expect_response(lambda r: "/api/predict" in r.url):
        _stroke(page, [(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)])
    page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
    page.wait_for_timeout(400)                     # let a last debounced request finish
    with page.expect_response(lambda r: "/api/predict" in r.url) as answer:
        page.select_option("#invert", "false")     # same drawing, one more request to read exactly
    result = answer.value.json()
    page.wait_for_function("n => Number(document.body.dataset.predictions) >= n", arg=_predictions(page))

    p = np.array(result["probabilities"])
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-9
    shown = page.locator(".bars .pct").all_inner_texts()
    assert abs(sum(float(t.rstrip("%")) for t in shown) - 100) < 0.6      # the bars add up too
    best = result["top"][0]
    assert page.inner_text("#verdict") == f"{best['class']} with probability {100 * best['probability']:.1f}%"
    np.testing.assert_allclose([float(t.rstrip("%")) for t in shown], 100 * p, atol=0.051)   # each bar's label

    # every layer shows its activation images, all decoded by the browser
    layers = page.locator(".layer")
    for i, layer in enumerate(result["layers"]):
        imgs = layers.nth(i).locator(".maps img")
        assert imgs.count() == len(layer["maps"]) > 0, layer["name"]
        loaded = imgs.evaluate_all("els => els.filter(e => e.complete && e.naturalWidth > 0).length")
        assert loaded == len(layer["maps"]), layer["name"]
        assert layer["name"] in layers.nth(i).inner_text()

    # hovering a unit of the pooled layer draws its receptive field on the model's input
    pool = next(i for i, layer in enumerate(result["layers"]) if layer["type"] == "MaxPool2D")
    unit = layers.nth(pool).locator(".maps img").first
    unit.scroll_into_view_if_needed()
    bb = unit.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] * 0.6, bb["y"] + bb["height"] * 0.6, steps=3)
    caption = page.inner_text("#rf-caption")
    f = result["layers"][pool]["field"]
    assert f"a {f['size'][0]}×{f['size'][1]} field" in caption and "sees input rows" in caption
    orange = page.evaluate("""() => { const c = document.getElementById('input-view');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] > 120 && d[i+1] < 200 && d[i+2] < 80) n++;
        return n; }""")
    assert orange > 100                              # the field's outline is drawn

    # the screenshot: the top of the page with the field shown
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(10, 10)
    first_map = layers.nth(0).locator(".maps img").nth(3)
    bb = first_map.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] * 0.55, bb["y"] + bb["height"] * 0.45, steps=3)
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot))
    page.screenshot(path=str(tmp_path / "serve_full.png"), full_page=True)
    out_dir = os.environ.get("STRIATE_SCREENSHOT_DIR")
    if out_dir:
        shutil.copy(shot, os.path.join(out_dir, "serve.png"))
        shutil.copy(tmp_path / "serve_full.png", os.path.join(out_dir, "serve_full.png"))
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape == (1000, 1360) and pixels.std() > 20          # not a blank page

    # clear, then upload a dark-on-white scan of a "0" instead of drawing
    page.click("#clear")
    assert page.inner_text("#verdict") == "—"
    upload = tmp_path / "zero.png"
    upload.write_bytes(png_bytes(draw_digit("0", dark_on_light=True)))
    page.select_option("#invert", "auto")
    with page.expect_response(lambda r: "/api/predict" in r.url) as answer:
        page.set_input_files("#file", str(upload))
    assert answer.value.status == 200
    page.wait_for_function("() => document.getElementById('verdict').innerText.startsWith('0')")

    assert not problems, problems
    assert not external, f"the page fetched from elsewhere: {external}"
    page.close()


def test_touch_draws_too(server, browser):
    context = browser.new_context(has_touch=True, viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(server + "/")
    page.wait_for_selector(".layer")
    box = page.locator("#pad").bounding_box()
    with page.expect_response(lambda r: "/api/predict" in r.url) as answer:
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)   # a dot
    assert answer.value.status == 200
    page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
    context.close()


def test_conv_arithmetic_explorer(server, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 800})
    page.goto(server + "/explorer")
    page.wait_for_function("document.getElementById('out-size').innerText.startsWith('output')")
    assert page.inner_text("#out-size") == "output 4×4"               # 7, kernel 3, stride 2, pad 1
    # the numbers view: striate.vis frames for the same settings, one per output cell
    page.wait_for_function("document.getElementById('n-status').innerText.includes('16 frames')", timeout=60_000)
    assert page.evaluate("document.getElementById('frame').naturalWidth") > 200
    page.fill("#k-stride", "1")
    page.dispatch_event("#k-stride", "input")
    page.wait_for_function("document.getElementById('out-size').innerText === 'output 7×7'")
    page.check("#k-same")
    page.fill("#k-stride", "3")
    page.dispatch_event("#k-stride", "input")
    page.wait_for_function("document.getElementById('out-size').innerText === 'output 3×3'")   # ceil(7/3)
    page.uncheck("#k-same")
    page.fill("#k-padding", "0")
    page.fill("#k-kernel", "7")
    page.fill("#k-dilation", "2")
    page.dispatch_event("#k-dilation", "input")
    page.wait_for_function("document.getElementById('out-size').innerText === 'impossible'")
    assert "larger than its padded input" in page.inner_text("#formula")
    page.close()
