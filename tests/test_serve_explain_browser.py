"""The explanation panel and the 3D view of ``striate serve`` in a real headless browser (Debian's
Chromium driven by Playwright): clicking units, the panel's numbers against the API's and the API's
against :func:`striate.vis.explain_unit`, an RGB model fed an uploaded picture, a model imported from
ONNX. Screenshots go to $STRIATE_SCREENSHOT_DIR when it is set. Skips only where Chromium is missing.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

pytest.importorskip("flask")
playwright_api = pytest.importorskip("playwright.sync_api")

import striate as st  # noqa: E402
from striate import nn  # noqa: E402
from striate.serve import ServedModel, create_app, load_served_model  # noqa: E402
from striate.serve.state import KEY  # noqa: E402
from striate.vis import explain_gradient, explain_unit, to_json  # noqa: E402

from serve_helpers import chromium_browser, png_bytes, serve_app, trained_path  # noqa: E402

@contextlib.contextmanager
def serving(served):
    app = create_app(served)
    with serve_app(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as b:
        yield b


def new_page(browser, server, path="/"):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: problems.append(f"external request {r.url}")
            if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(server + path)
    return page, problems


def stroke(page, points):
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for a, b in zip(xy, xy[1:]):
        page.mouse.move(*b, steps=6)
    page.mouse.up()


def draw_seven(page):
    page.wait_for_selector(".layer")
    stroke(page, [(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)])
    page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
    page.wait_for_timeout(300)
    with page.expect_response(lambda r: "/api/predict" in r.url) as answer:
        page.select_option("#preprocess", page.eval_on_selector("#preprocess", "e => e.value"))
        page.dispatch_event("#preprocess", "change")
    return answer.value.json()


def shown_numbers(page, selector):
    return [float(v) for v in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.v)")]


def click_unit(page, layer_pos, map_k, fx, fy):
    """Click map ``map_k`` of layer row ``layer_pos`` at fractions (fx, fy); return the /api/explain JSON."""
    img = page.locator(".layer").nth(layer_pos).locator(".maps img").nth(map_k)
    img.scroll_into_view_if_needed()
    bb = img.bounding_box()
    with page.expect_response(lambda r: "/api/explain" in r.url) as answer:
        page.mouse.click(bb["x"] + fx * bb["width"], bb["y"] + fy * bb["height"])
    page.wait_for_function("document.getElementById('explain-panel').dataset.state === 'ready'")
    return answer.value.json(), bb


def test_click_a_unit_and_read_its_arithmetic(browser):
    served = load_served_model(trained_path())
    with serving(served) as (server, app):
        page, problems = new_page(browser, server)
        result = draw_seven(page)
        key = result["input_key"]
        x = served.standardize(app.extensions[KEY].inputs.get(key))
        convs = [i for i, layer in enumerate(result["layers"]) if layer["type"] == "Conv2D"]
        pos = convs[1]                                          # the second conv: many input channels
        name, (h, w, _) = result["layers"][pos]["name"], result["layers"][pos]["shape"]
        e, _ = click_unit(page, pos, 5, 0.6, 0.3)
        assert e["layer"] == name and e["index"] == [int(0.3 * h), int(0.6 * w), 5]
        # the API's answer is explain_unit's on the same prepared image
        want = to_json(explain_unit(served.model, x, name, tuple(e["index"])))
        assert all(e[k] == v for k, v in want.items())
        # the panel shows the API's numbers: the value, each channel's term and the rest, bias, the sum
        assert shown_numbers(page, "#explain-panel .ep-value .n.value") == [e["value"]]
        assert shown_numbers(page, "#explain-panel .tsum .n.term") == [t["term"] for t in e["top"]]
        assert shown_numbers(page, "#explain-panel .eq .n.rest") == ([e["rest"]] if e["rest_count"] else [])
        assert shown_numbers(page, "#explain-panel .eq .n.bias") == [e["bias"]]
        assert shown_numbers(page, "#explain-panel .eq .n.pre")[0] == pytest.approx(e["pre_activation"])
        first = e["top"][0]
        cells = shown_numbers(page, "#explain-panel .term:first-child table.grid:nth-of-type(1) .n")
        assert len(cells) >= len(np.ravel(first["patch"]))
        patch_cells = shown_numbers(page, "#explain-panel .term:first-child .tgrids > div:nth-child(1) .n")
        kernel_cells = shown_numbers(page, "#explain-panel .term:first-child .tgrids > div:nth-child(3) .n")
        np.testing.assert_array_equal(patch_cells, np.ravel(first["patch"]))
        np.testing.assert_array_equal(kernel_cells, np.ravel(first["kernel"]))
        # the terms shown add up to the unit's value (within float32 rounding of the forward)
        assert sum(t["term"] for t in e["top"]) + e["rest"] + e["bias"] == pytest.approx(e["pre_activation"])
        assert page.locator("#ep-anim").count() == 1
        shot_dir = os.environ.get("STRIATE_SCREENSHOT_DIR")
        page.wait_for_timeout(1400)                             # a few frames of the sliding kernel
        if shot_dir:
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=os.path.join(shot_dir, "explain_panel.png"))

        # the backward pass for class 3: the panel's gradient equals explain_gradient's
        page.select_option("#ep-target", "3")
        with page.expect_response(lambda r: "/api/gradient" in r.url) as answer:
            page.click("#ep-backward")
        page.wait_for_function("document.getElementById('explain-panel').dataset.grad === 'ready'")
        g = answer.value.json()
        want = explain_gradient(served.model, x, name, tuple(e["index"]), target=3)
        assert g["grad"] == want["grad"] and g["bias_grad"] == want["bias_grad"]
        np.testing.assert_array_equal(g["weight_grad"], want["weight_grad"])
        assert shown_numbers(page, "#explain-panel .n.grad") == [g["grad"]]
        assert page.locator("#explain-panel .grad-layer img").count() == sum(len(L["maps"]) for L in g["layers"])
        if shot_dir:
            page.locator("#ep-grad").scroll_into_view_if_needed()
            page.screenshot(path=os.path.join(shot_dir, "explain_backward.png"))

        # the output layer: the softmax of the logits with each number
        e, _ = click_unit(page, len(result["layers"]) - 1, 0, 0.5 / 10 + 0.3 / 10, 0.5)
        assert "softmax" in e or e["kind"] == "softmax"
        s = e.get("softmax") or e
        probs = shown_numbers(page, "#explain-panel table.softmax td:nth-child(4) .n")
        assert set(probs) <= set(s["probs"]) and max(probs) == max(s["probs"])
        assert not problems, problems
        page.close()


def test_rgb_model_upload_and_a_large_layer_clicked_exactly(browser, tmp_path):
    from PIL import Image

    model = nn.Sequential(nn.Conv2D(6, 3, padding="same", rng=0), nn.ReLU(), nn.MaxPool2D(4),
                          nn.Conv2D(8, 3, stride=2, rng=1), nn.ReLU(), nn.Flatten(), nn.Dense(4, rng=2)).build((160, 160, 3))
    served = ServedModel(model, (160, 160, 3), class_names=["sky", "sea", "sand", "leaf"], name="rgb-test")
    rng = np.random.default_rng(0)
    picture = np.zeros((120, 200, 3), np.uint8)
    picture[:60] = (90, 150, 230)
    picture[60:] = (230, 200, 120)
    picture += rng.integers(0, 30, picture.shape, dtype=np.uint8)
    path = tmp_path / "beach.png"
    path.write_bytes(png_bytes(Image.fromarray(picture)))
    with serving(served) as (server, app):
        page, problems = new_page(browser, server)
        page.wait_for_selector(".layer")
        assert "RGB" in page.inner_text("#pad-hint")
        with page.expect_response(lambda r: "/api/predict" in r.url) as answer:
            page.set_input_files("#file", str(path))
        assert answer.value.status == 200
        page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
        key = page.evaluate("document.body.dataset.inputKey")
        assert len(page.locator(".bars .pct").all_inner_texts()) == 4
        # the 160x160 first layer is drawn at 112 px, yet a click explains the unit under the mouse
        page.evaluate("window.clicks = []; document.addEventListener('click', "
                      "ev => window.clicks.push([ev.clientX, ev.clientY]), true)")
        e, bb = click_unit(page, 0, 2, 0.73, 0.41)
        assert round(bb["width"]) == round(bb["height"]) == 112
        (cx, cy), = page.evaluate("window.clicks")
        row, col = int((cy - bb["y"]) / bb["height"] * 160), int((cx - bb["x"]) / bb["width"] * 160)
        assert abs(row - 0.41 * 160) < 2 and abs(col - 0.73 * 160) < 2
        assert e["index"] == [row, col, 2] and e["kind"] == "conv"
        assert len(e["top"]) == 3 and e["window"]["input_shape"] == [160, 160, 3]
        x = served.standardize(app.extensions[KEY].inputs.get(key))
        assert x.shape == (160, 160, 3) and x.std(axis=(0, 1)).min() > 0.01        # the picture, in colour
        assert e["value"] == explain_unit(served.model, x, e["layer"], tuple(e["index"]))["value"]
        shot_dir = os.environ.get("STRIATE_SCREENSHOT_DIR")
        if shot_dir:
            page.screenshot(path=os.path.join(shot_dir, "explain_rgb.png"))
        assert not problems, problems
        page.close()


def test_the_page_with_an_onnx_imported_model(browser, tmp_path):
    pytest.importorskip("onnx")
    model = st.models.lenet5(rng=0)
    model.build((28, 28, 1))
    path = tmp_path / "lenet5.onnx"
    st.onnx.export(model, path, (28, 28, 1))
    served = load_served_model(path)
    with serving(served) as (server, app):
        page, problems = new_page(browser, server)
        page.wait_for_selector(".layer")
        assert "lenet5" in page.inner_text("#model-line")
        result = draw_seven(page)
        e, _ = click_unit(page, 0, 1, 14.5 / 28, 14.5 / 28)
        assert e["kind"] == "conv" and e["index"] == [14, 14, 1]
        assert shown_numbers(page, "#explain-panel .ep-value .n.value") == [e["value"]]
        x = app.extensions[KEY].inputs.get(result["input_key"])
        assert e["value"] == pytest.approx(float(st.vis.activations(served.model, x)[result["layers"][0]["name"]][14, 14, 1]),
                                           abs=1e-5)
        assert not problems, problems
        page.close()


def test_the_3d_view_turns_zooms_hovers_and_clicks(browser):
    served = load_served_model(trained_path())
    with serving(served) as (server, app):
        page, problems = new_page(browser, server)
        result = draw_seven(page)                                 # the Network view's picture is carried over
        page.click("nav a[href='/3d']")
        page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
        assert page.locator("nav a.active").inner_text() == "3D network"
        layers = [layer for layer in result["layers"] if layer["type"] == "Conv2D"]
        name, index = layers[1]["name"], [3, 4, 2]
        # hover: the unit's connections to the window it reads in the previous layer's shown maps
        xy = page.evaluate("([l, i]) => window.striate3d.clientPointOf(l, i)", [name, index])
        with page.expect_response(lambda r: "/api/explain" in r.url) as answer:
            page.mouse.move(*xy, steps=4)
        e = answer.value.json()
        key = e["input_key"]
        assert e["layer"] == name and e["index"] == index
        w = e["window"]
        inside = sum(0 <= r < w["input_shape"][0] and 0 <= c < w["input_shape"][1] for r in w["rows"] for c in w["cols"])
        shown = [t for t in e["top"] if t["channel"] < 16]
        page.wait_for_function("Number(document.body.dataset.connections) > 0")
        assert int(page.evaluate("document.body.dataset.connections")) == inside * len(shown)
        assert name in page.inner_text("#hover-line")
        shot_dir = os.environ.get("STRIATE_SCREENSHOT_DIR")
        if shot_dir:
            page.screenshot(path=os.path.join(shot_dir, "explain_3d.png"))
        pixels = np.frombuffer(page.locator("#scene").screenshot(), np.uint8)
        assert pixels.size > 10_000
        # click: the same panel as the 2D view, with the API's numbers
        with page.expect_response(lambda r: "/api/explain" in r.url and "top_k" not in r.url) as answer:
            page.mouse.down()
            page.mouse.up()
        page.wait_for_function("document.getElementById('explain-panel').dataset.state === 'ready'")
        e = answer.value.json()
        assert e["layer"] == name and e["index"] == index and e["input_key"] == key
        assert shown_numbers(page, "#explain-panel .ep-value .n.value") == [e["value"]]
        assert shown_numbers(page, "#explain-panel .tsum .n.term") == [t["term"] for t in e["top"]]
        x = served.standardize(app.extensions[KEY].inputs.get(key))
        assert e["value"] == explain_unit(served.model, x, name, tuple(index))["value"]
        if shot_dir:
            page.screenshot(path=os.path.join(shot_dir, "explain_3d_panel.png"))
        page.click("#ep-close")
        # turn with a drag, zoom with the wheel
        yaw, distance = (float(page.evaluate(f"document.body.dataset.{k}")) for k in ("yaw", "distance"))
        box = page.locator("#scene").bounding_box()
        page.mouse.move(box["x"] + 100, box["y"] + 100)
        page.mouse.down()
        page.mouse.move(box["x"] + 260, box["y"] + 140, steps=6)
        page.mouse.up()
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(100)
        assert float(page.evaluate("document.body.dataset.yaw")) == pytest.approx(yaw + 160 * 0.008, abs=0.02)
        assert float(page.evaluate("document.body.dataset.distance")) > distance
        assert page.locator("#explain-panel").is_hidden()         # a drag is not a click
        assert not problems, problems
        page.close()
