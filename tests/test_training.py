"""fit / evaluate / predict on tiny synthetic problems and models with known outputs."""
import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import nn
from striate.training import evaluate, fit, predict


class Batches:
    """A minimal iterable of (xb, yb) batches with its own Generator (what fit needs of a loader)."""

    def __init__(self, x, y, batch_size=16, shuffle=True, rng=0):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rng = np.random.default_rng(rng)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        idx = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for i in range(0, len(idx), self.batch_size):
            j = idx[i:i + self.batch_size]
            yield self.x[j], self.y[j]


def stripes(n=120, seed=0):
    """3 classes: a bright band of rows 0-1, 2-3 or 4-5 in a noisy 6x6 image."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 6, 6, 1)).astype(np.float32)
    for k in range(3):
        x[y == k, 2 * k:2 * k + 2, :, 0] += 1.0
    return x, y


def small_cnn(seed=0, dropout=0.0):
    return nn.Sequential(nn.Conv2D(4, 3, padding="same", rng=seed), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                         nn.Dropout(dropout), nn.Dense(3, rng=seed)).build((6, 6, 1))


def test_fit_learns_and_reports_every_epoch():
    x, y = stripes()
    xv, yv = stripes(60, seed=1)
    model = small_cnn()
    opt = st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, Batches(x, y), Batches(xv, yv, shuffle=False), epochs=4, optimizer=opt, verbose=0)
    h = history.history
    assert list(h) == ["loss", "acc", "val_loss", "val_acc", "lr", "seconds"]
    assert history.epoch == [0, 1, 2, 3] and all(len(v) == 4 for v in h.values())
    assert h["loss"][-1] < h["loss"][0] and h["val_acc"][-1] >= 0.95
    assert all(0.0 <= a <= 1.0 for a in h["acc"] + h["val_acc"])
    # the reported val metrics are what evaluate() says of the final model
    result = evaluate(model, Batches(xv, yv, shuffle=False))
    assert result["accuracy"] == pytest.approx(h["val_acc"][-1])
    assert result["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-5)


def test_fit_steps_the_schedule_and_logs_the_rate_used():
    x, y = stripes(40)
    model = small_cnn()
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    sched = st.optim.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, Batches(x, y), epochs=3, optimizer=opt, schedule=sched, verbose=0).history
    np.testing.assert_allclose(h["lr"], [0.1, 0.05, 0.025])
    assert opt.lr == pytest.approx(0.0125)


def test_fit_drives_plateau_schedule_with_its_monitor():
    x, y = stripes(40)
    model = small_cnn()
    opt = st.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss never improves... except by noise
    sched = st.optim.ReduceLROnPlateau(opt, monitor="loss", patience=1, min_delta=10.0)
    opt.lr = 1e-3
    h = fit(model, Batches(x, y), epochs=3, optimizer=opt, schedule=sched, verbose=0).history
    # min_delta=10 makes every epoch after the first a stall: cut after epoch 2 (wait 1 >= patience 1)
    np.testing.assert_allclose(h["lr"], [1e-3, 1e-3, 1e-4])
    with pytest.raises(ValueError, match=r"'val_loss' is not available. Available metrics: loss, acc, lr, "
                                         r"seconds\. Pass validation data"):
        fit(model, Batches(x, y), epochs=1, optimizer=opt, schedule=st.optim.ReduceLROnPlateau(opt), verbose=0)


def test_fit_trains_only_unfrozen_layers():
    x, y = stripes(40)
    model = small_cnn()
    model[0].freeze()
    conv_before = model[0].w.data.copy()
    dense_before = model[5].w.data.copy()
    fit(model, Batches(x, y), epochs=1, optimizer=st.optim.SGD(model.parameters(), lr=0.1), verbose=0)
    assert np.array_equal(model[0].w.data, conv_before)
    assert not np.array_equal(model[5].w.data, dense_before)


def test_fit_prints_one_summary_line_per_epoch(capsys):
    x, y = stripes(40)
    xv, yv = stripes(20, 1)
    model = small_cnn()
    fit(model, Batches(x, y), Batches(xv, yv), epochs=2, optimizer=st.optim.SGD(model.parameters(), lr=0.1),
        verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2  loss ")
    for key in ("acc", "val_loss", "val_acc", "lr"):
        assert f"  {key} " in lines[0]
    assert lines[0].endswith("s")
    fit(model, Batches(x, y), epochs=1, optimizer=st.optim.SGD(model.parameters(), lr=0.1), verbose=0)
    assert capsys.readouterr().out == ""


def test_fit_custom_loss_and_uint8_batches():
    x, y = stripes(40)
    x8 = (np.clip(x, 0, 1) * 255).astype(np.uint8)
    model = small_cnn()
    calls = []

    def loss(logits, labels):
        calls.append(logits.shape)
        return F.cross_entropy(logits, labels)

    fit(model, Batches(x8, y), epochs=1, optimizer=st.optim.SGD(model.parameters(), lr=0.1), loss=loss,
        verbose=0)
    assert calls and calls[0] == (16, 3)


def test_fit_argument_errors():
    x, y = stripes(20)
    model = small_cnn()
    opt = st.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"train must be an iterable of \(x, y\) batches.*DataLoader"):
        fit(model, x, epochs=1, optimizer=opt)
    with pytest.raises(ValueError, match="epochs must be an int >= 0. Received: epochs=-1"):
        fit(model, Batches(x, y), epochs=-1, optimizer=opt)
    with pytest.raises(ValueError, match="loss must be 'cross_entropy' or a callable"):
        fit(model, Batches(x, y), epochs=1, optimizer=opt, loss="hinge")
    with pytest.raises(ValueError, match="same optimizer"):
        other = st.optim.SGD(small_cnn(1).parameters(), lr=0.1)
        fit(model, Batches(x, y), epochs=1, optimizer=opt, schedule=st.optim.StepLR(other, 1))
    with pytest.raises(TypeError, match="callbacks must be Callback objects"):
        fit(model, Batches(x, y), epochs=1, optimizer=opt, callbacks=[print])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_stops_on_a_diverging_loss():
    x, y = stripes(40)
    x[0, 0, 0, 0] = np.inf
    model = small_cnn()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch 1, batch \d+.*lower it"):
        fit(model, Batches(x, y, shuffle=False, batch_size=40), epochs=1,
            optimizer=st.optim.SGD(model.parameters(), lr=0.1), verbose=0)


# --------------------------------------------------------------------------- evaluate
class FixedScores(nn.Module):
    """logits = the per-channel mean of the image: any spatial size, outputs known in advance."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


