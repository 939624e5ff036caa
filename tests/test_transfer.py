"""Transfer learning: freeze(until=), frozen batch norm, replace_head, include_top, parameter groups,
a PyTorch twin of a few fine-tuning steps, and `striate finetune`."""
import json

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.cli.main import main


def _steps(model, n=3, lr=0.1, seed=0, shape=(8, 8, 1), classes=10):
    r = np.random.default_rng(seed)
    opt = st.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(n):
        x = st.Tensor(r.standard_normal((8,) + shape).astype(np.float32))
        loss = F.cross_entropy(model(x), r.integers(0, classes, 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


def test_frozen_parameters_and_bn_statistics_are_bit_identical_after_training():
    model = st.models.digits_cnn(rng=0)
    model.freeze(until="features")
    before = {k: v.copy() for k, v in model.state_dict().items()}
    _steps(model, n=4)
    after = model.state_dict()
    for key in before:
        same = np.array_equal(before[key], after[key])
        assert same == key.startswith("features"), key   # features (weights and BN stats) untouched, head trained


def test_gradients_reach_only_the_trainable_part():
    model = st.models.lenet5(rng=0)
    model.freeze(until="classifier.2")   # features and the first dense layer
    x = st.Tensor(np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype(np.float32))
    F.cross_entropy(model(x), np.array([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        frozen = name.startswith("features") or name.startswith("classifier.1")
        assert (p.grad is None) == frozen, name
        assert p.requires_grad != frozen
    assert model.num_parameters(trainable_only=True) == 120 * 84 + 84 + 84 * 10 + 10


def test_train_bn_keeps_batch_norm_trainable_and_updating():
    model = st.models.digits_cnn(rng=0)
    model.freeze(train_bn=True)
    bn = model.features[1]
    mean0 = bn.running_mean.copy()
    assert bn.gamma.requires_grad and not model.features[0].w.requires_grad
    _steps(model, n=1)
    assert not np.array_equal(mean0, bn.running_mean)


def test_frozen_bn_uses_running_statistics_in_training_mode():
    bn = nn.BatchNorm(num_features=3)
    bn.running_mean[:] = [1.0, 2.0, 3.0]
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    bn.freeze()
    bn.train()
    np.testing.assert_allclose(bn(x).data, (x - bn.running_mean) / np.sqrt(1 + bn.eps), rtol=1e-6)
    bn.unfreeze()
    assert bn.trainable and bn.gamma.requires_grad
    assert abs(float(bn(x).data.mean())) < 1e-5   # batch statistics again


def test_freeze_until_unknown_layer_names_close_match():
    model = st.models.lenet5(rng=0)
    with pytest.raises(ValueError, match=r"Did you mean 'features.3'\?.*Received: until='feature.3'"):
        model.freeze(until="feature.3")


@pytest.mark.parametrize("name,shape,attr", [("lenet5", (28, 28, 1), "classifier.5"), ("resnet20", (32, 32, 3), "fc"),
                                             ("nin", (67, 67, 3), "classifier.5")])
def test_replace_head(name, shape, attr):
    model = st.models.get(name, input_shape=shape, rng=0)
    model.freeze()
    head = model.replace_head(3, rng=1)
    assert dict(model.named_modules())[attr] is head
    assert all(p.requires_grad for p in head.parameters())
    model.eval()
    assert model(np.zeros((2,) + shape, np.float32)).shape == (2, 3)
    assert model.num_parameters(trainable_only=True) == head.num_parameters()


@pytest.mark.parametrize("name,shape,out", [("lenet5", (28, 28, 1), (5, 5, 16)), ("resnet18", (64, 64, 3), (2, 2, 512)),
                                            ("vgg11", (32, 32, 3), (1, 1, 512)), ("googlenet", (64, 64, 3), (2, 2, 1024)),
                                            ("resnet20", (32, 32, 3), (8, 8, 64))])
def test_include_top_false_returns_feature_maps(name, shape, out):
    model = st.models.get(name, input_shape=shape, include_top=False, rng=0)
    assert model.eval()(np.zeros((1,) + shape, np.float32)).shape == (1,) + out
    assert not any(isinstance(m, nn.Dense) for m in model.modules())


def test_each_parameter_group_steps_with_its_own_rate():
    model = st.models.lenet5(rng=0)
    head = model.classifier[5]
    body = [p for p in model.parameters() if all(p is not q for q in head.parameters())]
    opt = st.optim.SGD([{"params": body, "lr": 0.001}, {"params": head.parameters(), "lr": 0.1}], lr=0.5)
    before = [p.data.copy() for p in model.parameters()]
    x = st.Tensor(np.random.default_rng(0).standard_normal((4, 28, 28, 1)).astype(np.float32))
    F.cross_entropy(model(x), np.array([0, 1, 2, 3])).backward()
    grads = [p.grad.copy() for p in model.parameters()]
    opt.step()
    head_ids = {id(p) for p in head.parameters()}
    for p, w0, g in zip(model.parameters(), before, grads):
        lr = 0.1 if id(p) in head_ids else 0.001
        np.testing.assert_allclose(p.data, w0 - lr * g, rtol=1e-6, atol=1e-7)


def test_few_finetuning_steps_match_a_pytorch_twin():
    """Frozen conv + BN (requires_grad=False, BN in eval) with a trainable head, 3 SGD steps, in both."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    r = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2D(4, 3, use_bias=False, in_channels=2), nn.BatchNorm(num_features=4), nn.ReLU(),
                          nn.Flatten(), nn.Dense(3, in_features=4 * 4 * 4))
    model[1].running_mean[:] = r.normal(0, 0.5, 4)
    model[1].running_var[:] = r.uniform(0.5, 2, 4)
    twin = tnn.Sequential(tnn.Conv2d(2, 4, 3, bias=False), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.Flatten(),
                          tnn.Linear(64, 3))
    with torch.no_grad():
        twin[0].weight.copy_(torch.from_numpy(model[0].w.data.transpose(3, 2, 0, 1).copy()))
        twin[1].running_mean.copy_(torch.from_numpy(model[1].running_mean))
        twin[1].running_var.copy_(torch.from_numpy(model[1].running_var))
        # striate flattens (h, w, c), torch (c, h, w): reorder the dense rows for the twin
        w = model[4].w.data.reshape(4, 4, 4, 3).transpose(2, 0, 1, 3).reshape(64, 3)
        twin[4].weight.copy_(torch.from_numpy(w.T.copy()))
        twin[4].bias.copy_(torch.from_numpy(model[4].b.data))
    model.freeze(until="2")
    for p in list(twin[0].parameters()) + list(twin[1].parameters()):
        p.requires_grad_(False)
    model.train()
    twin.train()
    twin[1].eval()
    opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD([p for p in twin.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    for step in range(3):
        x = r.standard_normal((5, 6, 6, 2)).astype(np.float32)
        y = r.integers(0, 3, 5)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())),
                                                  torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(float(loss.data), float(tloss.detach()), rtol=1e-5)
    w = model[4].w.data.reshape(4, 4, 4, 3).transpose(2, 0, 1, 3).reshape(64, 3)
    np.testing.assert_allclose(w.T, twin[4].weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model[1].running_mean, twin[1].running_mean.numpy())


def test_finetune_command_writes_the_run_files(tmp_path, capsys):
    base = st.models.digits_cnn(rng=0)
    _steps(base, n=2)
    meta = {"model": {"name": "digits_cnn", "args": {"num_classes": 10}}, "input_shape": [8, 8, 1],
            "class_names": [str(i) for i in range(10)]}
    st.training.save_weights(tmp_path / "base.npz", base, meta=meta)
    out = tmp_path / "ft"
    code = main(["finetune", "--base", str(tmp_path / "base.npz"), "--dataset", "digits", "--classes", "7,8,9",
                 "--per-class", "10", "--val-split", "0.2", "--head-epochs", "1", "--epochs", "1",
                 "--freeze-until", "features.4",
                 "--out", str(out), "-q"])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"weights.npz", "checkpoint.npz", "checkpoint_best.npz", "log.csv",
                                               "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_images"] == 24 and 0 <= metrics["test_accuracy"] <= 1   # 6 of 30 held out
    ckpt = st.training.load_checkpoint(out / "weights.npz")
    assert ckpt.meta["class_names"] == ["7", "8", "9"] and ckpt.meta["model"]["args"]["num_classes"] == 3
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("phase,epoch,loss,acc,lr") and "val_acc" in log[0] and len(log) == 3
    assert main(["finetune", "--base", str(tmp_path / "base.npz"), "--dataset", "digits",
                 "--freeze-until", "nope"]) == 2
    assert "--freeze-until must name a layer" in capsys.readouterr().err
