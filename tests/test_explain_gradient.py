"""st.vis.explain_gradient: the gradient maps backprop sends to every layer and the gradients of one
unit's weights equal striate's autograd on the model's own parameters (which the op tests compare with
PyTorch), and the layer gradients match finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.vis import explain_gradient


def small_net(seed=0):
    """Grouped, dilated, strided and padded convs, a conv with its own ReLU, batch norm, pooling, dense."""
    return nn.Sequential(
        nn.Conv2D(6, 3, padding="same", rng=seed), nn.BatchNorm(), nn.ReLU(),
        nn.Conv2D(6, 3, stride=2, padding=1, groups=3, rng=seed + 1),
        nn.Conv2D(4, 3, dilation=2, padding=2, activation="relu", rng=seed + 2),
        nn.MaxPool2D(2, padding="same"), nn.Flatten(), nn.Dense(8, activation="relu", rng=seed + 3),
        nn.Dense(5, rng=seed + 4)).build((9, 9, 2))


def _randomize(model, rng):
    for m in model.modules():
        if type(m) is nn.BatchNorm:
            m.running_mean[:] = rng.normal(size=m.num_features)
            m.running_var[:] = rng.uniform(0.5, 2.0, size=m.num_features)
            m.gamma.data[:] = rng.normal(size=m.num_features)
        if getattr(m, "b", None) is not None:
            m.b.data[:] = rng.normal(size=m.b.shape) * 0.1
    return model


def autograd(model, x, target, score="logit"):
    """d score / d parameters by a plain loss.backward() on the model (evaluation mode)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad, p.grad = True, None
    logits = model(st.Tensor(x[None]))
    s = logits[0, target] if score == "logit" else F.cross_entropy(logits, np.array([target]))
    s.backward()
    return {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("score", ["logit", "loss"])
def test_weight_gradients_of_a_unit_equal_autograd(score):
    rng = np.random.default_rng(0)
    model = _randomize(small_net(), rng).astype(np.float64)
    x = rng.normal(size=(9, 9, 2))
    want = autograd(model, x, 3, score)
    for layer in ("0", "3", "4", "7", "8"):
        shape = st.vis.activations(model, x)[layer].shape
        for _ in range(3):
            index = tuple(int(rng.integers(s)) for s in shape)
            g = explain_gradient(model, x, layer, index, target=3, score=score)
            k = index[-1]
            np.testing.assert_allclose(g["weight_grad"], want[f"{layer}.w"][..., k], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(g["bias_grad"], want[f"{layer}.b"][k], rtol=1e-9, atol=1e-12)
            assert g["target"] == 3 and g["score"] == score


def test_the_units_shares_add_up_to_the_kernels_gradient():
    rng = np.random.default_rng(1)
    model = _randomize(small_net(1), rng).astype(np.float64)
    x = rng.normal(size=(9, 9, 2))
    oh, ow, _ = st.vis.activations(model, x)["3"].shape
    k = 4
    total = sum(explain_gradient(model, x, "3", (r, c, k), target=1)["weight_grad_via_unit"]
                for r in range(oh) for c in range(ow))
    g = explain_gradient(model, x, "3", (0, 0, k), target=1)
    np.testing.assert_allclose(total, g["weight_grad"], rtol=1e-9, atol=1e-12)
    # the unit's share is its gradient times its input patch; the largest share is listed first
    np.testing.assert_array_equal(g["weight_grad_via_unit"], g["pre_activation_grad"] * g["unit"]["patch"])
    shares = [abs(t["grad_via_unit"]) for t in g["top_weights"]]
    assert shares == sorted(shares, reverse=True) and shares[0] == np.abs(g["weight_grad_via_unit"]).max()


def test_layer_gradient_maps_match_finite_differences():
    rng = np.random.default_rng(2)
    model = _randomize(small_net(2), rng).astype(np.float64)
    x = rng.normal(size=(9, 9, 2))
    g = explain_gradient(model, x, "0", (0, 0, 0), target=2)
    assert list(g["gradients"]) == [r.name for r in st.summary(model.astype(np.float32), (9, 9, 2)).rows]
    model = model.astype(np.float64)
    modules = dict(model.named_modules())
    for layer in ("0", "1", "3", "5", "7"):
        grad = g["gradients"][layer]
        assert grad.shape == st.vis.activations(model, x)[layer].shape
        for _ in range(2):
            index = tuple(int(rng.integers(s)) for s in grad.shape)

            def score(eps):
                def bump(module, inputs, out):
                    data = out.data.copy()
                    data[(0,) + index] += eps
                    return st.Tensor(data)
                handle = modules[layer].register_forward_hook(bump)
                try:
                    with st.no_grad():
                        return float(model.eval()(st.Tensor(x[None])).data[0, 2])
                finally:
                    handle.remove()

            numeric = (score(1e-6) - score(-1e-6)) / 2e-6
            assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-7), (layer, index)


def test_resnet_float32_gradients_equal_autograd():
    model = st.models.resnet20(rng=0, num_classes=10)
    x = np.random.default_rng(3).normal(size=(32, 32, 3)).astype(np.float32)
    g = explain_gradient(model, x, "layer2.0.conv1", (5, 6, 7), target=4)
    want = autograd(model, x, 4)
    np.testing.assert_allclose(g["weight_grad"], want["layer2.0.conv1.w"][..., 7], rtol=1e-4, atol=1e-6)
    assert g["gradients"]["fc"][4] == 1.0 and np.count_nonzero(g["gradients"]["fc"]) == 1   # d logit_4 / d logits
    assert g["grad"] == g["gradients"]["layer2.0.conv1"][5, 6, 7]


def test_parameters_and_their_gradients_are_left_alone():
    model = small_net(3)
    x = np.random.default_rng(4).normal(size=(9, 9, 2)).astype(np.float32)
    model.train()
    explain_gradient(model, x, "0", (1, 1, 1))
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_gradient_bad_input():
    model = small_net(4)
    x = np.zeros((9, 9, 2), np.float32)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 5\)\. Received: target=5"):
        explain_gradient(model, x, "0", (0, 0, 0), target=5)
    with pytest.raises(ValueError, match="score must be one of logit, loss"):
        explain_gradient(model, x, "0", (0, 0, 0), score="prob")
    with pytest.raises(ValueError, match="no layer named 'O'"):
        explain_gradient(model, x, "O", (0, 0, 0))
    maps = nn.Sequential(nn.Conv2D(2, 3, rng=0)).build((5, 5, 1))
    with pytest.raises(ValueError, match=r"must output class scores \(1, classes\)"):
        explain_gradient(maps, np.zeros((5, 5, 1), np.float32), "0", (0, 0, 0))


