"""st.vis.gradient_flow, its figure, the GradientNorms callback and `striate visualize gradient-flow`."""
import numpy as np
import pytest

import striate as st
import striate.functional as F
import striate.vis  # noqa: F401
from striate import nn
from striate.cli.main import main
from striate.data import DataLoader


def _model():
    model = nn.Sequential(nn.Conv2D(4, 3, padding="same", rng=0), nn.ReLU(), nn.Conv2D(5, 3, rng=0), nn.BatchNorm(),
                          nn.ReLU(), nn.Flatten(), nn.Dense(3, rng=0))
    return model.build((6, 6, 2))


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)).astype(np.float32), rng.integers(0, 3, n)


def test_numbers_match_a_direct_computation():
    model = _model()
    x, y = _batch()
    flow = st.vis.gradient_flow(model, x, y)
    assert flow.names == ["0", "2", "6"] and flow.types == ["Conv2D", "Conv2D", "Dense"]
    # the same step done by hand on an identical model
    ref = _model()
    ref.train()
    h1 = F.relu(ref[0](st.Tensor(x)))
    z2 = ref[2](h1)
    z2.retain_grad()
    h2 = ref[4](ref[3](z2))
    logits = ref[6](ref[5](h2))
    logits.retain_grad()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    assert flow.loss == pytest.approx(float(loss.data), rel=1e-6)
    np.testing.assert_allclose(flow.grad_norm, [np.linalg.norm(ref[i].w.grad) for i in (0, 2, 6)], rtol=1e-5)
    np.testing.assert_allclose(flow.weight_norm, [np.linalg.norm(ref[i].w.data) for i in (0, 2, 6)], rtol=1e-6)
    # dL/dlogits of a mean cross-entropy is (softmax - onehot) / n
    p = np.exp(logits.data - logits.data.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    assert flow.output_grad_norm[2] == pytest.approx(np.linalg.norm(p / len(y)), rel=1e-5)
    assert flow.output_grad_norm[1] == pytest.approx(np.linalg.norm(z2.grad), rel=1e-5)
    # activations: the first ReLU after each layer (after the batch norm for the second conv)
    assert flow.act_mean[0] == pytest.approx(float(h1.data.mean()), rel=1e-6)
    assert flow.act_std[1] == pytest.approx(float(h2.data.std()), rel=1e-5)
    assert flow.act_zero[1] == pytest.approx(float(np.mean(h2.data == 0)))
    assert flow.act_zero[2] == 0.0 and flow.act_mean[2] == pytest.approx(float(logits.data.mean()), rel=1e-5)
    assert "Conv2D" in flow.table() and len(flow.table().splitlines()) == 5


def test_the_users_model_is_untouched():
    model = _model()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    st.vis.gradient_flow(model, *_batch())
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)  # batch-norm running statistics too


def test_plain56_has_a_row_per_weighted_layer_and_a_figure(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, 4)
    flows = {"plain-20": st.vis.gradient_flow(st.models.plain20(rng=0), x, y),
             "plain-56 no BN": st.vis.gradient_flow(st.models.plain56(batch_norm=False, rng=0), x, y)}
    assert len(flows["plain-20"].names) == 20 and len(flows["plain-56 no BN"].names) == 56
    assert flows["plain-20"].names[0] == "conv1" and flows["plain-20"].names[-1] == "fc"
    assert all(np.isfinite(getattr(f, k)).all() for f in flows.values() for k in ("grad_norm", "act_std"))
    pytest.importorskip("matplotlib")
    from PIL import Image
    out = tmp_path / "flow.png"
    st.vis.save_gradient_flow_plot(flows, out, title="init")
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] > 800 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_bad_input():
    model = _model()
    x, y = _batch()
    with pytest.raises(ValueError, match="x must be a float batch"):
        st.vis.gradient_flow(model, x[0], y)
    with pytest.raises(ValueError, match=r"y must hold one integer label per image, shape \(8,\)"):
        st.vis.gradient_flow(model, x, y[:3])
    with pytest.raises(TypeError, match="model must be"):
        st.vis.gradient_flow("plain20", x, y)


def test_gradient_norms_callback_records_during_fit():
    model = _model()
    x, y = _batch(40)
    norms = st.training.GradientNorms(every=2)
    st.training.fit(model, DataLoader(x, y, batch_size=8), epochs=2, optimizer=st.optim.SGD(model.parameters(), lr=0.1),
                    callbacks=[norms], verbose=0)
    assert norms.names == ["0", "2", "6"]  # every layer with a weight w: the convs and the dense layer
    assert norms.steps == [2, 4, 6, 8, 10] and norms.epoch_of == [0, 0, 1, 1, 1]
    assert norms.norms.shape == (5, 3)
    # the last record is the last step's gradient, still on the parameters after fit
    np.testing.assert_allclose(norms.norms[-1], [np.linalg.norm(m.w.grad) for m in (model[0], model[2], model[6])],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="every must be a positive int"):
        st.training.GradientNorms(every=0)


def test_visualize_gradient_flow_command(tmp_path, capsys):
    pytest.importorskip("sklearn")
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(run), "-q"]) == 0
    out = tmp_path / "flow.png"
    assert main(["visualize", "gradient-flow", "--checkpoint", str(run / "weights.npz"), "--init", "--batch", "16",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "trained: loss" in text and "initialised: loss" in text and "features.0" in text and out.is_file()
    assert main(["visualize", "gradient-flow", "--checkpoint", str(run / "weights.npz"), "--batch", "1",
                 "--out", str(tmp_path / "other.png")]) == 2
    err = capsys.readouterr().err
    assert "--batch must be at least 2" in err and err.count("\n") == 1
