"""st.vis.explain_unit: the explained terms give back the forward's own numbers for every layer type
(grouped, dilated, strided, padded convs; batch norm; pooling; residual adds; concatenations; dense;
softmax), for fused Sequentials, and for every model of the zoo; bad input gets one clear line."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.vis import explain_unit, record_forward

TOL = 1e-5


def _randomize_norms(model, rng):
    """Batch norms with running statistics and affine parameters far from the identity."""
    for m in model.modules():
        if type(m) is nn.BatchNorm:
            c = m.num_features
            m.running_mean[:] = rng.normal(size=c)
            m.running_var[:] = rng.uniform(0.2, 3.0, size=c)
            m.gamma.data[:] = rng.normal(size=c)
            m.beta.data[:] = rng.normal(size=c)
    return model


def _scale(e) -> float:
    """What float32 rounding is relative to: the sum of the magnitudes the forward added up."""
    if e["kind"] == "conv":
        return float(np.abs(e["products"]).sum() + abs(e["bias"]))
    if e["kind"] == "dense":
        return float(np.abs(e["terms"]).sum() + abs(e["bias"]))
    return abs(e["value"])


def check_explanation(e, acts):
    """``e`` is right: its value is the forward's, and its own arithmetic gives that value back."""
    assert e["value"] == float(acts[e["layer"]][e["index"]])
    assert e["result"] is not None, e
    assert abs(e["result"] - e["value"]) <= TOL * max(1.0, _scale(e)), (e["layer"], e["kind"], e["result"], e["value"])
    if e["kind"] in ("conv", "dense"):
        shown = sum(t["term"] for t in e["top"]) + e["rest"] + e["bias"]
        assert shown == e["pre_activation"]                      # the shown terms add up, exactly
        np.testing.assert_allclose(e["terms"].sum() + e["bias"], e["pre_activation"], rtol=1e-12, atol=1e-12)
        assert len(e["top"]) + e["rest_count"] == len(e["terms"])
        mags = [abs(t["term"]) for t in e["top"]]
        assert mags == sorted(mags, reverse=True)
    if e["kind"] == "conv":
        np.testing.assert_array_equal(e["products"], e["patch"] * e["kernel"])
        np.testing.assert_allclose(e["terms"], e["products"].sum(axis=(0, 1)), rtol=1e-12)
        assert not e["patch"][~e["window"]["inside"]].any()      # padding reads zeros


def explain_everywhere(model, x, units_per_layer=3, seed=0):
    """Explain random units of every layer; returns the explanations (each checked)."""
    rng = np.random.default_rng(seed)
    acts = st.vis.activations(model, x)
    rec = record_forward(model, x)
    out = []
    for row in rec.rows:
        for _ in range(units_per_layer):
            index = tuple(int(rng.integers(s)) for s in row.output_shape)
            e = explain_unit(model, x, row.name, index, top_k=4, record=rec)
            check_explanation(e, acts)
            out.append(e)
    return out


# --------------------------------------------------------------------------- every layer type
def zoo_of_layers(seed=0):
    """One Sequential with every layer type and conv geometry: grouped, dilated, strided, padded."""
    layers = [
        nn.Conv2D(8, 3, padding="same", rng=seed), nn.BatchNorm(), nn.ReLU(),
        nn.Conv2D(8, 3, stride=2, padding=(1, 2), groups=4, rng=seed + 1), nn.LeakyReLU(0.1),
        nn.Conv2D(6, 3, dilation=2, padding=2, groups=2, activation="relu", rng=seed + 2),
        nn.Conv2D(6, (2, 3), stride=(1, 2), padding=(0, 0, 1, 2), rng=seed + 3), nn.Tanh(),
        nn.MaxPool2D(3, stride=1, padding=1), nn.AvgPool2D(3, stride=1, padding=1),
        nn.AvgPool2D(2, stride=1, padding="same", count_include_pad=False),
        nn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0), nn.Sigmoid(), nn.Dropout(0.5),
        nn.MaxPool2D(2, padding="same"), nn.Flatten(), nn.Dense(7, rng=seed + 4), nn.BatchNorm(),
        nn.Dense(5, activation="tanh", rng=seed + 5), nn.Softmax(),
    ]
    return nn.Sequential(*layers).build((11, 13, 3))


