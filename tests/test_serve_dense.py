"""``striate serve`` with a localisation, detection or segmentation run: the app through its test
client on tiny models trained here in seconds. The dense view in a real browser is in
test_serve_dense_browser.py."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest

pytest.importorskip("flask")
pytest.importorskip("PIL")
pytest.importorskip("sklearn")   # the embedded digits the tiny runs learn from

import striate as st  # noqa: E402
from striate.data import images  # noqa: E402
from striate.serve import ModelFileError, ServedModel, create_app, load_served_model  # noqa: E402
from striate.serve.dense import ServedDense  # noqa: E402
from striate.training import load_checkpoint  # noqa: E402
from striate.training.dense_run import predict_dense  # noqa: E402
from striate.training.model_file import model_from_checkpoint  # noqa: E402

from serve_helpers import (ctrl_c_works, decode_data_url_png, draw_digit, draw_digits, png_bytes,  # noqa: E402
                           tiny_dense_run)


def data_url(img) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()


@pytest.fixture(scope="module")
def det_client():
    return create_app(load_served_model(tiny_dense_run("detection"))).test_client()


@pytest.fixture(scope="module")
def seg_client():
    return create_app(load_served_model(tiny_dense_run("segmentation"))).test_client()


@pytest.fixture(scope="module")
def lenet_client():
    return create_app(ServedModel(st.models.lenet5(rng=0), (28, 28, 1), name="lenet5")).test_client()


def reference(task, img, min_score=None):
    """What ``predict_dense`` answers for the picture resized to the model's input by striate's image
    path, with boxes scaled to the picture's pixels here."""
    ckpt = load_checkpoint(tiny_dense_run(task))
    model, meta = model_from_checkpoint(ckpt), ckpt.meta
    H, W, C = meta["input_shape"]
    x = images.prepare(img, (H, W, C), meta=meta, invert=False, mode="resize")
    p = predict_dense(model, meta, [np.round(x * 255).astype(np.uint8)])[0]
    if task == "segmentation":
        return p
    keep = p["scores"] >= min_score if min_score is not None else slice(None)
    w, h = img.size
    return p["boxes"][keep] * [w / W, h / H, w / W, h / H], p["scores"][keep], p["classes"][keep]


# ------------------------------------------------------------------------------------------ loading
def test_a_dense_run_is_served_as_a_dense_model_from_its_weights_or_its_folder():
    path = tiny_dense_run("detection")
    for source in (path, path.rsplit("/", 1)[0]):
        served = load_served_model(source)
        assert isinstance(served, ServedDense) and served.task == "detection"
        assert served.input_shape == (32, 32, 1) and served.class_names == [str(i) for i in range(10)]
    assert load_served_model(tiny_dense_run("segmentation")).task == "segmentation"


def test_a_folder_without_weights_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelFileError, match="folder without weights.npz or checkpoint.npz"):
        load_served_model(tmp_path)


def test_served_dense_checks_the_description():
    ckpt = load_checkpoint(tiny_dense_run("detection"))
    model = model_from_checkpoint(ckpt)
    with pytest.raises(ValueError, match="task='classification'"):
        ServedDense(model, dict(ckpt.meta, task="classification"))
    with pytest.raises(ValueError, match="standardisation"):
        ServedDense(model, dict(ckpt.meta, preprocess=None))


# ------------------------------------------------------------------------------------------ pages
def test_the_dense_view_replaces_the_classifier_views(det_client):
    r = det_client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/dense")
    html = det_client.get("/dense").get_data(as_text=True)
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S).group(1)
    assert re.findall(r'href="([^"]+)"', nav) == ["/dense", "/explorer", "/train"]
    assert ">Detect<" in nav and 'src="/static/js/dense.js"' in html and "{%" not in html
    assert det_client.get("/static/js/dense.js").status_code == 200
    assert det_client.get("/static/css/dense.css").status_code == 200
    for url in ("/explorer", "/train"):   # they do not depend on the served model
        assert det_client.get(url).status_code == 200
    r = det_client.get("/3d")
    text = r.get_data(as_text=True)
    assert r.status_code == 404 and "3D network is not available for this model" in text
    assert "needs a classifier" in text and "detection model" in text


