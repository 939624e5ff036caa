"""Learning-rate schedules: values by formula and against torch, warm-up composition, Keras' plateau rule."""
import math

import numpy as np
import pytest

import striate as st
from striate.nn import Parameter


def _opt(lr=0.1, groups=1):
    if groups == 1:
        return st.optim.SGD([Parameter(np.zeros(2))], lr=lr, momentum=0.9)
    return st.optim.SGD([{"params": [Parameter(np.zeros(2))], "lr": lr * (i + 1)} for i in range(groups)], lr=lr)


def _lrs(schedule, epochs, group=0):
    out = []
    for _ in range(epochs):
        out.append(schedule.optimizer.param_groups[group]["lr"])
        schedule.step()
    return out


def test_step_lr_values():
    sched = st.optim.StepLR(_opt(0.1), step_size=3, gamma=0.5)
    np.testing.assert_allclose(_lrs(sched, 8), [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])


def test_multistep_and_exponential_values():
    sched = st.optim.MultiStepLR(_opt(1.0), milestones=[2, 5], gamma=0.1)
    np.testing.assert_allclose(_lrs(sched, 7), [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    sched = st.optim.ExponentialLR(_opt(1.0), gamma=0.5)
    np.testing.assert_allclose(_lrs(sched, 4), [1, 0.5, 0.25, 0.125])


def test_cosine_values_and_floor():
    sched = st.optim.CosineAnnealingLR(_opt(0.2), t_max=4, eta_min=0.02)
    got = _lrs(sched, 7)
    # half-way is the mean of base and floor; the end is the floor and it stays there
    expected = [0.2, 0.02 + 0.18 * (1 + math.cos(math.pi / 4)) / 2, 0.11,
                0.02 + 0.18 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.02, 0.02, 0.02]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_against_torch_schedulers():
    torch = pytest.importorskip("torch")

    def torch_lrs(make, epochs):
        opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
        sched = make(opt)
        out = []
        for _ in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    lr = torch.optim.lr_scheduler
    np.testing.assert_allclose(_lrs(st.optim.StepLR(_opt(), 4, 0.3), 12),
                               torch_lrs(lambda o: lr.StepLR(o, 4, 0.3), 12), rtol=1e-12)
    np.testing.assert_allclose(_lrs(st.optim.MultiStepLR(_opt(), [3, 7], 0.2), 10),
                               torch_lrs(lambda o: lr.MultiStepLR(o, [3, 7], 0.2), 10), rtol=1e-12)
    np.testing.assert_allclose(_lrs(st.optim.CosineAnnealingLR(_opt(), 10, 0.001), 11),
                               torch_lrs(lambda o: lr.CosineAnnealingLR(o, 10, 0.001), 11), rtol=1e-9)
    np.testing.assert_allclose(_lrs(st.optim.LinearWarmup(_opt(), 5, start_factor=0.2), 8),
                               torch_lrs(lambda o: lr.LinearLR(o, 0.2, 1.0, total_iters=5), 8), rtol=1e-12)


def test_warmup_then_cosine():
    inner = st.optim.CosineAnnealingLR(_opt(1.0), t_max=4)
    sched = st.optim.LinearWarmup(inner, warmup_epochs=2, start_factor=0.5)
    got = _lrs(sched, 8)
    # ramp 0.5, 0.75, then the cosine from its own epoch 0: 1, cos..., 0.5, ..., 0
    expected = [0.5, 0.75, 1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0, 0]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_schedules_apply_to_every_group():
    sched = st.optim.StepLR(_opt(0.1, groups=2), step_size=1, gamma=0.5)
    np.testing.assert_allclose(_lrs(sched, 3, group=1), [0.2, 0.1, 0.05])


@pytest.mark.parametrize("make", [
    lambda o: st.optim.StepLR(o, 2, 0.5),
    lambda o: st.optim.CosineAnnealingLR(o, 6),
    lambda o: st.optim.LinearWarmup(st.optim.MultiStepLR(o, [2, 4]), 3),
])
def test_schedule_state_resumes(make):
    a = make(_opt())
    full = _lrs(a, 9)
    b = make(_opt())
    _lrs(b, 4)
    state = b.state_dict()
    c = make(_opt(lr=123.0))  # another base rate: the state brings back the saved one
    c.load_state_dict(state)
    assert _lrs(c, 5) == full[4:]


def test_schedule_validation():
    with pytest.raises(ValueError, match=r"StepLR: step_size must be an int >= 1. Received: step_size=0"):
        st.optim.StepLR(_opt(), 0)
    with pytest.raises(ValueError, match="milestones must be increasing"):
        st.optim.MultiStepLR(_opt(), [5, 2])
    with pytest.raises(TypeError, match="takes an optimizer"):
        st.optim.CosineAnnealingLR("sgd", 10)
    with pytest.raises(TypeError, match="LinearWarmup takes an optimizer or an epoch-based schedule"):
        st.optim.LinearWarmup(st.optim.ReduceLROnPlateau(_opt()), 2)
    with pytest.raises(ValueError, match=r"factor must lie in \(0.0, 1.0\)"):
        st.optim.ReduceLROnPlateau(_opt(), factor=1.0)
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        st.optim.ReduceLROnPlateau(_opt(), mode="lower")
    with pytest.raises(ValueError, match="needs the value of the monitored metric 'val_loss'"):
        st.optim.ReduceLROnPlateau(_opt()).step()
    with pytest.raises(ValueError, match="saved from StepLR, not CosineAnnealingLR"):
        st.optim.CosineAnnealingLR(_opt(), 3).load_state_dict(st.optim.StepLR(_opt(), 3).state_dict())


# --------------------------------------------------------------------------- ReduceLROnPlateau
def _keras_rule(values, lr, factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0, mode="min"):
    """Keras' ReduceLROnPlateau.on_epoch_end, restated from its documented behaviour; returns the lr
    in force after each epoch."""
    best = math.inf if mode == "min" else -math.inf
    better = (lambda a, b: a < b - min_delta) if mode == "min" else (lambda a, b: a > b + min_delta)
    wait = cooldown_counter = 0
    out = []
    for v in values:
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if better(v, best):
            best, wait = v, 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr)
                cooldown_counter, wait = cooldown, 0
        out.append(lr)
    return out


def _plateau_lrs(values, lr=1.0, **kwargs):
    sched = st.optim.ReduceLROnPlateau(_opt(lr), **kwargs)
    out = []
    for v in values:
        sched.step(v)
        out.append(sched.optimizer.lr)
    return out


def test_plateau_by_hand_with_keras_defaults():
    # defaults: monitor val_loss (min), factor 0.1, patience 10, min_delta 1e-4
    losses = [1.0, 0.9] + [0.95] * 10 + [0.5] + [0.6] * 10
    got = _plateau_lrs(losses)
    # epochs 3..12 do not improve: the 10th of them (index 11) cuts the rate to 0.1; 0.5 improves;
    # ten more non-improvements (index 22) cut it to 0.01
    expected = [1.0] * 11 + [0.1] * 11 + [0.01]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_plateau_min_delta_counts_tiny_gains_as_stalls():
    # gains of 3e-5 per epoch stay within min_delta=1e-4 of the best for three epochs: a stall
    losses = [1.0 - 3e-5 * i for i in range(4)]
    got = _plateau_lrs(losses, patience=3, lr=1.0)
    assert got[:3] == [1.0, 1.0, 1.0] and got[3] == pytest.approx(0.1)


def test_plateau_cooldown_and_min_lr_by_hand():
    # patience 1, cooldown 2: Keras decrements the cooldown counter at the start of each epoch and
    # counts again once it is 0, so after a cut one epoch is idle and the next one cuts again
    got = _plateau_lrs([1.0, 2, 2, 2, 2, 2, 2, 2], lr=1.0, patience=1, cooldown=2, factor=0.5)
    np.testing.assert_allclose(got, [1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625])
    # cooldown 0 with patience 1: a cut every stalled epoch; the rate never goes below min_lr = 0.05
    got = _plateau_lrs([1.0] + [2] * 8, lr=0.2, patience=1, factor=0.1, min_lr=0.05)
    assert min(got) == pytest.approx(0.05) and got[-1] == pytest.approx(0.05)


def test_plateau_max_mode_from_monitor_name():
    sched = st.optim.ReduceLROnPlateau(_opt(1.0), monitor="val_acc", patience=2)
    assert sched.mode == "max"
    for v in [0.5, 0.6, 0.59, 0.58]:
        sched.step(v)
    assert sched.optimizer.lr == pytest.approx(0.1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=2, cooldown=1),
    dict(patience=3, factor=0.5, min_lr=0.01, min_delta=0.01),
    dict(patience=1, cooldown=3, mode="max", min_delta=0.0),
])
def test_plateau_matches_keras_rule_on_random_sequences(seed, kwargs):
    rng = np.random.default_rng(seed)
    # a noisy plateauing curve: long stalls and occasional improvements
    values = list(np.round(1 / (1 + 0.1 * np.arange(60)) + rng.normal(0, 0.05, 60), 3))
    mode = kwargs.get("mode", "min")
    ours = _plateau_lrs(values, lr=0.1, **kwargs)
    ref = _keras_rule(values, 0.1, **{**kwargs, "mode": mode})
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    assert min(ours) < 0.1  # the sequences do trigger reductions


