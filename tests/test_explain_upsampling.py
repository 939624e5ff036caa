"""st.vis.explain_unit on the upsampling layers: a transposed conv's units as the input pixels that
scatter onto them (swept over stride, padding, output_padding, dilation and groups), nearest and
bilinear resizing as their source pixels and weights, max unpooling as the pooled values sent back;
each explanation's own arithmetic gives the forward's number back."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.vis import explain_unit, format_explanation, record_forward
from striate.vis.explain import to_json

TOL = 1e-5


def _units(shape, rng, n):
    return [tuple(int(rng.integers(s)) for s in shape) for _ in range(n)]


@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 0, 0, 1, 2), (3, (1, 2), (2, 0), 1, 1), ((2, 3), (0, 2, 1, 0), (1, 2), 1, 3),
    (1, 2, 0, 2, 1), (2, 1, 1, (2, 1), 2), (3, 0, 1, 2, 6)])
def test_conv_transpose_units_are_the_pixels_that_scatter_onto_them(stride, padding, output_padding, dilation, groups):
    rng = np.random.default_rng(0)
    layer = nn.ConvTranspose2D(6, (3, 2), stride=stride, padding=padding, output_padding=output_padding,
                               dilation=dilation, groups=groups, bias_initializer="glorot_uniform", rng=1)
    model = nn.Sequential(layer).build((5, 4, 6))
    x = rng.normal(size=(5, 4, 6)).astype(np.float32)
    y = st.vis.activations(model, x)["0"]
    rec = record_forward(model, x)
    w = layer.w.data.astype(np.float64)
    og, per = w.shape[2], 6 // groups
    for r, c, k in _units(y.shape, rng, 25) + [(0, 0, 0), tuple(s - 1 for s in y.shape)]:
        e = explain_unit(model, None, "0", (r, c, k), top_k=2, record=rec)
        assert e["kind"] == "conv_transpose" and e["value"] == float(y[r, c, k])
        scale = float(np.abs(e["products"]).sum() + abs(e["bias"]))
        assert abs(e["result"] - e["value"]) <= TOL * max(1.0, scale)
        # the scatter rule, checked from the layer's own settings, not from the explanation
        sh, sw = layer.stride
        dh, dw = layer.dilation
        top, left = (layer.padding[0], layer.padding[2]) if len(layer.padding) == 4 else layer.padding
        want = sorted((i, j, u, v) for i in range(5) for j in range(4) for u in range(3) for v in range(2)
                      if i * sh - top + u * dh == r and j * sw - left + v * dw == c)
        got = [(*s["input"], *s["offset"]) for s in e["sources"]]
        assert got == want
        g = k // og
        assert list(e["channels"]) == list(range(g * per, (g + 1) * per))
        direct = float(layer.b.data[k]) + sum(float(x[i, j, ci]) * w[u, v, k % og, ci]
                                              for i, j, u, v in want for ci in e["channels"])
        assert e["result"] == pytest.approx(direct, rel=1e-12, abs=1e-12)
        shown = sum(t["term"] for t in e["top"]) + e["rest"] + e["bias"]
        assert shown == e["pre_activation"] == e["result"]
        assert len(e["top"]) + e["rest_count"] == per
        np.testing.assert_allclose(e["terms"], e["products"].sum(axis=0), rtol=1e-12)
        for s, p in zip(e["sources"], e["products"]):
            assert s["sum"] == pytest.approx(float(p.sum()), rel=1e-12, abs=1e-15)
        assert "scatter from" in format_explanation(e)


def test_an_output_padding_row_with_no_source_is_its_bias():
    # kernel 1, stride 2, output_padding 1: odd rows and columns receive no input pixel at all
    layer = nn.ConvTranspose2D(2, 1, stride=2, output_padding=1, bias_initializer="glorot_uniform", rng=3)
    model = nn.Sequential(layer).build((3, 3, 2))
    x = np.random.default_rng(4).normal(size=(3, 3, 2)).astype(np.float32)
    e = explain_unit(model, x, "0", (5, 5, 1))
    assert e["sources"] == [] and e["result"] == e["bias"] == float(layer.b.data[1]) != 0.0
    assert e["value"] == pytest.approx(e["result"], abs=1e-7)


@pytest.mark.parametrize("mode,align_corners,size", [
    ("nearest", False, 2), ("nearest", False, (13, 7)), ("nearest", False, 1.7), ("bilinear", False, 2),
    ("bilinear", True, 2), ("bilinear", False, (11, 5)), ("bilinear", True, (11, 17)), ("bilinear", False, 0.6)])
def test_upsample_units_are_weighted_source_pixels(mode, align_corners, size):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    kw = {"size": size} if isinstance(size, tuple) else {"scale_factor": size}
    model = nn.Sequential(nn.Upsample(mode=mode, align_corners=align_corners, **kw)).build((6, 9, 3))
    x = rng.normal(size=(6, 9, 3)).astype(np.float32)
    y = st.vis.activations(model, x)["0"]
    # PyTorch's interpolate as the reference for which pixels and weights make a unit
    tx = torch.tensor(x.astype(np.float64)).permute(2, 0, 1)[None]
    targs = {"mode": mode, **({"align_corners": align_corners} if mode == "bilinear" else {}), **kw}
    ref = torch.nn.functional.interpolate(tx, **targs)[0].permute(1, 2, 0).numpy()
    assert ref.shape == y.shape
    rec = record_forward(model, x)
    for index in _units(y.shape, rng, 30) + [(0, 0, 0), tuple(s - 1 for s in y.shape)]:
        e = explain_unit(model, None, "0", index, record=rec)
        assert e["kind"] == "upsample" and e["mode"] == mode
        assert abs(e["result"] - e["value"]) <= TOL * max(1.0, abs(e["value"]))
        assert e["result"] == pytest.approx(float(ref[index]), rel=1e-9, abs=1e-9)
        weights = [s["weight"] for s in e["sources"]]
        assert sum(weights) == pytest.approx(1.0, abs=1e-12) and all(wt > 0 for wt in weights)
        assert all(s["input"][2] == index[2] and s["x"] == float(x[s["input"]]) for s in e["sources"])
        if mode == "nearest":
            assert weights == [1.0]
        else:
            assert 1 <= len(weights) <= 4
        assert "interpolation" in format_explanation(e)


class PoolUnpool(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        y, switches = F.max_pool2d(x, self.kernel, self.stride, return_indices=True)
        return F.max_unpool2d(y, switches, self.kernel, self.stride, output_size=x.shape[1:3])


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 1), (3, 2)])
def test_max_unpool_units_are_the_pooled_values_sent_back(kernel, stride):
    rng = np.random.default_rng(6)
    model = PoolUnpool(kernel, stride).build((7, 7, 2))
    x = rng.normal(size=(7, 7, 2)).astype(np.float32)
    y = st.vis.activations(model, x)["PoolUnpool"]
    seen = set()
    for index in itertools.product(range(7), range(7), range(2)):
        e = explain_unit(model, x, "PoolUnpool", index)
        assert e["kind"] == "max_unpool" and e["switch"] == index[0] * 7 + index[1]
        assert abs(e["result"] - e["value"]) <= TOL * max(1.0, abs(e["value"]))
        seen.add(len(e["sources"]))
        if e["sources"]:    # each value sent here is the maximum of a window holding this cell
            assert all(s["x"] == float(x[index]) for s in e["sources"])
        else:
            assert e["result"] == 0.0
    assert 0 in seen and 1 in seen
    if stride < kernel:
        assert max(seen) > 1                    # overlapping windows that share a maximum add up
    to_json(e)


@pytest.mark.parametrize("name", ["unet", "fcn", "centernet"])
def test_the_upsampling_zoo_models_have_no_unexplained_layer(name):
    model = st.models.get(name, rng=0, num_classes=3)
    x = np.random.default_rng(7).normal(size=model.input_shape).astype(np.float32)
    rec = record_forward(model, x)
    kinds = {explain_unit(model, None, row.name, tuple(0 for _ in row.output_shape), record=rec)["kind"]
             for row in rec.rows}
    assert "other" not in kinds and kinds & {"conv_transpose", "upsample"}


def test_an_explanation_past_an_upsampling_is_json():
    # receptive fields below the input's pixel grid are Fractions; to_json makes them floats
    import json

    model = nn.Sequential(nn.Upsample(size=(11, 13), mode="bilinear")).build((4, 5, 2))
    x = np.random.default_rng(8).normal(size=(4, 5, 2)).astype(np.float32)
    e = explain_unit(model, x, "0", (5, 6, 1))
    top = e["receptive_field"]["box"][0]
    assert not isinstance(top, int)
    back = json.loads(json.dumps(to_json(e)))
    assert back["receptive_field"]["box"][0] == pytest.approx(float(top))
    assert back["result"] == pytest.approx(e["value"], abs=1e-6)


class Decoder(nn.Module):
    """Downsample, then a transposed conv and a bilinear resize back up: units finer than the image's pixels."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2D(4, 3, stride=2, padding=1, rng=0)
        self.up = nn.ConvTranspose2D(3, 3, stride=2, padding=1, output_padding=1, groups=1, rng=1)
        self.resize = nn.Upsample(scale_factor=1.5, mode="bilinear")
        self.pool, self.fc = nn.GlobalAvgPool2D(), nn.Dense(3, rng=2)  # class scores, for the served page

    def forward(self, x):
        return self.fc(self.pool(self.resize(self.up(self.down(x)))))


