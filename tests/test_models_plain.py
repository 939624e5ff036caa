"""Plain CIFAR nets (He et al. 2016, sec. 4.2): the ResNets' twins without shortcuts."""
import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import models


@pytest.mark.parametrize("depth", [20, 32, 56])
def test_plain_net_has_the_resnet_twins_parameters(depth):
    # option A shortcuts carry no parameters, so taking them out removes nothing
    plain, res = models.get(f"plain{depth}", rng=0), models.get(f"resnet{depth}", rng=0)
    assert plain.num_parameters() == res.num_parameters()
    assert {k: p.shape for k, p in plain.named_parameters()} == {k: p.shape for k, p in res.named_parameters()}
    assert not any(m.__class__.__name__ == "ZeroPadShortcut" for m in plain.modules())
    # 6n + 1 convs and one dense: the "20" of plain-20 counts weighted layers
    convs = [m for m in plain.modules() if isinstance(m, st.nn.Conv2D)]
    assert len(convs) + 1 == depth


def test_plain20_counts_by_hand():
    # conv1 432 + BN 32; stage 1: 6 convs 3*3*16*16 + BN; stage 2: 3*3*16*32 + 5 * 3*3*32*32 + BN; stage 3 alike; fc 650
    stage1 = 6 * (2304 + 32)
    stage2 = 4608 + 5 * 9216 + 6 * 64
    stage3 = 18_432 + 5 * 36_864 + 6 * 128
    assert models.plain20().num_parameters() == 432 + 32 + stage1 + stage2 + stage3 + 650 == 269_722


def test_plain_without_batch_norm_has_biases_instead():
    plain = models.plain56(batch_norm=False, rng=0)
    assert not any(isinstance(m, st.nn.BatchNorm) for m in plain.modules())
    convs = [m for m in plain.modules() if isinstance(m, st.nn.Conv2D)]
    assert all(c.b is not None for c in convs)
    bn_params = sum(m.num_parameters() for m in models.plain56().modules() if isinstance(m, st.nn.BatchNorm))
    assert plain.num_parameters() == 853_018 - bn_params + sum(c.filters for c in convs)


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": False}])
def test_plain20_output_shapes_and_backward(kwargs):
    model = models.plain20(rng=0, **kwargs)
    model.train()
    rng = np.random.default_rng(0)
    x = st.Tensor(rng.standard_normal((2, 32, 32, 3)).astype(np.float32))
    y = model(x)
    assert y.shape == (2, 10)
    F.cross_entropy(y, np.array([1, 7])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad).all(), name
    headless = models.plain20(include_top=False, input_shape=(16, 16, 1))
    with st.no_grad():
        assert headless(st.Tensor(np.zeros((1, 16, 16, 1), np.float32))).shape == (1, 4, 4, 64)


def test_plain_summary_and_registry():
    info = models.info("plain56")
    assert info.input_shape == (32, 32, 3) and "without shortcuts" in info.description
    s = st.summary(models.plain20(), (32, 32, 3))
    assert s.total_params == 269_722
    names = [r.name for r in s.rows]
    assert "layer3.2.conv2" in names and not any("shortcut" in n for n in names)
    assert {"plain20", "plain32", "plain56"} <= set(models.list())


def test_plain_and_resnet_differ_only_by_the_shortcut():
    # same seed, same parameter names and shapes -> copy the weights; outputs differ because of x + F(x)
    plain, res = models.plain20(rng=0), models.resnet20(rng=0)
    res.load_state_dict(plain.state_dict())
    plain.eval(), res.eval()
    x = st.Tensor(np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32))
    with st.no_grad():
        a, b = plain(x).data, res(x).data
    assert not np.allclose(a, b)
    with st.no_grad():
        assert np.allclose(plain.conv1(x).data, res.conv1(x).data)


def test_bad_depth_and_batch_norm():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.plain_cifar(21)
    with pytest.raises(TypeError, match="batch_norm"):
        models.plain20(batch_norm="no")