def test_batch_norm_scale_and_shift_gradients_equal_autograd():
    rng = np.random.default_rng(5)
    model = _randomize(small_net(5), rng).astype(np.float64)
    x = rng.normal(size=(9, 9, 2))
    want = autograd(model, x, 0)
    for k in (0, 3, 5):
        g = explain_gradient(model, x, "1", (4, 4, k), target=0)
        assert g["gamma_grad"] == pytest.approx(want["1.gamma"][k], rel=1e-9, abs=1e-12)
        assert g["beta_grad"] == pytest.approx(want["1.beta"][k], rel=1e-9, abs=1e-12)


def test_a_backward_record_explains_every_unit_of_its_image_and_class():
    from striate.vis import record_backward

    rng = np.random.default_rng(6)
    model = _randomize(small_net(6), rng).astype(np.float64)
    x = rng.normal(size=(9, 9, 2))
    rec = record_backward(model, x, target=2, score="loss")
    want = autograd(model, x, 2, "loss")
    for layer, index in [("0", (1, 2, 3)), ("4", (0, 1, 2)), ("8", (4,)), ("1", (3, 3, 1))]:
        a = explain_gradient(model, None, layer, index, target=2, score="loss", record=rec)
        b = explain_gradient(model, x, layer, index, target=2, score="loss")
        assert a["grad"] == b["grad"] and a["score_value"] == b["score_value"]
        if "weight_grad" in a:
            np.testing.assert_allclose(a["weight_grad"], want[f"{layer}.w"][..., index[-1]], rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(a["weight_grad"], b["weight_grad"])
    assert "gamma_grad" in a
    with pytest.raises(ValueError, match=r"record was made for target=2, score='loss'"):
        explain_gradient(model, None, "0", (0, 0, 0), target=1, record=rec)
    with pytest.raises(ValueError, match="record was made for another image"):
        explain_gradient(model, x + 1, "0", (0, 0, 0), score="loss", record=rec)