def test_api_explain_answers_for_the_upsampling_layers():
    pytest.importorskip("flask")
    pytest.importorskip("PIL")
    import base64

    from serve_helpers import png_bytes

    from striate.serve import ServedModel, create_app
    from striate.serve import preprocess as P

    served = ServedModel(Decoder().build((8, 8, 1)), (8, 8, 1), mean=[0.0], std=[1.0], name="decoder")
    client = create_app(served).test_client()
    from PIL import Image

    img = Image.fromarray((np.random.default_rng(9).uniform(size=(8, 8)) * 255).astype(np.uint8))
    image = "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()
    r = client.post("/api/predict", json={"image": image, "preprocess": "resize", "invert": False})
    assert r.status_code == 200, r.json
    key = r.json["input_key"]
    x = served.standardize(P.prepare(img, served.input_shape, mode="resize", invert=False))
    kinds = set()
    for layer, index in [("up", (7, 6, 2)), ("up", (0, 0, 0)), ("resize", (11, 5, 1)), ("resize", (3, 8, 0))]:
        r = client.get("/api/explain", query_string={"input": key, "layer": layer, "index": ",".join(map(str, index))})
        assert r.status_code == 200, r.json
        want = to_json(explain_unit(served.model, x, layer, index))
        for k, v in want.items():
            assert r.json[k] == v, (layer, k)
        assert r.json["value"] == pytest.approx(r.json["result"], rel=1e-5, abs=1e-6)
        kinds.add(r.json["kind"])
    assert kinds == {"conv_transpose", "upsample"}
