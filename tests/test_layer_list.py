"""st.nn.parse_layers (a network as a short layer list) and `striate train --model "<layer list>"`."""
import re

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.cli.main import main


def _types(model):
    return [type(m).__name__ for m in model]


def test_lenet_like_list_builds_the_expected_layers():
    net = nn.parse_layers("conv 8 5 relu, pool 2, conv 16 5 relu, pool 2, dense 10", (28, 28, 1), rng=0)
    assert _types(net) == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    assert net[0].w.shape == (5, 5, 1, 8) and net[3].w.shape == (5, 5, 8, 16)
    assert net[7].w.shape == (4 * 4 * 16, 10)  # 28 -5+1-> 24 /2-> 12 -5+1-> 8 /2-> 4
    assert st.summary(net, (28, 28, 1)).total_params == (5 * 5 * 8 + 8) + (5 * 5 * 8 * 16 + 16) + (256 * 10 + 10)
    with st.no_grad():
        assert net(st.Tensor(np.zeros((2, 28, 28, 1), np.float32))).shape == (2, 10)


def test_the_list_computes_what_the_layers_say():
    # the same network written by hand, with the list's weights: same output
    text = "conv 4 3 stride=2 pad=same relu, bn, pool 3 stride=2 pad=1 avg, conv 6 1x3, tanh, dropout 0.3, dense 5 sigmoid"
    net = nn.parse_layers(text, (9, 9, 2), rng=0)
    hand = nn.Sequential(nn.Conv2D(4, 3, stride=2, padding="same"), nn.ReLU(), nn.BatchNorm(),
                         nn.AvgPool2D(3, 2, padding=1), nn.Conv2D(6, (1, 3)), nn.Tanh(), nn.Dropout(0.3), nn.Flatten(),
                         nn.Dense(5), nn.Sigmoid())
    hand.build((9, 9, 2))
    assert _types(net) == _types(hand)
    hand.load_state_dict(net.state_dict())
    x = st.Tensor(np.random.default_rng(0).standard_normal((3, 9, 9, 2)).astype(np.float32))
    net.eval(), hand.eval()
    with st.no_grad():
        np.testing.assert_allclose(net(x).data, hand(x).data, rtol=1e-6)
    assert net[0].stride == (2, 2) and net[3].stride == (2, 2) and net[4].w.shape == (1, 3, 4, 6)


def test_flatten_is_inserted_only_when_needed():
    assert _types(nn.parse_layers("conv 4 3, gap, dense 3"))[-2:] == ["GlobalAvgPool2D", "Dense"]
    assert _types(nn.parse_layers("conv 4 3, flatten, dense 3, dense 2")) == ["Conv2D", "Flatten", "Dense", "Dense"]
    assert _types(nn.parse_layers("dense 8 relu, dense 2")) == ["Flatten", "Dense", "ReLU", "Dense"]


def test_case_spaces_synonyms_and_the_tidied_text():
    net = nn.parse_layers("  Conv 8 5   ReLU ,MaxPool 2,  FC 10 ")
    assert _types(net) == ["Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    assert net.layer_list == "conv 8 5 relu, maxpool 2, fc 10"
    assert nn.is_layer_list("conv 8 5, dense 10") and not nn.is_layer_list("resnet20")


def test_the_seed_makes_the_weights():
    a, b = (nn.parse_layers("conv 4 3 relu, dense 2", (6, 6, 1), rng=7) for _ in range(2))
    np.testing.assert_array_equal(a[0].w.data, b[0].w.data)
    c = nn.parse_layers("conv 4 3 relu, dense 2", (6, 6, 1), rng=8)
    assert not np.array_equal(a[0].w.data, c[0].w.data)


@pytest.mark.parametrize("text, message", [
    ("conv 8 5 relu, pool 2, conv x 5", "layer 3 'conv x 5': filters must be a positive integer, got 'x'"),
    ("conv 8", "layer 1 'conv 8': a conv needs FILTERS and KERNEL"),
    ("conv 0 3", "layer 1 'conv 0 3': filters must be a positive integer, got '0'"),
    ("conv 8 3 pad=foo", "layer 1 'conv 8 3 pad=foo': pad must be same, valid or a non-negative integer, got 'foo'"),
    ("conv 8 3 str=2", "layer 1 'conv 8 3 str=2': unknown option 'str'; this layer takes stride, pad"),
    ("conv 8 3 swish", "layer 1 'conv 8 3 swish': unexpected 'swish'"),
    ("dens 10", "layer 1 'dens 10': unknown layer kind 'dens' (did you mean 'dense'?)"),
    ("pool", "layer 1 'pool': a pool needs one SIZE"),
    ("dense 10, dropout 1.5", "layer 2 'dropout 1.5': the dropout rate must be a number in [0, 1), got '1.5'"),
    ("bn 3", "layer 1 'bn 3': bn takes no arguments"),
    ("conv 8 3,, dense 2", "layer 2 is empty"),
    ("  ", "the layer list is empty"),
])
def test_errors_name_the_layer(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        nn.parse_layers(text)


def test_a_layer_that_does_not_fit_the_input_is_named():
    with pytest.raises(ValueError, match=re.escape("layer 4 'conv 16 5 relu' does not fit its 4x4x8 input")):
        nn.parse_layers("conv 8 5 relu, pool 2, pool 3, conv 16 5 relu, dense 10", (28, 28, 1))
    with pytest.raises(ValueError, match="input_shape must be"):
        nn.parse_layers("dense 3", (28, 28))
    with pytest.raises(TypeError, match="must be a string"):
        nn.parse_layers(["conv 8 5"])


# ---------------------------------------------------------------------------------------- the command
def test_train_accepts_a_layer_list(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    text = "conv 8 3 pad=same relu, bn, pool 2, conv 16 3 relu, gap, dense 10"
    assert main(["train", "--model", text, "--epochs", "1", "--out", str(out), "-q"]) == 0
    ckpt = st.training.load_checkpoint(out / "weights.npz")
    assert ckpt.meta["model"]["name"] == text
    # the run's weights load back through the same text (evaluate rebuilds the model from it)
    assert main(["evaluate", "--checkpoint", str(out / "weights.npz")]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("conv 8 x relu, dense 10", "--model layer 1 'conv 8 x relu': kernel size must be a positive integer, got 'x'"),
    ("conv 8 3 relu, dense 5", "--model: the layer list gives 5 outputs per image, but the data have 10 classes"),
    ("conv 8 9 relu, dense 10", "--model layer 1 'conv 8 9 relu' does not fit its 8x8x1 input"),
])
def test_train_with_a_bad_layer_list_is_one_line(text, message, tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert main(["train", "--model", text, "--epochs", "1", "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
