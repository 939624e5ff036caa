"""Optimisers: trajectories against torch.optim, update rules by hand, freezing, validation, saving."""
import numpy as np
import pytest

import striate as st
from striate.nn import Parameter


def _problem(seed=0, dtype=np.float64):
    """A least-squares problem: loss = mean((x @ w + b - t) ** 2) with fixed data."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 5)).astype(dtype)
    t = rng.normal(size=(16, 3)).astype(dtype)
    w0 = rng.normal(size=(5, 3)).astype(dtype)
    b0 = rng.normal(size=(3,)).astype(dtype)
    return x, t, w0, b0


def _st_trajectory(make_opt, steps=8, dtype=np.float64):
    x, t, w0, b0 = _problem(dtype=dtype)
    w, b = Parameter(w0.copy()), Parameter(b0.copy())
    opt = make_opt([w, b])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        d = st.Tensor(x) @ w + b - st.Tensor(t)
        (d * d).mean().backward()
        opt.step()
        out.append((w.data.copy(), b.data.copy()))
    return out


def _torch_trajectory(torch, make_opt, steps=8):
    x, t, w0, b0 = _problem()
    x, t = torch.tensor(x), torch.tensor(t)
    w = torch.tensor(w0.copy(), requires_grad=True)
    b = torch.tensor(b0.copy(), requires_grad=True)
    opt = make_opt([w, b])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (((x @ w + b - t) ** 2).mean()).backward()
        opt.step()
        out.append((w.detach().numpy().copy(), b.detach().numpy().copy()))
    return out


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.8, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
    dict(lr=0.1, momentum=0.5, dampening=0.3),
    dict(lr=0.1, weight_decay=0.1),
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={v}" for a, v in k.items()))
def test_sgd_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours = _st_trajectory(lambda p: st.optim.SGD(p, **kwargs))
    ref = _torch_trajectory(torch, lambda p: torch.optim.SGD(p, **kwargs))
    for (w, b), (tw, tb) in zip(ours, ref):
        np.testing.assert_allclose(w, tw, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b, tb, rtol=1e-12, atol=1e-12)


ADAM_CASES = [
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2, betas=(0.5, 0.9))),
]


@pytest.mark.parametrize("name,kwargs", ADAM_CASES, ids=lambda c: str(c))
def test_adam_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = _st_trajectory(lambda p: getattr(st.optim, name)(p, **kwargs), steps=12)
    ref = _torch_trajectory(torch, lambda p: getattr(torch.optim, name)(p, **kwargs), steps=12)
    for (w, b), (tw, tb) in zip(ours, ref):
        np.testing.assert_allclose(w, tw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, tb, rtol=1e-10, atol=1e-12)


def _one_param(value=1.0, dtype=np.float64):
    return Parameter(np.array([value], dtype=dtype))


def _run_constant_grad(opt, p, grads):
    out = []
    for g in grads:
        p.grad = np.array([g], dtype=p.data.dtype)
        opt.step()
        out.append(float(p.data[0]))
    return out


def test_sgd_momentum_by_hand():
    # constant gradient 1, lr 0.1, mu 0.9: v = 1, 1.9, 2.71 -> w = 0.9, 0.71, 0.439
    p = _one_param()
    ws = _run_constant_grad(st.optim.SGD([p], lr=0.1, momentum=0.9), p, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(ws, [0.9, 0.71, 0.439], rtol=1e-12)
    # Nesterov: step d = g + mu * v = 1.9, then 1 + 0.9 * 1.9 = 2.71 -> w = 0.81, 0.539
    p = _one_param()
    ws = _run_constant_grad(st.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [1.0, 1.0])
    np.testing.assert_allclose(ws, [0.81, 0.539], rtol=1e-12)
    # weight decay 0.5 on w=1 with zero gradient: w -= 0.1 * 0.5 * w -> 0.95
    p = _one_param()
    ws = _run_constant_grad(st.optim.SGD([p], lr=0.1, weight_decay=0.5), p, [0.0])
    np.testing.assert_allclose(ws, [0.95], rtol=1e-12)


def test_adam_first_step_is_lr_times_sign():
    # with bias correction, the first step has size lr (up to eps) whatever the gradient's scale
    for g in (1e-3, -5.0, 300.0):
        p = _one_param(2.0)
        _run_constant_grad(st.optim.Adam([p], lr=0.01), p, [g])
        assert p.data[0] == pytest.approx(2.0 - 0.01 * np.sign(g), abs=1e-7)


def test_adamw_decay_is_decoupled():
    # zero gradient: Adam's L2 decay moves w by ~lr (normalised), AdamW's only by lr * wd * w
    p = _one_param(1.0)
    _run_constant_grad(st.optim.AdamW([p], lr=0.1, weight_decay=0.5), p, [0.0])
    assert p.data[0] == pytest.approx(1.0 * (1 - 0.1 * 0.5))
    p = _one_param(1.0)
    _run_constant_grad(st.optim.Adam([p], lr=0.1, weight_decay=0.5), p, [0.0])
    assert p.data[0] == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("make", [
    lambda p: st.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
    lambda p: st.optim.Adam(p, lr=0.1, weight_decay=1e-4),
    lambda p: st.optim.AdamW(p, lr=0.1),
])
def test_float32_kept_and_updated_in_place(make):
    p = Parameter(np.ones((3, 2), np.float32))
    data_before = p.data
    opt = make([p])
    for _ in range(3):
        p.grad = np.full((3, 2), 0.5, np.float32)
        opt.step()
    assert p.data is data_before  # in place: views and references stay valid
    assert p.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[id(p)].values() if isinstance(v, np.ndarray))
    assert not np.allclose(p.data, 1.0)
    # a float64 gradient does not upcast the float32 weight
    p.grad = np.full((3, 2), 0.5, np.float64)
    opt.step()
    assert p.data.dtype == np.float32


def test_frozen_and_gradless_parameters_are_skipped():
    a, b, c = _one_param(1.0), _one_param(1.0), _one_param(1.0)
    opt = st.optim.SGD([a, b, c], lr=0.1, momentum=0.9)
    a.grad = np.array([1.0])
    b.grad = np.array([1.0])
    b.requires_grad = False  # frozen after the optimiser was made (transfer learning)
    c.grad = None            # not used by this forward
    opt.step()
    assert a.data[0] == pytest.approx(0.9)
    assert b.data[0] == 1.0 and c.data[0] == 1.0
    assert id(b) not in opt.state and id(c) not in opt.state


def test_frozen_model_layers():
    model = st.nn.Sequential(st.nn.Dense(4, in_features=3), st.nn.Dense(2, in_features=4))
    model[0].freeze()
    before = [p.data.copy() for p in model.parameters()]
    opt = st.optim.SGD(model.parameters(), lr=0.5)
    x = st.Tensor(np.ones((5, 3), np.float32))
    F = st.functional
    loss = F.cross_entropy(model(x), np.array([0, 1, 0, 1, 0]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = [p.data for p in model.parameters()]
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])


def test_zero_grad_clears():
    p = _one_param()
    opt = st.optim.SGD([p], lr=0.1)
    p.grad = np.array([3.0])
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_have_their_own_lr():
    a, b = _one_param(1.0), _one_param(1.0)
    opt = st.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    a.grad = np.array([1.0])
    b.grad = np.array([1.0])
    opt.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(0.99)
    opt.lr = 0.5
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]


def test_empty_parameter_list_says_build_first():
    model = st.nn.Sequential(st.nn.Conv2D(4, 3), st.nn.Flatten(), st.nn.Dense(2))
    with pytest.raises(ValueError, match=r"empty parameter list.*model\.build\(input_shape\)"):
        st.optim.SGD(model.parameters(), lr=0.1)
    model.build((8, 8, 1))
    st.optim.SGD(model.parameters(), lr=0.1)  # now fine


@pytest.mark.parametrize("make,match", [
    (lambda p: st.optim.SGD(p, lr=-0.1), r"SGD: lr must lie in \[0.0, inf\)\. Received: lr=-0.1"),
    (lambda p: st.optim.SGD(p, lr="fast"), r"lr must be a finite number. Received: lr='fast'"),
    (lambda p: st.optim.SGD(p, lr=0.1, momentum=1.0), r"momentum must lie in \[0.0, 1.0\)"),
    (lambda p: st.optim.SGD(p, lr=0.1, weight_decay=-1), r"weight_decay must lie in"),
    (lambda p: st.optim.SGD(p, lr=0.1, nesterov=True), r"Nesterov momentum needs momentum > 0"),
    (lambda p: st.optim.Adam(p, betas=(0.9,)), r"betas must be a pair"),
    (lambda p: st.optim.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must lie in \[0.0, 1.0\)"),
    (lambda p: st.optim.AdamW(p, eps=-1e-8), r"AdamW: eps must lie in"),
    (lambda p: st.optim.SGD([{"params": p, "lr": 0.1, "beta": 3}]), r"unknown hyper-parameter"),
])
def test_validation_messages(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make([_one_param()])


def test_params_must_be_tensors():
    with pytest.raises(TypeError, match="must be a Tensor"):
        st.optim.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="not a single Tensor"):
        st.optim.SGD(_one_param(), lr=0.1)
    p = _one_param()
    with pytest.raises(ValueError, match="more than one group"):
        st.optim.SGD([p, p], lr=0.1)


@pytest.mark.parametrize("make", [
    lambda p: st.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: st.optim.Adam(p, lr=0.05),
    lambda p: st.optim.AdamW(p, lr=0.05, weight_decay=0.1),
])
def test_state_dict_round_trip_continues_identically(make):
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(6, 4)).astype(np.float32)
    p = Parameter(np.ones(4, np.float32))
    opt = make([p])
    for g in grads[:3]:
        p.grad = g.copy()
        opt.step()
    saved_w, saved = p.data.copy(), opt.state_dict()
    for g in grads[3:]:
        p.grad = g.copy()
        opt.step()
    # a fresh optimiser on a fresh parameter, restored, takes the same steps bit for bit
    q = Parameter(saved_w)
    opt2 = make([q])
    opt2.load_state_dict(saved)
    for g in grads[3:]:
        q.grad = g.copy()
        opt2.step()
    assert np.array_equal(p.data, q.data)
    # the saved state is a copy, not a view of live buffers
    assert not any(v is s for v, s in zip(saved["state"][0].values(), opt.state[id(p)].values()))


def test_load_state_dict_checks():
    p = _one_param()
    opt = st.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    opt.step()
    with pytest.raises(ValueError, match="saved from SGD, not Adam"):
        st.optim.Adam([_one_param()]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="groups have sizes"):
        st.optim.SGD([_one_param(), _one_param()], lr=0.1).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="has shape"):
        st.optim.SGD([Parameter(np.ones(3))], lr=0.1).load_state_dict(opt.state_dict())


def test_sgd_trains_a_small_classifier():
    # a torch-free end-to-end sanity check: separable blobs are learned
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 0.5, (50, 2)), rng.normal(1, 0.5, (50, 2))]).astype(np.float32)
    y = np.array([0] * 50 + [1] * 50)
    model = st.nn.Dense(2, in_features=2, rng=0)
    opt = st.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(30):
        loss = st.functional.cross_entropy(model(st.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2
    assert (model(st.Tensor(x)).data.argmax(1) == y).mean() > 0.95
