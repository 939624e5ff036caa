"""ONNX export (and re-import) of every model of the zoo, checked by onnx.checker and onnxruntime."""
import json

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# small inputs for the big ImageNet models (the smallest their downsampling allows, roughly)
SMALL = {"alexnet": (67, 67, 3), "alexnet_torchvision": (67, 67, 3), "zfnet": (99, 99, 3), "nin": (67, 67, 3),
         "googlenet": (64, 64, 3), "resnet18": (64, 64, 3), "resnet34": (64, 64, 3), "resnet50": (64, 64, 3),
         "resnet101": (32, 32, 3), "resnet152": (32, 32, 3)}
HEAVY = {"alexnet", "alexnet_torchvision", "zfnet", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
         "resnet101", "resnet152", "resnet110", "resnet56", "resnet44", "plain56"}


def _randomise_bn(model, seed=0):
    """Give every batch norm non-trivial statistics and affine parameters (fresh ones are identities)."""
    r = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm):
            m.running_mean[:] = r.normal(0, 0.2, m.running_mean.shape)
            m.running_var[:] = r.uniform(0.5, 1.5, m.running_var.shape)
            m.gamma.data[:] = r.uniform(0.5, 1.5, m.gamma.shape)
            m.beta.data[:] = r.normal(0, 0.2, m.beta.shape)
    return model


def _head(name, width=64, classes=10):
    """The classifier of AlexNet, ZFNet and VGG (same layers, same order) with ``width``-wide hidden
    dense layers instead of 4096: the same ops, without 100 MB of dense weights per test."""
    dense = [nn.Dense(width, rng=0), nn.Dense(width, rng=0), nn.Dense(classes, rng=0)]
    if name.startswith("vgg"):
        return nn.Sequential(nn.Flatten(), dense[0], nn.ReLU(), nn.Dropout(0.5), dense[1], nn.ReLU(), nn.Dropout(0.5),
                             dense[2])
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), dense[0], nn.ReLU(), nn.Dropout(0.5), dense[1], nn.ReLU(),
                         dense[2])


def _zoo_model(name, shape):
    if name.startswith(("vgg", "alexnet", "zfnet")):  # small widths where huge
        model = st.models.get(name, input_shape=shape, include_top=False, rng=0)
        model.classifier = _head(name)
        return model.build(shape)
    return st.models.get(name, input_shape=shape, num_classes=10, rng=0)


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _close(actual, expected, tol=1e-4):
    scale = max(float(np.abs(expected).max()), 1e-6)
    err = float(np.abs(actual - expected).max()) / scale
    assert err < tol, f"relative error {err:.2e}"


ZOO = [pytest.param(name, marks=[pytest.mark.slow] if name in HEAVY else [], id=name) for name in st.models.list()]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_exports_checks_and_matches_onnxruntime(name, tmp_path):
    shape = SMALL.get(name, st.models.info(name).input_shape)
    model = _randomise_bn(_zoo_model(name, shape))
    path = tmp_path / f"{name}.onnx"
    st.onnx.export(model, path, shape, check=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)  # (what export runs by default)
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype(np.float32)
    model.eval()
    expected = model(x).data
    _close(_run(path, x), expected)
    # and back: the re-imported model computes the same logits
    _close(st.onnx.load(path)(x).data, expected)


def test_layout_is_converted_at_the_boundary_only(tmp_path):
    model = st.models.lenet5(rng=0)
    st.onnx.export(model, tmp_path / "m.onnx", (28, 28, 1))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    # one Transpose (the input), no Gather: the flatten order is baked into the first Gemm's rows
    assert ops.count("Transpose") == 1 and ops[0] == "Transpose" and "Gather" not in ops
    assert ops.count("Conv") == 2 and ops.count("Gemm") == 3


def test_nchw_input_has_no_transpose_and_matches(tmp_path):
    model = _randomise_bn(st.models.digits_cnn(rng=0))
    st.onnx.export(model, tmp_path / "m.onnx", (8, 8, 1), nchw_input=True, opset=13)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert "Transpose" not in [n.op_type for n in proto.graph.node]
    assert proto.opset_import[0].version == 13
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 1)).astype(np.float32)
    _close(_run(tmp_path / "m.onnx", x.transpose(0, 3, 1, 2).copy()), model.eval()(x).data)


def test_metadata_carries_class_names_and_preprocessing(tmp_path):
    pre = {"scale": 1 / 255, "mean": [0.13], "std": [0.31]}
    st.onnx.export(st.models.lenet5(rng=0), tmp_path / "m.onnx", (28, 28, 1), class_names=list("abcdefghij"),
                   preprocess=pre)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["class_names"]) == list("abcdefghij")
    assert json.loads(props["preprocess"]) == pre and props["input_layout"] == "NHWC"
    back = st.onnx.load(tmp_path / "m.onnx")
    assert back.class_names == list("abcdefghij") and back.preprocess == pre


class _Odd(nn.Module):
    """Conv, then ops with no ONNX mapping (exp, abs) and a flatten that feeds no dense layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 3, padding=(1, 2), dilation=(1, 2), groups=2, in_channels=2)

    def forward(self, x):
        return F.flatten(self.conv(x)).exp().abs()


def test_unsupported_ops_are_listed_together(tmp_path):
    with pytest.raises(ValueError, match=r"no ONNX mapping for op\(s\) Abs, Exp\. Supported: "):
        st.onnx.export(_Odd(), tmp_path / "m.onnx", (5, 6, 2))
    assert not (tmp_path / "m.onnx").exists()


def test_flatten_to_output_restores_striate_order_and_odd_conv_settings(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(4, 3, stride=(2, 1), padding="same", dilation=(1, 2), groups=2, in_channels=2)
            self.pool = nn.AvgPool2D(3, 2, padding=1)

        def forward(self, x):
            y = F.leaky_relu(self.pool(self.conv(x)), 0.2)
            return F.softmax(F.sigmoid(F.flatten(y)) * 3.0)

    model = Net()
    st.onnx.export(model, tmp_path / "m.onnx", (9, 7, 2))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "Gather" in ops  # the output needs striate's (h, w, c) order back
    x = np.random.default_rng(0).standard_normal((2, 9, 7, 2)).astype(np.float32)
    _close(_run(tmp_path / "m.onnx", x), model(x).data)
    _close(st.onnx.load(tmp_path / "m.onnx")(x).data, model(x).data)


def test_even_lrn_is_refused_with_reason(tmp_path):
    model = nn.Sequential(nn.Conv2D(4, 1), nn.LocalResponseNorm(size=4)).build((5, 5, 3))
    with pytest.raises(ValueError, match="even size"):
        st.onnx.export(model, tmp_path / "m.onnx", (5, 5, 3))


def test_bad_arguments(tmp_path):
    model = st.models.lenet5(rng=0)
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\).*Received: input_shape=28"):
        st.onnx.export(model, tmp_path / "m.onnx", 28)
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        st.onnx.export(model, tmp_path / "m.onnx", (28, 28, 1), opset=9)


def test_export_keeps_training_mode_and_frozen_flags(tmp_path):
    model = st.models.digits_cnn(rng=0)
    model.features.freeze()
    model.train()
    st.onnx.export(model, tmp_path / "m.onnx", (8, 8, 1))
    assert model.training and all(not p.requires_grad for p in model.features.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_import_striate_loads_neither_onnx_nor_safetensors():
    import subprocess
    import sys
    code = "import sys, striate; print('onnx' in sys.modules, 'safetensors' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
