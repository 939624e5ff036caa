"""The training, evaluation and prediction loops: ``fit``, ``evaluate``, ``predict``.

Plain functions over a model, an optimiser and iterables of ``(x, y)`` batches (a
:class:`striate.data.DataLoader`, or any iterable yielding float NHWC arrays and integer labels).
State that callbacks and checkpoints need lives in one small :class:`Run` record.

Example::

    >>> opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    >>> history = st.training.fit(model, train_loader, val_loader, epochs=10, optimizer=opt,
    ...                           schedule=st.optim.CosineAnnealingLR(opt, t_max=10))
    >>> st.training.evaluate(model, test_loader)["accuracy"]
"""
from __future__ import annotations

import contextlib
import math
import numbers
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from ..nn import Module
from ..optim import Optimizer, ReduceLROnPlateau
from ..tensor import Tensor, no_grad
from ..validation import check_int, check_int_at_least
from . import metrics
from .callbacks import Callback, History, check_monitor
from .checkpoint import Checkpoint, load_checkpoint


@dataclass
class Run:
    """What callbacks see of a training run (``callback.run``)."""

    model: Module
    optimizer: Optimizer
    train: object
    val: object = None
    schedule: object = None
    epochs: int = 1
    history: History = field(default_factory=History)
    callbacks: list = field(default_factory=list)
    metric_names: tuple = ()
    epoch: int = 0
    stop_training: bool = False


# --------------------------------------------------------------------------- helpers
def _loss_fn(loss):
    if callable(loss):
        return loss
    if loss in ("cross_entropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
        return F.cross_entropy
    raise ValueError(f"loss must be 'cross_entropy' or a callable loss(logits, labels). Received: loss={loss!r}.")


def _labels(yb):
    """A batch's labels as an array; ground truth that is not one array (a list of per-image box
    dicts, a dict of padded arrays: see :mod:`striate.training.tasks`) passes as it is to the loss."""
    if isinstance(yb, dict) or (isinstance(yb, (list, tuple)) and any(isinstance(v, dict) for v in yb)):
        return yb
    return np.asarray(yb)


def _is_task(loss_fn) -> bool:
    """A task (:mod:`striate.training.tasks`) is a loss that also decodes: no accuracy is computed."""
    return callable(getattr(loss_fn, "decode", None))


def _batch_input(xb) -> Tensor:
    """A batch as a float Tensor: uint8 images are scaled to [0, 1] as the data loader does."""
    if isinstance(xb, Tensor):
        return xb
    xb = np.asarray(xb)
    if xb.dtype == np.uint8:
        xb = xb.astype(np.float32) / np.float32(255.0)
    return Tensor(xb)


def _check_data(data, name: str, owner: str):
    if data is None or isinstance(data, (np.ndarray, Tensor, str)) or not hasattr(data, "__iter__"):
        raise TypeError(
            f"{owner}: {name} must be an iterable of (x, y) batches, such as "
            f"striate.data.DataLoader(x, y, batch_size=128). Received: {type(data).__name__}."
        )


def _progress(total, desc, verbose):
    """A tqdm bar on an interactive terminal with verbose=1; otherwise None (the summary line only)."""
    if verbose != 1 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, unit="batch")


def _summary_line(epoch, epochs, logs) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key in ("loss", "acc", "val_loss", "val_acc"):
        if key in logs:
            parts.append(f"{key} {logs[key]:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['seconds']:.1f}s")
    return "  ".join(parts)


_QUIET_WHAT = ("overflow", "invalid value", "divide by zero", "underflow")
_quiet_lock = threading.Lock()
_quiet_users = 0        # fits inside _quiet_numerics now (runs raced in threads overlap)
_quiet_added = []       # the filters they added (none that the user had already)


@contextlib.contextmanager
def _quiet_numerics():
    """Silence NumPy's floating-point RuntimeWarnings (overflow, invalid value, divide by zero) while
    training: a diverging run would print a screenful of them, from every thread, before the loss
    check reports the divergence once. ``warnings`` filters are process-wide, so the op threads
    (:mod:`striate.ops.parallel`) are covered too, which ``np.errstate`` (per thread) would not.

    Process-wide also means that fits running at once in threads (``striate serve``'s races) share
    one set of filters: the first to enter adds them, the last to leave removes them
    (``warnings.catch_warnings`` would restore whatever another thread saved)."""
    global _quiet_users, _quiet_added
    with _quiet_lock:
        if _quiet_users == 0:
            before = list(warnings.filters)
            for what in _QUIET_WHAT:
                warnings.filterwarnings("ignore", message=f".*{what}", category=RuntimeWarning)
            _quiet_added = [f for f in warnings.filters if f not in before]
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                warnings.filters[:] = [f for f in warnings.filters if f not in _quiet_added]
                warnings._filters_mutated()   # as warnings.catch_warnings does after changing them
                _quiet_added = []