def test_a_classifier_keeps_its_views_and_has_no_dense_view(lenet_client):
    html = lenet_client.get("/").get_data(as_text=True)
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S).group(1)
    assert re.findall(r'href="([^"]+)"', nav) == ["/", "/3d", "/explorer", "/train"]
    r = lenet_client.get("/dense")
    assert r.status_code == 404 and "needs a localisation, detection or segmentation model" in r.get_data(as_text=True)
    assert lenet_client.get("/api/model").json["task"] == "classification"


def test_model_description_gives_classes_colours_and_the_pen(det_client, seg_client):
    m = det_client.get("/api/model").json
    assert m["task"] == "detection" and m["input_shape"] == [32, 32, 1]
    assert m["classes"] == [str(i) for i in range(10)] and len(m["colours"]) == 10
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in m["colours"]) and len(set(m["colours"])) == 10
    assert 0.03 < m["stroke"] < 0.08 and 0 < m["digit_size"][0] < m["digit_size"][1] < 1
    s = seg_client.get("/api/model").json
    assert s["task"] == "segmentation" and s["classes"][0] == "background" and len(s["colours"]) == 11
    # a digit has the same colour as a box (detection) and as mask pixels (segmentation)
    assert s["colours"][1:] == m["colours"]


# ------------------------------------------------------------------------------------------ answers
def test_detection_boxes_are_in_the_canvas_pixels(det_client):
    img = draw_digits((384, 192), width=20)     # not the model's shape: x scales by 12, y by 6
    r = det_client.post("/api/dense", json={"image": data_url(img), "invert": False, "min_score": 0.05})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["task"] == "detection" and (body["width"], body["height"]) == (384, 192)
    boxes, scores, classes = reference("detection", img, 0.05)
    assert len(body["boxes"]) == len(boxes) > 0
    np.testing.assert_allclose([b["box"] for b in body["boxes"]], boxes, atol=0.01)
    np.testing.assert_allclose([b["score"] for b in body["boxes"]], scores, atol=1e-4)
    assert [b["index"] for b in body["boxes"]] == classes.tolist()
    assert [b["class"] for b in body["boxes"]] == [str(c) for c in classes]
    for b in body["boxes"]:                 # centres on the canvas (an untrained box may reach past its edge)
        x0, y0, x1, y1 = b["box"]
        assert x0 <= x1 and y0 <= y1 and 0 <= (x0 + x1) / 2 <= 384 and 0 <= (y0 + y1) / 2 <= 192, b
    assert decode_data_url_png(body["input"]).shape == (32, 32)          # what the model saw
    assert body["ms"] >= body["compute_ms"] > 0


def test_min_score_keeps_only_the_boxes_above_it(det_client):
    url = data_url(draw_digits())
    low = det_client.post("/api/dense", json={"image": url, "min_score": 0.05}).json["boxes"]
    high = det_client.post("/api/dense", json={"image": url, "min_score": 0.95}).json["boxes"]
    assert all(b["score"] >= 0.95 for b in high) and len(high) <= len(low)
    assert [b for b in low if b["score"] >= 0.95] == high
    raw = det_client.post("/api/dense", data=png_bytes(draw_digits()), query_string={"min_score": "0.05"},
                          content_type="image/png").json["boxes"]
    assert raw == low


def test_segmentation_mask_is_a_png_of_class_colours(seg_client):
    img = draw_digits()
    body = seg_client.post("/api/dense", json={"image": data_url(img)}).json
    assert body["task"] == "segmentation" and body["mask_shape"] == [32, 32] and "boxes" not in body
    rgba = decode_data_url_png(body["mask"])
    assert rgba.shape == (32, 32, 4)
    truth = reference("segmentation", img)
    colours = seg_client.get("/api/model").json["colours"]
    for c in np.unique(truth):
        px = rgba[truth == c]
        if c == 0:
            assert (px[:, 3] == 0).all()                     # background: transparent
        else:
            assert (px[:, 3] == 255).all()
            assert (px[:, :3] == [int(colours[c][i:i + 2], 16) for i in (1, 3, 5)]).all()
    present = {p["index"]: p["fraction"] for p in body["present"]}
    expected = {int(c): round(float(np.mean(truth == c)), 4) for c in np.unique(truth) if c != 0}
    assert present == expected


