"""ONNX export of the upsampling layers (ConvTranspose2D, Upsample) checked by onnx.checker and
matched by onnxruntime within 1e-4; ConvTranspose imports back."""
import numpy as np
import pytest

import striate as st
from striate import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _close(actual, expected, tol=1e-4):
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()), 1e-6)
    err = float(np.abs(actual - expected).max()) / scale
    assert err < tol, f"relative error {err:.2e}"


def _export_and_compare(model, shape, tmp_path, batch=2):
    model = model.build(shape)
    proto = st.onnx.export(model, tmp_path / "m.onnx", shape)  # checked with full_check
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    _close(_run(tmp_path / "m.onnx", x), model(x).data)
    return [n.op_type for n in proto.graph.node]


CT_SETTINGS = [dict(kernel_size=4, stride=2, padding=1), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
               dict(kernel_size=(3, 2), stride=(3, 2), padding=(1, 0), dilation=(1, 2)),
               dict(kernel_size=3, stride=2, groups=2), dict(kernel_size=2, stride=2, padding=(1, 0, 0, 1)),
               dict(kernel_size=3, stride=1, padding=1, output_padding=1, dilation=2)]


@pytest.mark.parametrize("kwargs", CT_SETTINGS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_conv_transpose_exports_and_matches_onnxruntime(kwargs, tmp_path):
    model = nn.Sequential(nn.Conv2D(4, 3, padding="same", rng=0), nn.ReLU(), nn.ConvTranspose2D(6, rng=1, **kwargs))
    ops = _export_and_compare(model, (7, 9, 3), tmp_path)
    assert "ConvTranspose" in ops


@pytest.mark.parametrize("kwargs", CT_SETTINGS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_conv_transpose_imports_back_from_onnx(kwargs, tmp_path):
    model = nn.Sequential(nn.Conv2D(4, 3, padding="same", rng=0), nn.ReLU(), nn.ConvTranspose2D(6, rng=1, **kwargs))
    _export_and_compare(model, (7, 9, 3), tmp_path)
    x = np.random.default_rng(2).standard_normal((2, 7, 9, 3)).astype(np.float32)
    back = st.onnx.load(tmp_path / "m.onnx")
    assert any(isinstance(m, nn.ConvTranspose2D) for m in back.modules())
    _close(back(x).data, model(x).data)


def test_bilinear_conv_transpose_fcn_head_exports(tmp_path):
    # FCN's head: a 1x1 conv to class scores, then a bilinear-initialised 2x upsampling
    model = nn.Sequential(nn.Conv2D(5, 1, rng=0), nn.ConvTranspose2D(5, 4, stride=2, padding=1,
                                                                     kernel_initializer="bilinear"))
    _export_and_compare(model, (8, 8, 3), tmp_path)


RESIZES = [dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=1.5), dict(scale_factor=(0.7, 2.5)),
           dict(scale_factor=1.4), dict(size=(11, 6)), dict(size=(16, 20)), dict(size=(5, 5))]


@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("kwargs", RESIZES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_upsample_exports_as_resize_and_matches_onnxruntime(kwargs, mode, align_corners, tmp_path):
    model = nn.Sequential(nn.Conv2D(3, 3, padding="same", rng=0),
                          nn.Upsample(mode=mode, align_corners=align_corners, **kwargs), nn.Conv2D(2, 1, rng=0))
    ops = _export_and_compare(model, (5, 8, 2), tmp_path, batch=3)  # a batch other than the traced one
    assert "Resize" in ops


def test_output_padding_beyond_the_padding_and_stride_is_refused(tmp_path):
    # stride 1, dilation 2: output_padding 1 is allowed (below the dilation) but has no padding to
    # come from, and onnxruntime refuses output_padding >= stride
    model = nn.Sequential(nn.ConvTranspose2D(2, 3, stride=1, output_padding=1, dilation=2)).build((4, 4, 2))
    with pytest.raises(ValueError, match=r"Cannot export to ONNX: ConvTranspose with output_padding \(1, 1\) not "
                                         r"below the stride \(1, 1\)"):
        st.onnx.export(model, tmp_path / "m.onnx", (4, 4, 2))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("opset", [13, 18])
def test_upsampling_exports_at_other_opsets(opset, tmp_path):
    model = nn.Sequential(nn.ConvTranspose2D(3, 2, stride=2, rng=0), nn.Upsample(size=(13, 9), mode="bilinear"),
                          nn.Upsample(scale_factor=0.5)).build((4, 3, 2))
    st.onnx.export(model, tmp_path / "m.onnx", (4, 3, 2), opset=opset)
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 2)).astype(np.float32)
    _close(_run(tmp_path / "m.onnx", x), model(x).data)