def test_every_layer_type_is_explained_exactly():
    rng = np.random.default_rng(0)
    model = _randomize_norms(zoo_of_layers(), rng)
    x = rng.normal(size=(11, 13, 3)).astype(np.float32)
    kinds = {(e["type"], e["kind"]) for e in explain_everywhere(model, x, units_per_layer=6)}
    assert kinds == {("Conv2D", "conv"), ("BatchNorm", "batch_norm"), ("ReLU", "relu"), ("LeakyReLU", "leaky_relu"),
                     ("Tanh", "tanh"), ("MaxPool2D", "max_pool"), ("AvgPool2D", "avg_pool"),
                     ("LocalResponseNorm", "local_response_norm"), ("Sigmoid", "sigmoid"), ("Dropout", "identity"),
                     ("Flatten", "flatten"), ("Dense", "dense"), ("Softmax", "softmax")}


def test_float64_models_are_explained_to_float64_precision():
    rng = np.random.default_rng(1)
    model = _randomize_norms(zoo_of_layers(1), rng).astype(np.float64)
    x = rng.normal(size=(11, 13, 3))
    for e in explain_everywhere(model, x):
        assert abs(e["result"] - e["value"]) <= 1e-12 * max(1.0, _scale(e))


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, "valid", 1, 1), (2, "same", 1, 1), (1, 2, 2, 1), (3, (1, 0), 1, 3), (2, "same", 3, 6), ((1, 2), 1, (2, 1), 2),
])
def test_conv_window_patch_and_terms(stride, padding, dilation, groups):
    rng = np.random.default_rng(2)
    conv = nn.Conv2D(12, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, rng=3)
    model = nn.Sequential(conv).build((9, 10, 6))
    conv.b.data[:] = rng.normal(size=12)
    x = rng.normal(size=(9, 10, 6)).astype(np.float32)
    y = st.vis.activations(model, x)["0"]
    for r, c, k in [(0, 0, 0), (y.shape[0] - 1, y.shape[1] - 1, 11), (y.shape[0] // 2, 0, 7)]:
        e = explain_unit(model, x, "0", (r, c, k))
        check_explanation(e, {"0": y})
        cg = 6 // groups
        g = k // (12 // groups)
        assert e["channels"].tolist() == list(range(g * cg, (g + 1) * cg))   # the group's input channels
        assert e["terms"].shape == (cg,)
        # the window, computed here from the layer's geometry: rows r*s - pad_top + i*d
        sh, sw = conv.stride
        dh, dw = conv.dilation
        pads = e["window"]["padding"]
        assert e["window"]["rows"] == [r * sh - pads[0] + i * dh for i in range(3)]
        assert e["window"]["cols"] == [c * sw - pads[2] + j * dw for j in range(3)]
        for i, row in enumerate(e["window"]["rows"]):
            for j, col in enumerate(e["window"]["cols"]):
                inside = 0 <= row < 9 and 0 <= col < 10
                assert e["window"]["inside"][i, j] == inside
                want = x[row, col, g * cg:(g + 1) * cg] if inside else np.zeros(cg)
                np.testing.assert_array_equal(e["patch"][i, j], want)
        np.testing.assert_array_equal(e["kernel"], conv.w.data[:, :, :, k])


def test_top_k_and_rest_add_up_exactly_with_many_channels():
    rng = np.random.default_rng(4)
    model = nn.Sequential(nn.Conv2D(5, 3, padding=1, rng=0)).build((6, 6, 64))
    x = rng.normal(size=(6, 6, 64)).astype(np.float32)
    e = explain_unit(model, x, "0", (2, 3, 4), top_k=5)
    assert len(e["top"]) == 5 and e["rest_count"] == 59
    order = np.argsort(-np.abs(e["terms"]))[:5]
    assert [t["channel"] for t in e["top"]] == order.tolist()
    assert sum(t["term"] for t in e["top"]) + e["rest"] + e["bias"] == e["pre_activation"]
    for t in e["top"]:
        np.testing.assert_array_equal(t["products"], t["patch"] * t["kernel"])
        assert t["term"] == pytest.approx(float(t["products"].sum()), rel=1e-12)


def test_conv_with_its_own_activation_gives_pre_and_post():
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.Conv2D(4, 3, activation="relu", rng=0)).build((5, 5, 2))
    model[0].b.data[:] = [-5.0, 5.0, 0.0, 0.0]
    x = rng.normal(size=(5, 5, 2)).astype(np.float32)
    dead = explain_unit(model, x, "0", (1, 1, 0))
    alive = explain_unit(model, x, "0", (1, 1, 1))
    assert dead["activation"] == "relu" and dead["pre_activation"] < 0 and dead["value"] == 0.0 == dead["result"]
    assert alive["pre_activation"] > 0 and alive["value"] == pytest.approx(alive["pre_activation"], rel=1e-6)


def test_max_and_average_pooling_windows():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(5, 5, 2) % 7 - 3
    model = nn.Sequential(nn.MaxPool2D(3, stride=2, padding=1), nn.AvgPool2D(2, stride=1, padding=1)).build((5, 5, 2))
    e = explain_unit(model, x, "0", (0, 0, 1))
    assert np.isneginf(e["patch"][0]).all() and np.isneginf(e["patch"][:, 0]).all()   # padding never wins
    assert e["max"] == x[0:2, 0:2, 1].max() == e["value"]
    i, j = e["argmax"]
    assert e["patch"][i, j] == e["max"] and e["argmax_input"][:2] == (e["window"]["rows"][i], e["window"]["cols"][j])
    a = explain_unit(model, x, "1", (0, 0, 0))
    pooled = st.vis.activations(model, x)["0"]
    assert a["divisor"] == 4.0 and a["count_include_pad"]                  # padded zeros count, as striate does
    assert a["sum"] == pytest.approx(float(pooled[0, 0, 0]))
    assert a["value"] == pytest.approx(pooled[0, 0, 0] / 4, rel=1e-6)


def test_batch_norm_formula_numbers():
    rng = np.random.default_rng(6)
    model = _randomize_norms(nn.Sequential(nn.BatchNorm()).build((3, 3, 4)), rng)
    x = rng.normal(size=(3, 3, 4)).astype(np.float32)
    e = explain_unit(model, x, "0", (1, 2, 3))
    bn = model[0]
    assert (e["x"], e["mean"], e["var"], e["gamma"], e["beta"], e["eps"]) == (
        float(x[1, 2, 3]), float(bn.running_mean[3]), float(bn.running_var[3]), float(bn.gamma.data[3]),
        float(bn.beta.data[3]), bn.eps)
    assert e["value"] == pytest.approx((e["x"] - e["mean"]) / np.sqrt(e["var"] + e["eps"]) * e["gamma"] + e["beta"],
                                       rel=1e-6)


def test_logits_carry_their_softmax():
    rng = np.random.default_rng(7)
    model = nn.Sequential(nn.Flatten(), nn.Dense(6, rng=0)).build((3, 3, 2))
    x = rng.normal(size=(3, 3, 2)).astype(np.float32)
    e = explain_unit(model, x, "1", (2,))
    s = e["softmax"]
    logits = model(st.Tensor(x[None])).data[0]
    np.testing.assert_allclose(s["logits"], logits)
    np.testing.assert_allclose(s["exps"], np.exp(logits.astype(np.float64) - logits.max()))
    assert s["sum"] == pytest.approx(s["exps"].sum())
    np.testing.assert_allclose(s["probs"], F.softmax(st.Tensor(logits[None])).data[0], rtol=1e-6)
    # a dense input that comes from flattened maps says where it sits in them
    top = e["top"][0]
    assert x[top["source_index"]] == np.float32(top["x"])


# --------------------------------------------------------------------------- residual adds, concatenations
class Merge(nn.Module):
    """relu(a(x) + b(x)) next to concat(c(x), x): a residual add without a layer, and a concat."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2D(3, 3, padding=1, rng=0), nn.Conv2D(3, 1, rng=1), nn.Conv2D(2, 1, rng=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return F.concat([self.relu(self.a(x) + self.b(x)), self.c(x), x], axis=-1)


def test_residual_add_and_concat_show_their_operands():
    rng = np.random.default_rng(8)
    model = nn.Sequential(Merge()).build((5, 5, 3))
    x = rng.normal(size=(5, 5, 3)).astype(np.float32)
    acts = st.vis.activations(model, x)
    e = explain_unit(model, x, "0.relu", (2, 2, 1))
    assert [o["layer"] for o in e["add"]["operands"]] == ["0.a", "0.b"]
    assert [o["value"] for o in e["add"]["operands"]] == [float(acts["0.a"][2, 2, 1]), float(acts["0.b"][2, 2, 1])]
    assert e["x"] == pytest.approx(sum(o["value"] for o in e["add"]["operands"]), rel=1e-6)
    cat = explain_unit(model, x, "0", (1, 3, 4))                   # the merging module's own row: its concat
    assert cat["kind"] == "concat"
    assert [(o["layer"], o["start"], o["stop"]) for o in cat["operands"]] == [
        ("0.relu", 0, 3), ("0.c", 3, 5), ("input", 5, 8)]
    assert cat["operand"] == 1 and cat["operand_index"] == (1, 3, 1) and cat["value"] == float(acts["0.c"][1, 3, 1])
    check_explanation(explain_unit(model, x, "0", (0, 4, 6)), acts)


def test_resnet_block_sum_names_its_two_paths():
    model = st.models.resnet20(rng=0, num_classes=10)
    x = np.random.default_rng(9).normal(size=(32, 32, 3)).astype(np.float32)
    e = explain_unit(model, x, "layer2.0.relu2", (4, 5, 6))
    assert [o["layer"] for o in e["add"]["operands"]] == ["layer2.0.bn2", "layer2.0.shortcut"]
    assert e["result"] == max(0.0, e["x"]) and e["x"] == pytest.approx(sum(o["value"] for o in e["add"]["operands"]),
                                                                       rel=1e-6, abs=1e-6)


# --------------------------------------------------------------------------- fused layers
def fused_sequential(seed=0):
    return nn.Sequential(nn.Conv2D(6, 3, padding=1, use_bias=False, rng=seed), nn.BatchNorm(), nn.ReLU(),
                         nn.MaxPool2D(2), nn.Conv2D(8, 3, rng=seed + 1), nn.BatchNorm(), nn.ReLU(),
                         nn.BatchNorm(), nn.ReLU(), nn.Flatten(), nn.Dense(4, rng=seed + 2)).build((10, 10, 3))


def test_fused_sequential_is_explained_layer_by_layer_and_matches_the_fused_forward():
    rng = np.random.default_rng(10)
    model = _randomize_norms(fused_sequential(), rng).eval()
    x = rng.normal(size=(10, 10, 3)).astype(np.float32)
    steps = [type(s).__name__ for s in model._steps()]
    assert "ConvBatchNorm" in steps                                 # inference runs conv + BN + ReLU as one op
    with st.no_grad():
        fused = model(st.Tensor(x[None]))
    es = explain_everywhere(model, x, units_per_layer=4)
    assert [e["type"] for e in es[::4]] == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Conv2D", "BatchNorm", "ReLU",
                                            "BatchNorm", "ReLU", "Flatten", "Dense"]
    for k in range(4):                                              # the explained logits are the fused forward's
        e = explain_unit(model, x, "10", (k,))
        assert abs(e["result"] - float(fused.data[0, k])) <= TOL * max(1.0, _scale(e))


def test_folded_batch_norm_is_named():
    rng = np.random.default_rng(11)
    model = _randomize_norms(fused_sequential(1), rng)
    folded = nn.fold_batch_norm(model, (10, 10, 3))
    x = rng.normal(size=(10, 10, 3)).astype(np.float32)
    e = explain_unit(folded, x, "0", (3, 3, 2))
    assert e["folded_batch_norm"] == "1"
    assert explain_unit(folded, x, "1", (3, 3, 2))["folded_into"] == "0"
    before = explain_unit(model, x, "2", (3, 3, 2))
    after = explain_unit(folded, x, "2", (3, 3, 2))
    assert after["value"] == pytest.approx(before["value"], rel=1e-5, abs=1e-5)
    explain_everywhere(folded, x)


# --------------------------------------------------------------------------- receptive field
def test_receptive_field_box_follows_the_summary():
    model = st.models.lenet5(rng=0)
    x = np.zeros((28, 28, 1), np.float32)
    row = next(r for r in st.summary(model, (28, 28, 1)).rows if r.name == "features.3")
    e = explain_unit(model, x, "features.3", (2, 3, 0))
    rf = e["receptive_field"]
    assert rf["size"] == row.rf and rf["jump"] == row.jump
    top, left, bottom, right = rf["box"]
    assert (bottom - top + 1, right - left + 1) == row.rf
    # conv1 pads 2, so unit 0 starts at input pixel -2; after the 2x2 pool units are 2 pixels apart
    assert (top, left) == (-2 + 2 * 2, -2 + 3 * 2)
    assert explain_unit(model, x, "classifier.1", (0,))["receptive_field"] == "global"


# --------------------------------------------------------------------------- bad input
def test_bad_input_gets_one_line():
    model = st.models.lenet5(rng=0)
    x = np.zeros((28, 28, 1), np.float32)
    with pytest.raises(ValueError, match=r"no layer named 'features\.33'\. Did you mean 'features\.3'\?") as err:
        explain_unit(model, x, "features.33", (0, 0, 0))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"index must be \(row, col, channel\) inside layer 'features\.0'.*index=\(0, 28, 0\)"):
        explain_unit(model, x, "features.0", (0, 28, 0))
    with pytest.raises(ValueError, match=r"index must be \(unit,\) .*index=\(1, 2, 3\)"):
        explain_unit(model, x, "classifier.1", (1, 2, 3))
    with pytest.raises(ValueError, match=r"index must be .*index=\(-1, 0, 0\)"):
        explain_unit(model, x, "features.0", (-1, 0, 0))
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        explain_unit(model, x, "features.0", (0, 0, 0), top_k=0)
    with pytest.raises(TypeError, match="layer must be a layer name"):
        explain_unit(model, x, 3, (0, 0, 0))
    with pytest.raises(ValueError, match=r"x must be one image .*x\.shape=\(2, 28, 28, 1\)"):
        explain_unit(model, np.zeros((2, 28, 28, 1), np.float32), "features.0", (0, 0, 0))


def test_a_model_without_an_image_input_is_refused_in_one_line():
    mlp = nn.Sequential(nn.Dense(4, rng=0), nn.ReLU(), nn.Dense(2, rng=1)).build((6,))
    with pytest.raises(ValueError, match=r"cannot run on x of shape \(2, 3, 1\)") as err:
        explain_unit(mlp, np.zeros((2, 3), np.float32), "0", (0,))
    assert "\n" not in str(err.value)


def test_a_record_of_another_model_is_refused():
    a, b = st.models.lenet5(rng=0), st.models.lenet5(rng=1)
    x = np.zeros((28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="record was made for another model"):
        explain_unit(b, x, "features.0", (0, 0, 0), record=record_forward(a, x))


# --------------------------------------------------------------------------- the zoo
ZOO_SHAPES = {"alexnet": (67, 67, 3), "zfnet": (67, 67, 3), "alexnet_torchvision": (67, 67, 3), "nin": (96, 96, 3),
              "googlenet": (64, 64, 3)}
SLOW = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet34", "resnet50", "resnet101",
        "resnet110", "resnet152", "resnet44", "resnet56", "googlenet", "zfnet"}


def _zoo_shape(name):
    if name in ZOO_SHAPES:
        return ZOO_SHAPES[name]
    native = st.models.info(name).input_shape
    return (32, 32, 3) if native == (224, 224, 3) else None          # VGG and ImageNet ResNets: a small input


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in st.models.list()])
def test_every_zoo_model_is_explained_exactly(name):
    shape = _zoo_shape(name)
    model = st.models.get(name, rng=0, num_classes=10, **({"input_shape": shape} if shape else {}))
    model = _randomize_norms(model, np.random.default_rng(12))
    shape = shape or model.input_shape
    x = np.random.default_rng(13).normal(size=shape).astype(np.float32)
    es = explain_everywhere(model, x, units_per_layer=1)
    assert "conv" in {e["kind"] for e in es}


def test_an_onnx_imported_model_is_explained_exactly(tmp_path):
    pytest.importorskip("onnx")
    from striate import onnx as st_onnx

    path = tmp_path / "resnet20.onnx"
    st_onnx.export(st.models.resnet20(rng=0), path, (32, 32, 3))
    model = st_onnx.load(path)
    x = np.random.default_rng(14).normal(size=(32, 32, 3)).astype(np.float32)
    kinds = {e["kind"] for e in explain_everywhere(model, x, units_per_layer=1)}
    assert {"conv", "batch_norm", "dense"} <= kinds


def test_a_record_explains_its_own_image_only():
    model = st.models.lenet5(rng=0)
    x = np.random.default_rng(15).normal(size=(28, 28, 1)).astype(np.float32)
    rec = record_forward(model, x)
    a = explain_unit(model, None, "features.0", (1, 2, 3), record=rec)
    b = explain_unit(model, x, "features.0", (1, 2, 3))
    assert a["value"] == b["value"] and a["top"][0]["term"] == b["top"][0]["term"]
    with pytest.raises(ValueError, match="record was made for another image"):
        explain_unit(model, x + 1, "features.0", (0, 0, 0), record=rec)
    assert rec.names() == [r.name for r in st.summary(model, (28, 28, 1)).rows]
    np.testing.assert_array_equal(rec.value("features.2"), st.vis.activations(model, x)["features.2"])


class EpilogueConv(nn.Module):
    """A conv that applies a batch norm's affine map and a ReLU in its own output pass (the inference fusion)."""

    def __init__(self, conv, bn):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x):
        scale, shift = self.bn.eval_affine()
        c = self.conv
        return F._conv2d(x, c.w, c.b, c.stride, c.padding, c.dilation, c.groups,
                         (scale.astype(np.float32), shift.astype(np.float32), True))