def test_localisation_gives_one_box_whatever_its_score():
    client = create_app(load_served_model(tiny_dense_run("localisation"))).test_client()
    assert client.get("/api/model").json["task"] == "localisation"
    body = client.post("/api/dense", json={"image": data_url(draw_digit("7", size=300)), "min_score": 1}).json
    assert len(body["boxes"]) == 1
    x0, y0, x1, y1 = body["boxes"][0]["box"]
    assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 300


# ------------------------------------------------------------------------------------------ errors
BAD = [
    ("empty", dict(data=b""), "holds no image"),
    ("text", dict(data=b"hello, not a picture", content_type="text/plain"), "not an image"),
    ("json without image", dict(json={"picture": "x"}), "'image' data URL"),
    ("broken json", dict(data=b"{not json", content_type="application/json"), "cannot be parsed"),
    ("bad base64", dict(json={"image": "data:image/png;base64,@@@"}), "not valid base64"),
    ("blank canvas", dict(json={"image": data_url(draw_digit("blank", size=384))}), "blank"),
    ("min_score too large", dict(json={"image": data_url(draw_digits()), "min_score": 2}), "min_score must be"),
    ("min_score not a number", dict(json={"image": data_url(draw_digits()), "min_score": "high"}), "min_score must"),
    ("min_score a bool", dict(json={"image": data_url(draw_digits()), "min_score": True}), "min_score must"),
    ("bad invert", dict(json={"image": data_url(draw_digits()), "invert": "maybe"}), "invert must be"),
    ("unknown option", dict(json={"image": data_url(draw_digits()), "preprocess": "digit"}),
     "takes the options invert and min_score. Received: preprocess"),
]


@pytest.mark.parametrize("what,kwargs,message", BAD, ids=[b[0] for b in BAD])
def test_bad_bodies_get_400_one_line(det_client, what, kwargs, message):
    r = det_client.post("/api/dense", **kwargs)
    assert r.status_code == 400, (what, r.status_code, r.get_data(as_text=True)[:300])
    assert r.is_json and set(r.json) == {"error"} and message in r.json["error"], r.json
    assert "Traceback" not in r.get_data(as_text=True) and "\n" not in r.json["error"]


def test_classifier_routes_refuse_a_dense_model_in_one_line(seg_client):
    url = data_url(draw_digits())
    unit = {"query_string": {"input": "x", "layer": "a", "index": "0"}}
    for method, path, kwargs in [("post", "/api/predict", {"json": {"image": url}}), ("get", "/api/explain", unit),
                                 ("get", "/api/gradient", unit)]:
        r = getattr(seg_client, method)(path, **kwargs)
        assert r.status_code == 400 and set(r.json) == {"error"}, (path, r.json)
        assert f"{method.upper()} {path} answers for classification models" in r.json["error"]
        assert "segmentation model: POST /api/dense answers for it" in r.json["error"]
    assert seg_client.get("/api/conv", query_string={"input": 7, "kernel": 3}).json["output"] == 5


def test_the_dense_route_refuses_a_classifier_in_one_line(lenet_client):
    r = lenet_client.post("/api/dense", json={"image": data_url(draw_digit("7"))})
    assert r.status_code == 400
    assert r.json["error"] == ("POST /api/dense answers for localisation, detection or segmentation models; the "
                               "served model lenet5 is a classification model: POST /api/predict answers for it, "
                               "and the page at / shows it.")


# ------------------------------------------------------------------------------------------ the command
def test_cli_serves_a_run_folder_of_a_segmenter_and_says_what_it_is(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.dirname(tiny_dense_run("segmentation"))
    env = dict(os.environ, STRIATE_CACHE=str(tmp_path), PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "striate", "serve", "--port", "0", "--checkpoint", folder,
                             "--runs", str(tmp_path / "runs")], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_works)
    try:
        line, deadline = "", time.time() + 120
        while time.time() < deadline and " at http://" not in line:
            line = proc.stdout.readline()
            if not line:
                break
        assert "serving fcn (segmentation, 32x32x1 input, 10 classes) at http://127.0.0.1:" in line, line
        url = re.search(r"(http://\S+/)", line).group(1)
        with urllib.request.urlopen(url + "api/model", timeout=30) as r:
            assert json.load(r)["task"] == "segmentation"
        req = urllib.request.Request(url + "api/dense", data=png_bytes(draw_digits()),
                                     headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.load(r)["mask_shape"] == [32, 32]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
