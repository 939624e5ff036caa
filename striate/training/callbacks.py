"""Callbacks: hooks into :func:`striate.training.fit` — History, EarlyStopping, ModelCheckpoint, CSVLogger.

``fit`` calls, in order: ``on_train_begin(run)``; per epoch ``on_epoch_begin(epoch)``,
``on_batch_end(batch, logs)`` after every step, ``on_epoch_end(epoch, logs)`` (update state, decide) and
then ``on_checkpoint(epoch, logs)`` (write files — by then every callback has updated the state a
checkpoint saves); finally ``on_train_end()``. Epochs count from 0; ``logs`` holds ``loss``, ``acc``,
``lr``, ``seconds`` and, with validation data, ``val_loss`` and ``val_acc``.

``run`` (the :class:`~striate.training.loop.Run` given to ``on_train_begin``) exposes the model,
optimizer, schedule, history and ``stop_training``. Callbacks that hold state implement
``state_dict``/``load_state_dict`` so that checkpoints resume them.
"""
from __future__ import annotations

import csv
import io
import math
import numbers
import os

import numpy as np

from ..atomic import atomic_write_text
from ..validation import check_int_at_least as _check_int
from .checkpoint import save_checkpoint, save_weights


class Callback:
    """Base class: override the hooks you need."""

    run = None

    def on_train_begin(self, run) -> None:
        self.run = run

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_checkpoint(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _monitor_mode(monitor: str, mode: str, owner: str) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"{owner}: monitor must be a metric name such as 'val_loss'. Received: monitor={monitor!r}.")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}.")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def check_monitor(owner: str, monitor: str, available) -> None:
    """Raise if ``monitor`` is not among the metrics ``fit`` will report, listing those it will."""
    available = list(available)
    if monitor not in available:
        hint = " Pass validation data (val=...) to fit() to get val_* metrics." if monitor.startswith("val_") else ""
        raise ValueError(
            f"{owner}: the monitored metric {monitor!r} is not available. Available metrics: "
            f"{', '.join(available)}.{hint}"
        )


def _monitored(owner, monitor, logs):
    if monitor not in logs:
        check_monitor(owner, monitor, [k for k in logs])
    return float(logs[monitor])


class History(Callback):
    """Per-epoch metrics: ``history.history = {"loss": [...], "val_acc": [...], ...}``, ``history.epoch``.

    ``fit`` returns it. Example::

        >>> h = fit(model, train, val, epochs=3, optimizer=opt, verbose=0)
        >>> h.history["val_acc"][-1]
    """

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list] = {}

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(int(epoch))
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def rows(self) -> list[dict]:
        """One dict per epoch: ``{"epoch": 1, "loss": ..., ...}`` (epochs counted from 1)."""
        return [{"epoch": e + 1, **{k: v[i] for k, v in self.history.items() if i < len(v)}}
                for i, e in enumerate(self.epoch)]

    def state_dict(self):
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state):
        self.epoch = [int(e) for e in state["epoch"]]
        self.history = {k: [float(x) for x in v] for k, v in state["history"].items()}

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={list(self.history)})"