def test_plateau_state_round_trip():
    values = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98, 0.97, 0.96]
    a = st.optim.ReduceLROnPlateau(_opt(1.0), patience=2, cooldown=1)
    for v in values:
        a.step(v)
    b = st.optim.ReduceLROnPlateau(_opt(1.0), patience=2, cooldown=1)
    for v in values[:4]:
        b.step(v)
    c = st.optim.ReduceLROnPlateau(_opt(1.0), patience=2, cooldown=1)
    c.load_state_dict(b.state_dict())
    for v in values[4:]:
        c.step(v)
    assert c.optimizer.lr == a.optimizer.lr and c.wait == a.wait and c.best == a.best


def test_continued_lr_goes_on_from_its_rate_to_the_new_end():
    # a run stopped after 10 epochs at rate 0.004, continued to 20: cosine from 0.004 down to 0 at epoch 20
    sched = st.optim.ContinuedLR(_opt(0.1), "cosine", start=10, rate=0.004, total=20)
    assert sched.last_epoch == 10
    lrs = [sched.optimizer.param_groups[0]["lr"]]
    for _ in range(10):
        sched.step()
        lrs.append(sched.optimizer.param_groups[0]["lr"])
    expected = [0.004 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)]
    np.testing.assert_allclose(lrs, expected, atol=1e-15)
    step = st.optim.ContinuedLR(_opt(0.1), "step", start=4, rate=0.01, total=12)   # milestones 4 and 6 epochs on
    np.testing.assert_allclose([step.lr_at(e, 0.1) for e in (4, 7, 8, 9, 10, 11)],
                               [0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])
    again = st.optim.ContinuedLR(_opt(0.1), "cosine", start=10, rate=0.004, total=20)
    again.load_state_dict(sched.state_dict())
    assert again.last_epoch == 20 and again.get_lr() == sched.get_lr()
    with pytest.raises(ValueError, match="kind must be one of cosine, step, none"):
        st.optim.ContinuedLR(_opt(), "linear", 1, 0.1, 5)
    with pytest.raises(ValueError, match="total must be an int >= 6"):
        st.optim.ContinuedLR(_opt(), "none", 5, 0.1, 5)


def test_build_schedule_and_optimizer_by_name():
    opt = st.optim.build_optimizer("sgd", [Parameter(np.zeros(2))], lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert isinstance(opt, st.optim.SGD) and opt.param_groups[0]["nesterov"]
    assert isinstance(st.optim.build_optimizer("adamw", [Parameter(np.zeros(2))], lr=0.1), st.optim.AdamW)
    sched = st.optim.build_schedule("step", _opt(0.1), epochs=10, warmup=2)   # /10 at 4 and 6 epochs after warm-up
    np.testing.assert_allclose(_lrs(sched, 10)[2:], [0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    cont = st.optim.build_schedule("none", _opt(0.1), epochs=8, replan={"epoch": 5, "lr": 0.02})
    assert isinstance(cont, st.optim.ContinuedLR) and cont.get_lr() == [0.02]
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw"):
        st.optim.build_optimizer("rmsprop", [Parameter(np.zeros(2))], lr=0.1)
