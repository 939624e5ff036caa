"""st.training.lr_find (Smith's learning-rate range test) and `striate lr-find`."""
import re

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.cli.main import main
from striate.data import DataLoader
from striate.training.lr_find import _suggest


def _blobs(n=256, seed=0):
    """Ten separable classes of 8x8x1 images: a pattern per class plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = centres[y] + 0.5 * rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
    return x, y


def _small_model(seed=0):
    model = nn.Sequential(nn.Conv2D(8, 3, padding="same", rng=seed), nn.BatchNorm(), nn.ReLU(),
                          nn.Flatten(), nn.Dense(10, rng=seed))
    model.build((8, 8, 1))
    return model


def test_the_users_model_and_optimizer_are_untouched():
    model = _small_model()
    opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    before = {k: v.copy() for k, v in model.state_dict().items()}  # weights and batch-norm statistics
    x, y = _blobs()
    result = st.training.lr_find(model, DataLoader(x, y, batch_size=32, shuffle=True, rng=0), optimizer=opt,
                                 num_steps=30)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert opt.lr == 0.05 and not opt.state  # no step was taken with the user's optimiser
    assert len(result.rates) >= 3


def test_rates_grow_exponentially_and_the_loss_is_smoothed():
    x, y = _blobs()
    result = st.training.lr_find(_small_model(), DataLoader(x, y, batch_size=32), start_lr=1e-4, end_lr=1e-1,
                                 num_steps=16, smoothing=0.5, diverge=1e9)
    assert not result.diverged and len(result.rates) == 16
    np.testing.assert_allclose(result.rates, 1e-4 * 1000 ** (np.arange(16) / 15), rtol=1e-12)
    # bias-corrected exponential moving average, recomputed here
    avg, expect = 0.0, []
    for i, v in enumerate(result.losses):
        avg = 0.5 * avg + 0.5 * v
        expect.append(avg / (1 - 0.5 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed, expect, rtol=1e-12)
    assert result.smoothed[-1] < result.smoothed[0]  # 1e-1 trains this model: the loss falls


def test_a_diverging_loss_stops_the_test():
    x, y = _blobs()
    result = st.training.lr_find(_small_model(), DataLoader(x, y, batch_size=32), start_lr=1e-3, end_lr=1e6,
                                 num_steps=80, smoothing=0.0)
    assert result.diverged and len(result.rates) < 80
    # stopped at the first smoothed loss above 4x the best so far (or at a non-finite loss)
    assert all(s <= 4 * min(result.smoothed[:i + 1]) for i, s in enumerate(result.smoothed[:-1]))


def test_the_copy_trains_with_the_recipes_optimizer_kind():
    model = _small_model()
    seen = []

    def make(params):
        opt = st.optim.Adam(params, lr=1e-3, betas=(0.8, 0.9))
        seen.append(opt)
        return opt

    x, y = _blobs(64)
    st.training.lr_find(model, DataLoader(x, y, batch_size=32), optimizer=make, num_steps=5)
    assert len(seen) == 1 and seen[0].param_groups[0]["params"][0] is not model.parameters()[0]
    adam = st.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.9), weight_decay=1e-4)
    from striate.training.lr_find import _cloned_optimizer
    twin = _small_model(seed=1)
    clone = _cloned_optimizer(adam, model, twin)
    assert type(clone) is st.optim.Adam and list(clone.param_groups[0]["betas"]) == [0.8, 0.9]
    assert clone.param_groups[0]["weight_decay"] == 1e-4
    assert [id(p) for p in clone.param_groups[0]["params"]] == [id(p) for p in twin.parameters()]


def test_suggestion_rules_on_a_known_curve():
    rates = np.logspace(-5, 1, 61)
    # a loss that falls fastest at log10(rate) = -2 (a logistic step in log rate), then rises after 1e0
    t = np.log10(rates)
    smoothed = 2.3 - 2.0 / (1 + np.exp(-3 * (t + 2))) + np.where(t > 0, 5 * t ** 2, 0.0)
    rate, rule, low = _suggest(rates, smoothed, "steepest")
    assert rule == "steepest" and rate == pytest.approx(1e-2, rel=0.01)
    assert low == pytest.approx(rates[np.argmin(smoothed)])
    rate, rule, _ = _suggest(rates, smoothed, "min/10")
    assert rule == "min/10" and rate == pytest.approx(low / 10)
    # the minimum right at the start: no slope before it, so min/10 is used and said
    rate, rule, _ = _suggest(rates[:10], np.linspace(1, 3, 10), "steepest")
    assert rule == "min/10" and rate == pytest.approx(rates[0] / 10)
    assert _suggest(rates[:2], np.array([1.0, 9.0]), "steepest")[0] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"start_lr": 0.1, "end_lr": 0.1}, "end_lr must be larger than start_lr. Received: start_lr=0.1, end_lr=0.1"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr must be larger than start_lr"),
    ({"start_lr": 0.0}, "start_lr must lie in (0.0, inf). Received: start_lr=0.0"),
    ({"num_steps": 2}, "num_steps must be an int >= 3"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"diverge": 1.0}, "diverge"),
    ({"rule": "valley"}, "rule must be one of 'steepest', 'min/10'. Received: rule='valley'"),
])
def test_bad_arguments_name_the_input(kwargs, message):
    x, y = _blobs(32)
    with pytest.raises(ValueError, match=re.escape(message)):
        st.training.lr_find(_small_model(), DataLoader(x, y, batch_size=32), **kwargs)


def test_bad_model_data_and_optimizer():
    x, y = _blobs(32)
    with pytest.raises(TypeError, match="model must be"):
        st.training.lr_find("resnet20", DataLoader(x, y, batch_size=32))
    with pytest.raises(TypeError, match="iterable of"):
        st.training.lr_find(_small_model(), x)
    other = _small_model(seed=3)
    with pytest.raises(ValueError, match="not the model's"):
        st.training.lr_find(_small_model(), DataLoader(x, y, batch_size=32),
                            optimizer=st.optim.SGD(other.parameters(), lr=0.1))


# ---------------------------------------------------------------------------------------- the command
def test_lr_find_command_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from PIL import Image
    out = tmp_path / "lr.png"
    assert main(["lr-find", "--steps", "25", "--start-lr", "1e-4", "--end-lr", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    from striate.cli.common import RECIPES
    r = RECIPES["digits"]   # the same model and optimiser as `striate train` on the digits
    assert (f"{r['model']} on digits: {r['optimizer']} (momentum {r['momentum']:g}, weight decay "
            f"{r['weight_decay']:g}), batch {r['batch_size']}") in text
    assert "suggested learning rate" in text and f"the recipe's rate is {r['lr']:g}" in text
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 400
    pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20  # a drawn plot, not a blank canvas
    assert main(["lr-find", "--steps", "5", "--out", str(out)]) == 2  # no overwrite without asking
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--start-lr", "0.1", "--end-lr", "0.1"], "the rate range is empty or reversed"),
    (["--start-lr", "1", "--end-lr", "0.01"], "Received: --start-lr 1 --end-lr 0.01."),
    (["--start-lr", "-1"], "--start-lr must be a positive number"),
    (["--steps", "1"], "--steps must be at least 3"),
    (["--out", "plot.jpg"], "--out must name a .png file"),
    (["--model", "resnet2000"], "unknown --model 'resnet2000'"),
])
def test_lr_find_command_bad_input_is_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["lr-find"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