# --------------------------------------------------------------------------- fit
def fit(model, train, val=None, epochs: int = 1, optimizer: Optimizer | None = None, loss="cross_entropy",
        schedule=None, callbacks=(), verbose: int = 1, resume=None, reduce=None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; return the :class:`History`.

    Each step: ``model.train()``, forward, loss, ``optimizer.zero_grad()``, backward,
    ``optimizer.step()``. After each epoch: validation (if ``val``), the schedule's ``step``
    (a :class:`~striate.optim.ReduceLROnPlateau` gets its monitored metric), the callbacks, and a
    summary line ``epoch 3/10  loss ...  acc ...  val_loss ...  val_acc ...  lr ...  2.1s``.

    Args:
        model: a Module whose parameters exist (``model.build(input_shape)`` for lazy layers).
        train: iterable of ``(x, y)`` batches: x float NHWC (uint8 is scaled to [0, 1]), y int labels.
        val: optional iterable of validation batches; adds ``val_loss`` and ``val_acc`` to the logs.
        epochs: total number of epochs (a resumed run continues up to this number).
        optimizer: e.g. ``st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)``; default Adam(1e-3).
        loss: ``'cross_entropy'`` or a callable ``loss(logits, labels) -> scalar Tensor``, or a task of
            :mod:`striate.training.tasks` (localisation, detection, segmentation): its labels may be
            per-image box lists or masks, and the logs then hold the loss without accuracy.
        schedule: a learning-rate schedule on ``optimizer``, stepped once per epoch.
        callbacks: :class:`~striate.training.callbacks.Callback` objects (EarlyStopping, ModelCheckpoint, ...).
        verbose: 0 silent, 1 progress bar (on a terminal, if tqdm is installed) and a line per epoch,
            2 a line per epoch.
        resume: path of a checkpoint written by ``ModelCheckpoint``/``save_checkpoint`` (or a
            :class:`~striate.training.checkpoint.Checkpoint` already loaded) to continue from:
            weights, optimiser, schedule, callbacks, history and random state are restored, and
            training goes on from the saved epoch — the result equals an uninterrupted run.
        reduce: for data-parallel training, ``reduce(metrics, count) -> metrics`` combining every
            process's epoch metrics (:func:`striate.distributed.reduce_metrics`), so that the logs,
            the schedule and the callbacks see the whole epoch on every process.

    A loss that becomes NaN or infinite stops training with a ``FloatingPointError`` naming the epoch
    and batch; NumPy's overflow / invalid-value RuntimeWarnings on the way there are not printed (the
    error says it once).

    Returns:
        The History: ``history.history["loss"]`` etc., one value per epoch.
    """
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be a striate.nn.Module. Received: {type(model).__name__}.")
    _check_data(train, "train", "fit")
    if val is not None:
        _check_data(val, "val", "fit")
    check_int_at_least(epochs, "epochs", 0, owner="fit")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit: verbose must be 0, 1 or 2. Received: verbose={verbose!r}.")
    if optimizer is None:
        from ..optim import Adam
        optimizer = Adam(model.parameters(), lr=1e-3)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be a striate.optim optimizer. Received: {type(optimizer).__name__}.")
    if schedule is not None and getattr(schedule, "optimizer", None) is not optimizer:
        raise ValueError("fit: the schedule must be made on the same optimizer that fit is given.")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback objects. Received: {type(cb).__name__}.")
    loss_fn = _loss_fn(loss)

    if _is_task(loss_fn):  # localisation, detection, segmentation: the loss only (their metrics are decoded)
        names = ("loss",) + (("val_loss",) if val is not None else ()) + ("lr", "seconds")
    else:
        names = ("loss", "acc") + (("val_loss", "val_acc") if val is not None else ()) + ("lr", "seconds")
    run = Run(model=model, optimizer=optimizer, train=train, val=val, schedule=schedule, epochs=int(epochs),
              callbacks=callbacks, metric_names=names)
    if isinstance(schedule, ReduceLROnPlateau):
        check_monitor("ReduceLROnPlateau", schedule.monitor, names)

    start = 0
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        ckpt.restore(model, optimizer, schedule, callbacks, loader=train, history=run.history)
        start = ckpt.epoch
        if ckpt.state.get("stopped"):
            run.stop_training = True
        if verbose:
            print(f"resumed from {ckpt.path} after epoch {start}")

    for cb in [run.history] + callbacks:
        cb.on_train_begin(run)
    epoch = start
    while epoch < run.epochs and not run.stop_training:
        run.epoch = epoch
        t0 = time.perf_counter()
        lr = optimizer.lr  # the rate this epoch trains with (the schedule changes it at the end)
        with _quiet_numerics():
            logs = _train_epoch(run, epoch, loss_fn, verbose)
            if reduce is not None:  # the processes' training shares are equally long: equal weights
                logs = reduce(logs, 1)
            if val is not None:
                result = evaluate(model, val, loss=loss_fn, details=False)
                if reduce is not None:
                    result = reduce(result, result["num_samples"])
                logs["val_loss"] = result["loss"]
                if "accuracy" in result:
                    logs["val_acc"] = result["accuracy"]
        logs["lr"] = lr
        logs["seconds"] = time.perf_counter() - t0
        run.history.on_epoch_end(epoch, logs)
        if schedule is not None:
            if isinstance(schedule, ReduceLROnPlateau):
                schedule.step(logs[schedule.monitor])
            else:
                schedule.step()
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        for cb in [run.history] + callbacks:
            cb.on_checkpoint(epoch, logs)
        if verbose:
            print(_summary_line(epoch, run.epochs, logs), flush=True)
        epoch += 1
    for cb in callbacks:
        cb.on_train_end()
    return run.history


def _train_epoch(run: Run, epoch: int, loss_fn, verbose: int) -> dict:
    model, optimizer = run.model, run.optimizer
    for cb in run.callbacks:
        cb.on_epoch_begin(epoch)
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    try:
        num_batches = len(run.train)
    except TypeError:
        num_batches = None
    bar = _progress(num_batches, f"epoch {epoch + 1}/{run.epochs}", verbose)
    try:
        for batch, (xb, yb) in enumerate(run.train):
            yb = _labels(yb)
            logits = model(_batch_input(xb))
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = float(loss.data)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"fit: the loss became {value} at epoch {epoch + 1}, batch {batch + 1}. The learning rate "
                    f"(lr={optimizer.lr:g}) is probably too high for this model; lower it."
                )
            n = len(xb)
            total_loss += value * n
            if isinstance(logits, Tensor) and logits.ndim == 2 and getattr(yb, "ndim", 0) == 1:
                correct += int((logits.data.argmax(axis=1) == yb).sum())
            seen += n
            batch_logs = {"loss": value}
            for cb in run.callbacks:
                cb.on_batch_end(batch, batch_logs)
            if bar is not None:
                bar.update(1)
                if batch % 10 == 0:
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    finally:
        if bar is not None:
            bar.close()
    if seen == 0:
        raise ValueError("fit: the training data yielded no batches. Check the data set and the batch size.")
    return {"loss": total_loss / seen} if _is_task(loss_fn) else {"loss": total_loss / seen, "acc": correct / seen}


# --------------------------------------------------------------------------- evaluate
def _tta_views(tta):
    """Turn ``tta`` into a function batch (n, h, w, c) -> views (v, n, h', w', c)."""
    if tta is None:
        return None
    if isinstance(tta, numbers.Integral) and not isinstance(tta, bool):
        from ..data import transforms
        return transforms.TenCrop(int(tta))
    if callable(tta):
        return tta
    raise TypeError(
        "evaluate: tta must be None, a crop size (int, for 10-crop test-time augmentation) or a callable "
        f"returning views of shape (views, n, h, w, c). Received: {type(tta).__name__}."
    )


def evaluate(model, data, loss="cross_entropy", tta=None, details: bool = True) -> dict:
    """Loss and accuracy of ``model`` on ``data``, in evaluation mode without recording gradients.

    Args:
        model: the Module.
        data: iterable of ``(x, y)`` batches (e.g. a DataLoader with ``shuffle=False``).
        loss: ``'cross_entropy'`` or a callable ``loss(logits, labels)``, or a task of
            :mod:`striate.training.tasks` (then only ``loss`` and ``num_samples`` are returned).
        tta: test-time augmentation. An int ``s`` takes the 10 crops of size ``s`` (4 corners + centre,
            and their mirror images; ``striate.data.transforms.TenCrop``) and averages the softmax
            over them — the model must accept ``s x s`` inputs. A callable maps a batch
            ``(n, h, w, c)`` to views ``(v, n, h', w', c)``. With TTA the loss is the cross-entropy
            of the averaged probabilities.
        details: also compute the confusion matrix and per-class accuracy (default True).

    Returns:
        dict with ``loss``, ``accuracy`` (top-1, a fraction), ``top5_accuracy`` (with >= 5 classes),
        ``num_samples``, and with ``details`` ``confusion_matrix`` (rows true, columns predicted,
        ``(k, k)`` int64) and ``per_class_accuracy`` (``(k,)``, NaN for absent classes).

    Example::

        >>> result = evaluate(model, DataLoader(ds.x_test, ds.y_test, shuffle=False))
        >>> print(f"{result['accuracy']:.2%}")
    """
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: model must be a striate.nn.Module. Received: {type(model).__name__}.")
    _check_data(data, "data", "evaluate")
    loss_fn = _loss_fn(loss)
    views_of = _tta_views(tta)
    was_training = model.training
    model.eval()
    total_loss, seen = 0.0, 0
    labels, scores = [], []
    try:
        with no_grad():
            for xb, yb in data:
                yb = _labels(yb)
                if _is_task(loss_fn):  # a task: the loss here, its own metrics from its decoded outputs
                    total_loss += float(loss_fn(model(_batch_input(xb)), yb).data) * len(xb)
                    seen += len(xb)
                    continue
                if views_of is None:
                    logits = model(_batch_input(xb))
                    total_loss += float(loss_fn(logits, yb).data) * len(yb)
                    scores.append(logits.data)
                else:
                    x = _batch_input(xb).data
                    views = views_of(x)  # (v, n, h', w', c)
                    probs = np.mean([F.softmax(model(Tensor(np.ascontiguousarray(v)))).data for v in views], axis=0)
                    true_p = probs[np.arange(len(yb)), yb]
                    total_loss += float(-np.log(np.maximum(true_p, np.finfo(probs.dtype).tiny)).sum())
                    scores.append(probs)
                labels.append(yb)
                seen += len(yb)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the data yielded no batches.")
    if _is_task(loss_fn):
        return {"loss": total_loss / seen, "num_samples": int(seen)}
    y = np.concatenate(labels).astype(np.int64)
    s = np.concatenate(scores)
    pred = s.argmax(axis=1)
    k = s.shape[1]
    result = {"loss": total_loss / seen, "accuracy": metrics.accuracy(y, pred), "num_samples": int(seen)}
    if k >= 5:
        result["top5_accuracy"] = metrics.top_k_accuracy(y, s, 5)
    if details:
        cm = metrics.confusion_matrix(y, pred, k)
        result["confusion_matrix"] = cm
        result["per_class_accuracy"] = metrics.per_class_accuracy(cm)
    return result


# --------------------------------------------------------------------------- predict
@dataclass
class Prediction:
    """What :func:`predict` returns.

    Attributes:
        probabilities: ``(n, k)`` softmax outputs.
        indices: ``(n,)`` predicted class indices.
        names: predicted class names (None without ``class_names``).
        class_names: all class names, index -> name (or None).
    """

    probabilities: np.ndarray
    indices: np.ndarray
    names: list | None = None
    class_names: list | None = None

    def top_k(self, k: int = 3) -> list[list[tuple]]:
        """Per sample, the ``k`` most likely ``(class name or index, probability)`` pairs, best first."""
        k = min(k, self.probabilities.shape[1])
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[j] if self.class_names else int(j), float(p[j])) for j in row]
                for row, p in zip(order, self.probabilities)]


def predict(model, x, class_names=None, batch_size: int = 256, transform=None) -> Prediction:
    """Class probabilities and predicted classes for images ``x``.

    Args:
        model: the Module (run in evaluation mode without gradients).
        x: images ``(n, h, w, c)``: uint8 (scaled to [0, 1]) or float, as the model was trained on.
        class_names: optional list of names, index -> name.
        batch_size: images per forward pass.
        transform: optional function applied to each float batch (e.g. the standardisation used
            in training).

    Returns:
        :class:`Prediction` with ``probabilities``, ``indices``, ``names`` (None without class_names).

    Example::

        >>> p = predict(model, ds.x_test[:4], class_names=ds.class_names)
        >>> p.names, p.top_k(3)
    """
    if not isinstance(model, Module):
        raise TypeError(f"predict: model must be a striate.nn.Module. Received: {type(model).__name__}.")
    x = x.data if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim != 4:
        hint = " If this is one image, add a batch axis with x[None]." if x.ndim == 3 else ""
        raise ValueError(f"predict: expected 4D input (batch, height, width, channels), got shape {x.shape}.{hint}")
    check_int(batch_size, "batch_size", owner="predict")
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for i in range(0, len(x), batch_size):
                xb = _batch_input(x[i:i + batch_size]).data
                if transform is not None:
                    xb = transform(xb)
                out.append(F.softmax(model(Tensor(xb))).data)
    finally:
        model.train(was_training)
    probs = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    idx = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    names = None
    if class_names is not None:
        class_names = list(class_names)
        if probs.shape[1] != len(class_names):
            raise ValueError(f"predict: the model has {probs.shape[1]} outputs but {len(class_names)} class names "
                             "were given.")
        names = [class_names[i] for i in idx]
    return Prediction(probs, idx, names, class_names)
