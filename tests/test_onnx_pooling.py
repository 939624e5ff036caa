"""The pooling that other frameworks' models need (for ONNX import): ceil_mode, count_include_pad=False,
dilation, global max pooling, and the padding rule — values and gradients against PyTorch, 'same'
average pooling against onnxruntime (Keras's and TensorFlow's definition), export of each."""
import numpy as np
import pytest

import striate as st
import striate.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _x(shape=(2, 9, 8, 3), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _both(fn_st, fn_torch, x):
    """Forward and input gradient (of a fixed random weighting) of both, NHWC <-> NCHW."""
    xs = st.Tensor(x, requires_grad=True)
    y = fn_st(xs)
    g = np.random.default_rng(9).standard_normal(y.shape).astype(x.dtype)
    y.backward(g)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    yt = fn_torch(xt)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y.data, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-9, atol=1e-12)
    return y


@pytest.mark.parametrize("k,s,p,d", [(3, 2, 0, 1), (3, 2, 1, 1), (2, 2, 0, 1), (3, 3, 1, 1), (2, 2, 1, 2), (3, 1, 1, 2)])
@pytest.mark.parametrize("ceil", [False, True])
def test_max_pool_ceil_mode_and_dilation_match_pytorch(k, s, p, d, ceil):
    _both(lambda x: F.max_pool2d(x, k, s, p, dilation=d, ceil_mode=ceil),
          lambda x: TF.max_pool2d(x, k, s, p, dilation=d, ceil_mode=ceil), _x())


@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (3, 2, 1), (2, 2, 1), (3, 3, 1), (5, 3, 2)])
@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool_ceil_mode_and_count_include_pad_match_pytorch(k, s, p, ceil, include):
    _both(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include),
          lambda x: TF.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include), _x())


def test_googlenet_style_ceil_pool_sizes():
    # torchvision's GoogLeNet: MaxPool2d(3, 2, ceil_mode=True) takes 112 -> 56 (floor would give 55)
    assert F.max_pool2d(np.zeros((1, 112, 112, 1), np.float32), 3, 2, ceil_mode=True).shape == (1, 56, 56, 1)
    assert st.nn.MaxPool2D(3, 2, ceil_mode=True)(np.zeros((1, 112, 112, 1), np.float32)).shape == (1, 56, 56, 1)


def test_same_average_pooling_without_pads_matches_onnx_and_keras_definition():
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    x = _x((2, 7, 6, 3), dtype=np.float32)
    y = F.avg_pool2d(x, 3, 2, "same", count_include_pad=False).data   # odd total pads: extra bottom/right
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                            count_include_pad=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 7, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # by hand, the corner window: the mean of the 2x2 input cells it covers (TensorFlow's rule)
    np.testing.assert_allclose(y[:, -1, -1], x[:, -2:, -2:].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(y, F.avg_pool2d(x, 3, 2, "same").data)  # padded zeros counted: different


def test_global_max_pool():
    x = _x()
    xs = st.Tensor(x, requires_grad=True)
    y = F.global_max_pool2d(xs)
    y.backward(np.arange(6.0).reshape(2, 3))
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    yt = TF.adaptive_max_pool2d(xt, 1).flatten(1)
    yt.backward(torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
    np.testing.assert_allclose(y.data, yt.detach().numpy())
    np.testing.assert_allclose(xs.grad, xt.grad.numpy().transpose(0, 2, 3, 1))
    assert st.nn.GlobalMaxPool2D()(x).shape == (2, 3)


def test_padding_rule_allows_every_window_that_reaches_the_input():
    x = _x((1, 5, 5, 1))
    # kernel 3, padding 2: the corner windows still cover one input cell (ONNX allows it, PyTorch does not)
    y = F.max_pool2d(x, 3, 1, 2).data
    assert y.shape == (1, 7, 7, 1) and np.isfinite(y).all() and y[0, 0, 0, 0] == x[0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"max_pool2d: padding must not exceed dilation \* \(kernel_size - 1\) = "
                                         r"\(2, 2\) per side, or some windows would cover only padding\. Received: "
                                         r"kernel_size=\(3, 3\), dilation=\(1, 1\), padding=3"):
        F.max_pool2d(x, 3, 1, 3)
    assert F.max_pool2d(x, 3, 1, 4, dilation=2).shape == (1, 9, 9, 1)  # dilation reaches further


@pytest.mark.parametrize("layer,opset", [
    (st.nn.MaxPool2D(3, 2, padding=1, ceil_mode=True), 17),
    (st.nn.AvgPool2D(3, 2, padding="same", count_include_pad=False), 17),
    (st.nn.AvgPool2D(3, 2, padding=1, ceil_mode=True), 17),
    (st.nn.AvgPool2D(3, 2, padding=1, ceil_mode=True, count_include_pad=False), 17),
    (st.nn.MaxPool2D(2, 1, padding=1, dilation=2), 17),
    (st.nn.AvgPool2D(2, 1, padding=1, dilation=2), 19),
])
def test_pooling_variants_export_to_onnx(layer, opset, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = st.nn.Sequential(st.nn.Conv2D(4, 1, in_channels=3), layer, st.nn.GlobalMaxPool2D())
    st.onnx.export(model, tmp_path / "m.onnx", (9, 8, 3), opset=opset)
    x = _x(dtype=np.float32)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], model(x).data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [
    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: F.avg_pool2d(x, 2, 1, "same", count_include_pad=False, dilation=2),
    lambda x: F.max_pool2d(x, 2, 2, 1, dilation=2, ceil_mode=True),
])
def test_new_pooling_gradients_by_finite_differences(fn):
    x = st.Tensor(np.random.default_rng(3).standard_normal((2, 6, 5, 2)), requires_grad=True)
    assert st.gradcheck(fn, [x])
