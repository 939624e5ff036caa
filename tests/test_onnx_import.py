"""ONNX import: models exported by PyTorch (torch.onnx.export) load into striate with equal logits;
unsupported operators are listed in one error; the CLI's import/export commands."""
import warnings

import numpy as np
import pytest

import striate as st
from striate.cli.main import main

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
nn = torch.nn
from torch_layout import randomize_batch_norm  # noqa: E402


def _export(net, x, path, opset=17):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and constant folding notes
        torch.onnx.export(net.eval(), x, str(path), dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["y"])


def _compare(net, x, path, tol=1e-4):
    model = st.onnx.load(path)
    with torch.no_grad():
        expected = net(x).numpy()
    got = model(x.permute(0, 2, 3, 1).numpy().copy()).data  # striate takes NHWC
    if got.ndim == 4:
        got = got.transpose(0, 3, 1, 2)
    scale = float(np.abs(expected).max())
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= tol * scale
    return model


class PoolZoo(nn.Module):
    """Conv (grouped, dilated, asymmetric stride), BN, every pooling flavour, flatten -> dense."""

    def __init__(self, ceil=True, include_pad=False):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=ceil),
            nn.Conv2d(8, 8, 3, stride=(1, 2), padding=2, dilation=2, groups=4), nn.LeakyReLU(0.1),
            nn.AvgPool2d(3, 1, padding=1, count_include_pad=include_pad), nn.Sigmoid(),
        )
        self.fc = nn.Linear(8 * 7 * 4, 6)

    def forward(self, x):
        return torch.log_softmax(self.fc(torch.flatten(self.f(x), 1)), 1)


@pytest.mark.parametrize("ceil,include_pad,opset", [(True, False, 17), (False, True, 13), (True, True, 11)])
def test_pytorch_pooling_and_conv_model_round_trips(tmp_path, ceil, include_pad, opset):
    net = randomize_batch_norm(PoolZoo(ceil, include_pad))
    x = torch.randn(2, 3, 15, 15)
    _export(net, x, tmp_path / "m.onnx", opset)  # opset 11 goes through onnx.version_converter
    model = _compare(net, x, tmp_path / "m.onnx")
    assert model.input_shape == (15, 15, 3)


class Residual(nn.Module):
    """A ResNet basic block with a projection, a concat of branches, global pooling and a tanh head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
        self.branch = nn.Conv2d(8, 3, 1)
        self.fc = nn.Linear(11, 5)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)) + self.down(x))
        y = torch.cat([y, self.branch(y)], 1)
        return torch.tanh(self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)))


def test_pytorch_residual_concat_model_round_trips(tmp_path):
    net = randomize_batch_norm(Residual())
    x = torch.randn(3, 4, 12, 10)
    _export(net, x, tmp_path / "m.onnx")
    _compare(net, x, tmp_path / "m.onnx")


def test_pytorch_global_max_pool_and_softmax_on_feature_maps(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 6, 3)

        def forward(self, x):
            y = torch.softmax(self.conv(x), 1)   # over channels of a 4-D map
            return nn.functional.adaptive_max_pool2d(y, 1).flatten(1)

    net = Net()
    x = torch.randn(2, 2, 9, 9)
    _export(net, x, tmp_path / "m.onnx")
    _compare(net, x, tmp_path / "m.onnx")


def test_unsupported_operators_are_listed_in_one_error(tmp_path):
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Exp", ["x"], ["a"]), helper.make_node("Sin", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Exp", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match=r"unsupported \(op_type, version\) at opset 17: \(Exp, 13\), \(Sin, 7\)\. "):
        st.onnx.load(tmp_path / "m.onnx")


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="No ONNX file"):
        st.onnx.load(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        st.onnx.load(tmp_path / "bad.onnx")


def test_cli_export_import_round_trip(tmp_path, capsys):
    model = st.models.digits_cnn(rng=0)
    meta = {"model": {"name": "digits_cnn", "args": {"num_classes": 10}}, "input_shape": [8, 8, 1],
            "class_names": [str(i) for i in range(10)], "preprocess": {"scale": 1 / 255, "mean": [0.3], "std": [0.4]}}
    st.training.save_weights(tmp_path / "w.npz", model, meta=meta)
    assert main(["export", "--checkpoint", str(tmp_path / "w.npz"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "opset 17, NHWC input 8x8x1" in capsys.readouterr().out
    assert main(["export", "--checkpoint", str(tmp_path / "w.npz"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "imp.npz")]) == 0
    ckpt = st.training.load_checkpoint(tmp_path / "imp.npz")
    assert ckpt.meta["class_names"] == meta["class_names"] and "graph" in ckpt.meta["model"]
    # the imported weights file exports again (the graph is rebuilt from the file alone)
    assert main(["export", "--checkpoint", str(tmp_path / "imp.npz"), "--out", str(tmp_path / "m2.onnx"),
                 "--nchw-input"]) == 0
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1)).astype(np.float32)
    again = st.onnx.load(tmp_path / "m2.onnx")
    np.testing.assert_allclose(again(x).data, model.eval()(x).data, rtol=1e-4, atol=1e-5)
    assert main(["import", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_evaluate_and_predict_read_an_imported_model(tmp_path, capsys):
    # a weights file written by `striate import` holds a graph, not a zoo name: evaluate and predict
    # rebuild it and give the same answers as the model it came from
    pytest.importorskip("PIL")
    pytest.importorskip("sklearn")
    from PIL import Image

    model = st.models.digits_cnn(rng=0)
    meta = {"model": {"name": "digits_cnn", "args": {"num_classes": 10}}, "input_shape": [8, 8, 1],
            "dataset": "digits", "class_names": [str(i) for i in range(10)],
            "preprocess": {"scale": 1 / 255, "mean": [0.3], "std": [0.4]}}
    st.training.save_weights(tmp_path / "w.npz", model, meta=meta)
    assert main(["export", "--checkpoint", str(tmp_path / "w.npz"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "imp.npz")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "w.npz"), "--dataset", "digits"]) == 0
    original = capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(tmp_path / "imp.npz"), "--dataset", "digits"]) == 0
    imported = capsys.readouterr().out
    accuracy = [line for line in original.splitlines() if "accuracy" in line]
    assert accuracy and accuracy == [line for line in imported.splitlines() if "accuracy" in line]
    image = (np.random.default_rng(1).random((8, 8)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "d.png")
    assert main(["predict", str(tmp_path / "d.png"), "--checkpoint", str(tmp_path / "w.npz")]) == 0
    by_zoo = capsys.readouterr().out.split()[1:]
    assert main(["predict", str(tmp_path / "d.png"), "--checkpoint", str(tmp_path / "imp.npz")]) == 0
    assert capsys.readouterr().out.split()[1:] == by_zoo
