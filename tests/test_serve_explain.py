"""``GET /api/explain`` and ``GET /api/gradient`` of ``striate serve`` through Flask's test client:
the answers equal :func:`striate.vis.explain_unit` / :func:`striate.vis.explain_gradient` on the same
prepared image, a forward is recorded once per image, and bad requests are one-line JSON 400s.
Serving an ONNX file is tested here too. The browser test is test_serve_browser.py."""
from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("flask")
pytest.importorskip("PIL")

import striate as st  # noqa: E402
from striate import nn  # noqa: E402
from striate.serve import ModelFileError, ServedModel, create_app, load_served_model  # noqa: E402
from striate.serve import preprocess as P  # noqa: E402
from striate.vis import explain_gradient, explain_unit, to_json  # noqa: E402

from serve_helpers import draw_digit, png_bytes  # noqa: E402


def data_url(img) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()


class Pools(nn.Module):
    """A max and an average pool side by side, concatenated along the channels."""

    def __init__(self):
        super().__init__()
        self.maxp, self.avgp = nn.MaxPool2D(2), nn.AvgPool2D(2)

    def forward(self, x):
        return st.functional.concat([self.maxp(x), self.avgp(x)], axis=-1)


class Branches(nn.Module):
    """conv -> batch norm -> relu, a max and an average pool concatenated, a residual add, dense."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 3, padding="same", rng=0)
        self.bn = nn.BatchNorm()
        self.relu = nn.ReLU()
        self.grouped = nn.Conv2D(4, 3, padding=2, dilation=2, groups=2, rng=1)
        self.relu2 = nn.ReLU()
        self.pools = Pools()
        self.flat = nn.Flatten()
        self.fc = nn.Dense(5, rng=2)

    def forward(self, x):
        y = self.relu(self.bn(self.conv(x)))
        y = self.relu2(y + self.grouped(y))
        y = self.pools(y)
        return self.fc(self.flat(y))


@pytest.fixture(scope="module")
def branches():
    model = Branches()
    model.build((12, 12, 1))
    rng = np.random.default_rng(0)
    model.bn.running_mean[...] = rng.normal(size=4).astype(np.float32)
    model.bn.running_var[...] = rng.uniform(0.5, 2, size=4).astype(np.float32)
    return ServedModel(model, (12, 12, 1), mean=[0.2], std=[0.3], name="branches")


@pytest.fixture(scope="module")
def app(branches):
    return create_app(branches)


def send(client, img, **extra):
    r = client.post("/api/predict", json={"image": data_url(img), "preprocess": "resize", "invert": False, **extra})
    assert r.status_code == 200, r.json
    return r.json["input_key"]


def prepared(served, img):
    x = P.prepare(img, served.input_shape, mode="resize", invert=False)
    return served.standardize(x)


def test_api_explain_equals_explain_unit_for_every_layer(app, branches):
    client = app.test_client()
    img = draw_digit("7", size=48, width=5)
    key = send(client, img)
    x = prepared(branches, img)
    rng = np.random.default_rng(1)
    kinds = set()
    for layer in branches.layers:
        shape = layer["shape"]
        for _ in range(3):
            index = tuple(int(rng.integers(0, s)) for s in shape)
            r = client.get("/api/explain", query_string={"input": key, "layer": layer["name"],
                                                          "index": ",".join(map(str, index))})
            assert r.status_code == 200, r.json
            got = r.json
            want = to_json(explain_unit(branches.model, x, layer["name"], index))
            for k, v in want.items():      # every field of the library's answer, the same numbers (JSON keeps floats exact)
                assert got[k] == v, (layer["name"], k)
            kinds.add(got["kind"])
            kinds.update(["add"] if "add" in got else [])
            assert got["value"] == pytest.approx(got["result"], rel=1e-5, abs=1e-6)
    assert {"conv", "batch_norm", "relu", "max_pool", "avg_pool", "concat", "dense", "add"} <= kinds, kinds


def test_conv_animation_sums_are_the_neighbours_channel_terms(app, branches):
    client = app.test_client()
    img = draw_digit("0", size=48, width=5)
    key = send(client, img)
    x = prepared(branches, img)
    for layer, index in [("conv", (0, 11, 2)), ("grouped", (5, 6, 3))]:
        r = client.get("/api/explain", query_string={"input": key, "layer": layer, "index": ",".join(map(str, index))})
        a = r.json["animation"]
        assert a["channel"] == r.json["top"][0]["channel"]
        assert a["sums"][a["unit"][0]][a["unit"][1]] == pytest.approx(r.json["top"][0]["term"], abs=1e-9)
        for i, row in enumerate(a["rows"]):           # each cell: that unit's term for the same input channel
            for j, col in enumerate(a["cols"]):
                e = explain_unit(branches.model, x, layer, (row, col, index[2]), top_k=64)
                term = e["terms"][list(e["channels"]).index(a["channel"])]
                assert a["sums"][i][j] == pytest.approx(term, abs=1e-9), (layer, row, col)
        padded = [v for line in a["input"] for v in line if v is None]
        assert (index == (0, 11, 2)) == bool(padded)    # the corner unit reads the zero padding


def test_a_forward_is_recorded_once_per_image(branches):
    client = create_app(branches).test_client()
    k1 = send(client, draw_digit("1", size=48, width=5))
    q = {"input": k1, "layer": "conv", "index": "3,3,0"}
    assert client.get("/api/explain", query_string=q).json["recorded_now"] is True
    assert client.get("/api/explain", query_string={**q, "index": "4,4,1"}).json["recorded_now"] is False
    k2 = send(client, draw_digit("0", size=48, width=5))
    assert k2 != k1
    assert client.get("/api/explain", query_string={**q, "input": k2}).json["recorded_now"] is True
    assert send(client, draw_digit("1", size=48, width=5)) == k1          # same prepared image, same key


def test_api_gradient_equals_explain_gradient(app, branches):
    client = app.test_client()
    img = draw_digit("7", size=48, width=5)
    key = send(client, img)
    x = prepared(branches, img)
    for layer, index in [("conv", (4, 5, 1)), ("bn", (2, 2, 3)), ("fc", (2,))]:
        r = client.get("/api/gradient", query_string={"input": key, "layer": layer,
                                                       "index": ",".join(map(str, index)), "target": 3, "maps": 2})
        assert r.status_code == 200, r.json
        g = to_json(explain_gradient(branches.model, x, layer, index, target=3))
        assert r.json["target"] == 3 and r.json["grad"] == pytest.approx(g["grad"], abs=1e-12)
        for k in ("weight_grad", "weight_grad_via_unit", "bias_grad", "pre_activation_grad", "gamma_grad", "beta_grad",
                  "top_weights"):
            if k in g:
                assert r.json[k] == g[k], (layer, k)
        maps = {m["name"]: m for m in r.json["layers"]}
        assert set(maps) <= {layer["name"] for layer in branches.layers} and "conv" in maps
        assert len(maps["conv"]["maps"]) == 2 and maps["conv"]["min"] == pytest.approx(np.min(g["gradients"]["conv"]))


@pytest.mark.parametrize("query, needle", [
    ({"layer": "nope", "index": "0,0,0"}, "no layer named 'nope'"),
    ({"layer": "conv", "index": "12,0,0"}, "index must be (row, col, channel)"),
    ({"layer": "fc", "index": "1,2,3"}, "index must be (unit,)"),
    ({"layer": "conv", "index": "a,b"}, "index must be comma-separated integers"),
    ({"layer": "conv", "index": "1,1,1", "top_k": "0"}, "top_k must be between"),
    ({"layer": "conv", "index": "1,1,1", "input": "stale"}, "no image is known under input='stale'"),
    ({"layer": "conv", "index": "1,1,1", "channel": "9"}, "channel must be one of the input channels"),
])
def test_bad_explain_requests_are_one_line_400s(app, query, needle):
    client = app.test_client()
    key = send(client, draw_digit("7", size=48, width=5))
    r = client.get("/api/explain", query_string={"input": key, **query})
    assert r.status_code == 400 and r.is_json
    assert needle in r.json["error"] and "\n" not in r.json["error"] and "Traceback" not in r.get_data(as_text=True)


@pytest.mark.parametrize("query, needle", [
    ({"target": "99"}, "target must be between 0 and 4"),
    ({"target": "dog"}, "target must be a class index"),
    ({"maps": "-1"}, "maps must be between"),
])
def test_bad_gradient_requests_are_one_line_400s(app, query, needle):
    client = app.test_client()
    key = send(client, draw_digit("7", size=48, width=5))
    r = client.get("/api/gradient", query_string={"input": key, "layer": "conv", "index": "1,1,1", **query})
    assert r.status_code == 400 and needle in r.json["error"] and "\n" not in r.json["error"]


def test_a_model_without_a_spatial_input_is_refused(tmp_path):
    pytest.importorskip("onnx")
    mlp = nn.Sequential(nn.Dense(8, rng=0), nn.ReLU(), nn.Dense(3, rng=1)).build((20,))
    path = tmp_path / "mlp.onnx"
    st.onnx.export(mlp, path, (20,))
    with pytest.raises(ModelFileError, match="needs a spatial input"):
        load_served_model(path)


def test_an_onnx_file_is_served_and_explained(tmp_path):
    pytest.importorskip("onnx")
    model = st.models.lenet5(rng=0)
    model.build((28, 28, 1))
    path = tmp_path / "lenet5.onnx"
    st.onnx.export(model, path, (28, 28, 1), class_names=[f"c{i}" for i in range(10)])
    served = load_served_model(path)
    assert served.input_shape == (28, 28, 1) and served.class_names[3] == "c3" and "ONNX" in served.source
    client = create_app(served).test_client()
    img = draw_digit("7")
    r = client.post("/api/predict", json={"image": data_url(img), "preprocess": "digit", "invert": False})
    x = P.prepare(img, (28, 28, 1), mode="digit", invert=False)
    want = st.functional.softmax(model(st.Tensor(x[None]))).data[0]
    np.testing.assert_allclose(r.json["probabilities"], want, atol=1e-5)   # the imported graph computes the same
    layer = served.layers[0]["name"]
    e = client.get("/api/explain", query_string={"input": r.json["input_key"], "layer": layer, "index": "10,10,2"}).json
    assert e["kind"] == "conv" and e["value"] == pytest.approx(e["result"], abs=1e-5)
    assert e["value"] == pytest.approx(float(st.vis.activations(served.model, x)[layer][10, 10, 2]), abs=1e-6)


def test_a_missing_onnx_file_is_one_line():
    with pytest.raises(ModelFileError, match="No ONNX file"):
        load_served_model("/nonexistent/model.onnx")


def test_a_zoo_model_with_saved_weights_is_explained(tmp_path):
    """A zoo ResNet (batch norm, residual sums) from a weights file: the page's answers are the library's."""
    from striate.training import save_weights

    args = {"num_classes": 10, "input_shape": [32, 32, 3]}
    model = st.models.get("resnet20", rng=3, **args)
    rng = np.random.default_rng(3)
    for name, m in model.named_modules():                  # running statistics that are not the identity
        if isinstance(m, nn.BatchNorm) and m.running_mean is not None:
            m.running_mean[...] = rng.normal(0, 0.1, m.running_mean.shape)
            m.running_var[...] = rng.uniform(0.5, 1.5, m.running_var.shape)
    path = tmp_path / "weights.npz"
    save_weights(path, model, meta={"model": {"name": "resnet20", "args": args}, "input_shape": [32, 32, 3]})
    served = load_served_model(path)
    client = create_app(served).test_client()
    picture = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    from PIL import Image
    key = send(client, Image.fromarray(picture))
    x = prepared(served, Image.fromarray(picture))
    names = [layer["name"] for layer in served.layers]
    for layer, index in [("conv1", (0, 31, 4)), ("bn1", (3, 3, 3)), ("layer1.0.relu2", (5, 6, 7)),
                         ("layer2.0.conv1", (2, 9, 20)), ("fc", (4,))]:
        assert layer in names, names
        got = client.get("/api/explain", query_string={"input": key, "layer": layer,
                                                        "index": ",".join(map(str, index))}).json
        want = to_json(explain_unit(served.model, x, layer, index))
        assert all(got[k] == v for k, v in want.items()), layer
        assert got["value"] == pytest.approx(got["result"], rel=1e-4, abs=1e-5)
        if layer == "layer1.0.relu2":
            assert got["kind"] == "relu" and len(got["add"]["operands"]) == 2    # the residual sum's operands