def _onehotish(scores):
    """Images (n, 1, 1, k) whose logits are exactly ``scores``."""
    return np.asarray(scores, np.float64)[:, None, None, :]


def test_evaluate_metrics_by_hand():
    scores = np.array([
        [5, 1, 0, 0, 0, 0],   # true 0, predicted 0
        [1, 5, 0, 0, 0, 0],   # true 0, predicted 1
        [0, 5, 1, 0, 0, 0],   # true 1, predicted 1
        [0, 0, 5, 1, 0, 0],   # true 2, predicted 2
        [1, 0, 5, 1, 2, 3],   # true 1: the lowest score -> not even in the top 5
        [1, 0, 0, 0, 0, 5],   # true 5, predicted 5
    ], np.float64)
    y = np.array([0, 0, 1, 2, 1, 5])
    model = FixedScores()
    result = evaluate(model, Batches(_onehotish(scores), y, batch_size=4, shuffle=False))
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["top5_accuracy"] == pytest.approx(5 / 6)
    assert result["num_samples"] == 6
    cm = np.zeros((6, 6), int)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[2, 2], cm[1, 2], cm[5, 5] = 1, 1, 1, 1, 1, 1
    np.testing.assert_array_equal(result["confusion_matrix"], cm)
    np.testing.assert_allclose(result["per_class_accuracy"], [0.5, 0.5, 1.0, np.nan, np.nan, 1.0])
    # mean cross-entropy: -log softmax(score)[true], computed here with logsumexp
    logp = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-logp[np.arange(6), y].mean(), rel=1e-12)


def test_evaluate_runs_in_eval_mode_without_graph():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = FixedScores()

        def forward(self, x):
            seen.append((self.training, st.is_grad_enabled()))
            return self.inner(x)

    model = Spy()
    model.train()
    evaluate(model, Batches(_onehotish(np.eye(3)), np.arange(3), shuffle=False), details=False)
    assert seen == [(False, False)] and model.training  # mode restored afterwards


def test_top5_only_with_five_classes_or_more():
    result = evaluate(FixedScores(), Batches(_onehotish(np.eye(3)), np.arange(3), shuffle=False))
    assert "top5_accuracy" not in result and result["accuracy"] == 1.0