def test_a_conv_with_a_fused_epilogue_is_explained_through_it():
    rng = np.random.default_rng(16)
    seq = _randomize_norms(nn.Sequential(nn.Conv2D(5, 3, padding=1, rng=0), nn.BatchNorm(), nn.ReLU()).build((6, 6, 2)),
                           rng).eval()
    model = nn.Sequential(EpilogueConv(seq[0], seq[1]))
    x = rng.normal(size=(6, 6, 2)).astype(np.float32)
    acts = st.vis.activations(model, x)
    want = st.vis.activations(seq, x)["2"]
    for index in [(0, 0, 0), (2, 3, 4), (5, 5, 1)]:
        e = explain_unit(model, x, "0", index)
        assert e["kind"] == "conv" and e["epilogue"]["relu"]
        check_explanation(e, acts)
        assert e["result"] == pytest.approx(float(want[index]), rel=1e-5, abs=1e-6)


def test_a_model_that_merges_its_layers_itself_has_its_own_row_everywhere():
    # the model's own row is called by its class name in st.summary, in activations and here alike
    rng = np.random.default_rng(17)
    model = Merge().build((5, 5, 3))
    x = rng.normal(size=(5, 5, 3)).astype(np.float32)
    acts = st.vis.activations(model, x)
    assert list(acts) == [r.name for r in st.summary(model, (5, 5, 3)).rows] and "Merge" in acts
    check_explanation(explain_unit(model, x, "Merge", (2, 1, 6)), acts)


class Doubling(nn.Module):
    def forward(self, x):
        return x * 2.0


def test_an_op_without_an_explanation_still_gives_the_value():
    model = nn.Sequential(nn.Conv2D(2, 1, rng=0), Doubling()).build((3, 3, 1))
    x = np.ones((3, 3, 1), np.float32)
    e = explain_unit(model, x, "1", (1, 1, 1))
    assert e["kind"] == "other" and e["op"] == "MulOp" and e["result"] is None
    assert e["value"] == float(st.vis.activations(model, x)["1"][1, 1, 1])
    assert "computed by MulOp" in st.vis.format_explanation(e)