class EarlyStopping(Callback):
    """Stop training when a monitored metric has stopped improving (Keras' rule).

    Each epoch: ``wait += 1``; an improvement (``value < best - min_delta`` in min mode,
    ``value > best + min_delta`` in max mode) records ``best`` and resets ``wait`` to 0; otherwise
    training stops once ``wait >= patience``.

    Args:
        monitor: metric name, e.g. ``'val_loss'`` or ``'val_acc'``.
        min_delta: smallest change that counts as an improvement, >= 0.
        patience: epochs without improvement before stopping, >= 0.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (max when the name contains ``'acc'``).
        baseline: the metric must beat this to count as improving at all.
        restore_best_weights: at the end of training, put back the weights of the best epoch.
        start_from_epoch: epochs of warm-up during which nothing is monitored.

    Example::

        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        owner = "EarlyStopping"
        self.mode = _monitor_mode(monitor, mode, owner)
        self.monitor = monitor
        if not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"{owner}: min_delta must be a number >= 0. Received: min_delta={min_delta!r}.")
        self.min_delta = float(min_delta)
        self.patience = _check_int(patience, "patience", 0, owner)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _check_int(start_from_epoch, "start_from_epoch", 0, owner)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.best_weights = None

    def _improves(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, run):
        super().on_train_begin(run)
        check_monitor("EarlyStopping", self.monitor, run.metric_names)

    def on_epoch_end(self, epoch, logs):
        value = _monitored("EarlyStopping", self.monitor, logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.run.model.state_dict()
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.run.model.state_dict()
            if self.baseline is None or self._improves(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.run.stop_training = True

    def on_train_end(self):
        if self.restore_best_weights and self.best_weights is not None:
            self.run.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.wait, self.best = int(state["wait"]), float(state["best"])
        self.best_epoch, self.stopped_epoch = int(state["best_epoch"]), int(state["stopped_epoch"])
        bw = state.get("best_weights")
        self.best_weights = None if bw is None else {k: np.array(v, copy=True) for k, v in bw.items()}


class ModelCheckpoint(Callback):
    """Save the run after every epoch (the *last* checkpoint) or whenever a metric improves (the *best*).

    A full checkpoint (default) resumes training with ``fit(..., resume=path)``; with
    ``save_weights_only=True`` only the model weights are written (:func:`load_weights` reads them).
    Files are written atomically.

    Args:
        filepath: destination; may contain ``{epoch}`` (from 1) and metric fields, e.g.
            ``"ckpt-{epoch:02d}-{val_acc:.3f}.npz"``.
        monitor, mode: the metric deciding "best" (used with ``save_best_only``).
        save_best_only: write only when the monitored metric improves on the best so far.
        save_weights_only: write a weights file instead of a full checkpoint.
        meta: JSON-able description stored in the file (model name and arguments, class names, ...)
            so that the model can be rebuilt from the file alone.

    Example::

        >>> last = ModelCheckpoint("run/checkpoint.npz")
        >>> best = ModelCheckpoint("run/best.npz", monitor="val_acc", save_best_only=True)
    """

    def __init__(self, filepath, monitor="val_loss", mode="auto", save_best_only=False, save_weights_only=False,
                 meta=None):
        owner = "ModelCheckpoint"
        if not isinstance(filepath, (str, os.PathLike)) or not os.fspath(filepath):
            raise ValueError(f"{owner}: filepath must be a path. Received: filepath={filepath!r}.")
        folder = os.path.dirname(os.path.abspath(os.fspath(filepath)))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"{owner}: the folder of filepath={os.fspath(filepath)!r} is a file.")
        self.filepath = os.fspath(filepath)
        self.mode = _monitor_mode(monitor, mode, owner)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"{owner}: meta must be a dict. Received: {type(meta).__name__}.")
        self.meta = meta
        self.best = math.inf if self.mode == "min" else -math.inf
        self._save_now = False
        self.last_saved = None

    def on_train_begin(self, run):
        super().on_train_begin(run)
        if self.save_best_only:
            check_monitor("ModelCheckpoint", self.monitor, run.metric_names)

    def on_epoch_end(self, epoch, logs):
        if not self.save_best_only:
            self._save_now = True
            return
        value = _monitored("ModelCheckpoint", self.monitor, logs)
        better = value < self.best if self.mode == "min" else value > self.best
        self._save_now = better
        if better:
            self.best = value

    def on_checkpoint(self, epoch, logs):
        if not self._save_now:
            return
        self._save_now = False
        path = self.filepath.format(epoch=epoch + 1, **logs)
        run = self.run
        if self.save_weights_only:
            save_weights(path, run.model, meta=self.meta)
        else:
            save_checkpoint(path, run.model, run.optimizer, run.schedule, epoch=epoch + 1, history=run.history,
                            callbacks=run.callbacks, loader=run.train, meta=self.meta,
                            stopped=run.stop_training)
        self.last_saved = path

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = float(state["best"])


def write_csv(path, rows, fields) -> None:
    """``rows`` (dicts) as a CSV file with the columns ``fields``, floats to 6 significant digits, written
    atomically (a reader never sees half a log)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


class CSVLogger(Callback):
    """Write one CSV row per epoch (``epoch, loss, acc, val_loss, val_acc, lr, seconds``) to ``filename``.

    The file is rewritten atomically from the run's history after each epoch, so a resumed run
    continues the same log.
    """

    def __init__(self, filename):
        if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
            raise ValueError(f"CSVLogger: filename must be a path. Received: filename={filename!r}.")
        self.filename = os.fspath(filename)

    def on_checkpoint(self, epoch, logs):
        write_csv(self.filename, self.run.history.rows(), ["epoch"] + [k for k in self.run.history.history])