def test_evaluate_ten_crop_tta_averages_softmax_over_crops():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 6, 6, 4))
    y = np.array([0, 1, 2, 3, 0])
    result = evaluate(FixedScores(), Batches(x, y, shuffle=False, batch_size=2), tta=4)
    # by hand: the 10 crops of size 4 (corners, centre, mirrors); mirroring does not change a mean
    probs = []
    for top, left in [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]:
        logits = x[:, top:top + 4, left:left + 4].mean(axis=(1, 2))
        p = np.exp(logits - logits.max(1, keepdims=True))
        probs += [p / p.sum(1, keepdims=True)] * 2
    mean = np.mean(probs, axis=0)
    assert result["accuracy"] == pytest.approx((mean.argmax(1) == y).mean())
    assert result["loss"] == pytest.approx(-np.log(mean[np.arange(5), y]).mean(), rel=1e-10)
    # a callable TTA with one identity view equals no TTA
    plain = evaluate(FixedScores(), Batches(x, y, shuffle=False))
    same = evaluate(FixedScores(), Batches(x, y, shuffle=False), tta=lambda xb: xb[None])
    assert same["loss"] == pytest.approx(plain["loss"], rel=1e-10)
    np.testing.assert_array_equal(same["confusion_matrix"], plain["confusion_matrix"])


def test_evaluate_tta_on_a_trained_cnn():
    # a model trained on 6x6 images, evaluated with 10 crops of 6x6 from images padded by 1
    x, y = stripes()
    model = small_cnn()
    fit(model, Batches(x, y), epochs=3, optimizer=st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        verbose=0)
    tencrop = st.data.transforms.TenCrop(6)
    result = evaluate(model, Batches(x, y, shuffle=False),
                      tta=lambda xb: tencrop(np.pad(xb, ((0, 0), (1, 1), (1, 1), (0, 0)))))
    assert result["accuracy"] > 0.8 and np.isfinite(result["loss"])
    with pytest.raises(TypeError, match="tta must be None, a crop size"):
        evaluate(model, Batches(x, y), tta="tencrop")


# --------------------------------------------------------------------------- predict
def test_predict_probabilities_and_names():
    scores = np.array([[0.0, 3.0, 0.0], [2.0, 0.0, 1.0]])
    pred = predict(FixedScores(), _onehotish(scores), class_names=["cat", "dog", "eel"], batch_size=1)
    e = np.exp(scores)
    np.testing.assert_allclose(pred.probabilities, e / e.sum(1, keepdims=True), rtol=1e-12)
    assert pred.names == ["dog", "cat"] and list(pred.indices) == [1, 0]
    top = pred.top_k(2)
    assert [name for name, _ in top[1]] == ["cat", "eel"]
    assert top[1][0][1] == pytest.approx(e[1, 0] / e[1].sum())


def test_predict_scales_uint8_and_applies_transform():
    x8 = np.array([[[[255, 0, 51]]]], np.uint8)  # one 1x1 image with 3 channels
    pred = predict(FixedScores(), x8, transform=lambda xb: xb * 10)
    logits = np.array([10.0, 0.0, 2.0])
    np.testing.assert_allclose(pred.probabilities[0], np.exp(logits) / np.exp(logits).sum(), rtol=1e-5)
    assert pred.names is None


def test_predict_input_errors():
    with pytest.raises(ValueError, match=r"expected 4D input .* got shape \(6, 6, 1\)\. .*x\[None\]"):
        predict(FixedScores(), np.zeros((6, 6, 1), np.float32))
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        predict(FixedScores(), np.zeros((1, 2, 2, 3), np.float32), class_names=["a", "b"])


def test_fits_overlapping_in_threads_leave_the_warning_filters_as_they_were():
    # runs raced in threads enter and leave fit's silencing of NumPy's float warnings out of order
    import threading
    import warnings

    from striate.training import loop

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*overflow", category=RuntimeWarning)  # the user's own
        before = list(warnings.filters)
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

        def first():
            with loop._quiet_numerics():
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def second():
            a_in.wait(5)
            with loop._quiet_numerics():
                b_in.set()
                a_out.wait(5)   # the first left while this one is still inside: still silenced
                inside.append(bool(loop._quiet_added) and all(f in warnings.filters for f in loop._quiet_added))

        inside = []
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert inside == [True]
        assert warnings.filters == before      # the user's filter kept, none of fit's left behind
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            np.float32(3e38) * np.float32(10)
        assert [w.category for w in seen] == [RuntimeWarning]   # warnings are heard again afterwards
