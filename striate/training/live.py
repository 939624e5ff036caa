"""Training you can watch and steer while it runs: :class:`LiveRun`.

A LiveRun trains in a background thread with :func:`~striate.training.fit` and writes an ordinary run
folder (:class:`~striate.training.RunDir`: ``checkpoint.npz`` every epoch, ``checkpoint_best.npz``,
``log.csv``, then ``weights.npz`` and ``metrics.json``), so ``striate train --resume
DIR/checkpoint.npz`` continues it. Between two batches a callback applies the changes asked for
(learning rate, momentum, weight decay, batch size — each logged with its step), waits while the run
is paused, and ends it when it is stopped. What a page draws comes from :meth:`LiveRun.snapshot`,
safe to call from any thread: the loss of every step, the epochs' train and validation loss and
accuracy, per layer the norms of the weights, gradients and last update with histograms, the first
layer's filters, a probe image's activations and the validation confusion matrix of the last epoch.

Example::

    >>> run = LiveRun("runs/live-1", dataset="digits", model="conv 8 3 relu, pool 2, dense 10", epochs=2)
    >>> run.start()
    >>> run.set(lr=0.01)                  # applied before the next batch, logged with its step
    >>> run.pause(); run.resume()
    >>> run.join(); run.snapshot()["status"]
    'finished'
"""
from __future__ import annotations

import math
import os
import threading
import time
import uuid

import numpy as np

from ..nn import Module
from ..tensor import Tensor, no_grad
from .callbacks import Callback

STATUSES = ("ready", "running", "paused", "stopped", "finished", "failed")
SETTABLE = ("lr", "momentum", "weight_decay", "batch_size")
MAX_STEPS_KEPT = 20000     # per-step losses a snapshot may hold (a long run keeps its latest ones)
STATS_EVERY = 0.4          # seconds between two computations of the layer statistics and probe maps
HIST_BINS = 24


class _Stopped(Exception):
    """Raised between two batches to end a run that was asked to stop."""


def _check_number(value, name, low=None, high=None, low_open=False, integer=False):
    try:
        v = int(value) if integer and float(value) == int(value) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number. Received: {name}={value!r}.") from None
    except OverflowError:   # int(inf)
        raise ValueError(f"{name} must be finite. Received: {name}={value!r}.") from None
    if integer and not isinstance(v, int):
        raise ValueError(f"{name} must be a whole number. Received: {name}={value!r}.")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite. Received: {name}={value!r}.")
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}. Received: {name}={value!r}.")
    if high is not None and v >= high:
        raise ValueError(f"{name} must be < {high:g}. Received: {name}={value!r}.")
    return v


def check_settings(changes: dict) -> dict:
    """The changes a running training accepts (:data:`SETTABLE`), checked: one-line ValueError otherwise."""
    if not isinstance(changes, dict) or not changes:
        raise ValueError(f"give at least one of {', '.join(SETTABLE)} to change. Received: {changes!r}.")
    out = {}
    for key, value in changes.items():
        if key == "lr":
            out[key] = _check_number(value, "lr", 0, low_open=True)
        elif key == "momentum":
            out[key] = _check_number(value, "momentum", 0, 1)
        elif key == "weight_decay":
            out[key] = _check_number(value, "weight_decay", 0)
        elif key == "batch_size":
            out[key] = _check_number(value, "batch_size", 1, integer=True)
        else:
            raise ValueError(f"{key!r} cannot be changed while training; choose one of {', '.join(SETTABLE)}.")
    return out


def _histogram(values: np.ndarray) -> dict:
    v = values.ravel().astype(np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1e-12
    counts, _ = np.histogram(v, bins=HIST_BINS, range=(lo, hi))
    return {"lo": lo, "hi": hi, "counts": counts.tolist()}


def _norm(a) -> float:
    return float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))


def unfinished_runs(folder) -> list[dict]:
    """The runs under ``folder`` that stopped before their end: a ``checkpoint.npz`` without ``metrics.json``,
    newest first, as ``{"path", "name", "epoch", "epochs", "model", "dataset", "optimizer"}``."""
    from .checkpoint import CheckpointError, load_checkpoint

    found = []
    if not os.path.isdir(folder):
        return found
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        ckpt_path = os.path.join(path, "checkpoint.npz")
        if not os.path.isfile(ckpt_path) or os.path.exists(os.path.join(path, "metrics.json")):
            continue
        try:
            ckpt = load_checkpoint(ckpt_path)
        except (CheckpointError, OSError, ValueError):
            continue
        config = ckpt.meta.get("config") or {}
        found.append({"path": path, "name": name, "epoch": int(ckpt.epoch), "epochs": int(config.get("epochs", 0)),
                      "model": config.get("model"), "dataset": config.get("dataset"),
                      "optimizer": config.get("optimizer"), "mtime": os.path.getmtime(ckpt_path)})
    found.sort(key=lambda r: -r["mtime"])
    return found


class LiveRun:
    """One training run in a background thread, steerable and observable while it runs.

    Args:
        folder: the run folder (made and locked by :meth:`start`; never one holding another run).
        dataset: ``"digits"`` (embedded), ``"mnist"``, ``"fashion_mnist"``, ... or an image folder.
        model: a zoo model name or a layer list (``"conv 8 5 relu, pool 2, dense 10"``).
        optimizer: ``"sgd"`` (Nesterov momentum when ``momentum > 0``), ``"adam"`` or ``"adamw"``.
        lr, momentum, weight_decay, batch_size, seed, val_split: the settings, as ``striate train``'s.
        data_dir: the folder holding the data set's files (None: the cache, or embedded).
        epochs: the total number of epochs (default 2; a resumed run: its own total, or a larger one).
        resume: a ``checkpoint.npz`` to continue (its folder becomes the run's; its settings are kept).
        data: an already loaded data set (``striate.data.Dataset``), to share one between runs.

    Example::

        >>> run = LiveRun("runs/a", model="conv 8 3 relu, pool 2, dense 10", epochs=1).start()
        >>> run.join().snapshot()["history"]["val_acc"]
    """

    def __init__(self, folder=None, dataset="digits", model="digits_cnn", optimizer="sgd", lr=0.05, momentum=0.9,
                 weight_decay=0.0, batch_size=32, epochs=None, seed=0, val_split=0.1, data_dir=None, verify=True,
                 resume=None, data=None, label=None):
        from ..optim.build import OPTIMIZERS
        self.ckpt = None
        if resume is not None:
            from .checkpoint import load_checkpoint
            self.ckpt = load_checkpoint(resume)
            if self.ckpt.kind != "checkpoint":
                raise ValueError(f"resume: {resume} is a weights file; resume needs the checkpoint.npz of a run.")
            saved = dict(self.ckpt.meta.get("config") or {})
            if not saved:
                raise ValueError(f"resume: {resume} records no training settings; it was not written by a run.")
            folder = os.path.dirname(os.path.abspath(resume))
            if epochs is None:
                epochs = max(int(saved.get("epochs", 1)), self.ckpt.epoch + 1)
            elif int(_check_number(epochs, "epochs", 1, integer=True)) <= self.ckpt.epoch:
                raise ValueError(f"the run in {resume} has already trained {self.ckpt.epoch} epochs: give epochs > "
                                 f"{self.ckpt.epoch} to continue it. Received: epochs={epochs}.")
            saved["epochs"] = int(epochs)
            config = saved
        else:
            if folder is None:
                raise ValueError("LiveRun needs a folder for the run's files. Received: folder=None.")
            if not isinstance(model, str) or not model.strip():
                raise ValueError(f"model must be a zoo model name or a layer list. Received: model={model!r}.")
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. "
                                 f"Received: optimizer={optimizer!r}.")
            epochs = 2 if epochs is None else epochs
            config = {"model": model.strip(), "epochs": int(_check_number(epochs, "epochs", 1, integer=True)),
                      "batch_size": int(_check_number(batch_size, "batch_size", 1, integer=True)),
                      "optimizer": optimizer, "lr": _check_number(lr, "lr", 0, low_open=True),
                      "momentum": _check_number(momentum, "momentum", 0, 1),
                      "weight_decay": _check_number(weight_decay, "weight_decay", 0),
                      "schedule": "none", "warmup": 0, "augment": "none", "crop_padding": 1,
                      "val_split": _check_number(val_split, "val_split", 0, 1),
                      "dataset": str(dataset), "data_dir": None if data_dir is None else os.path.abspath(data_dir),
                      "verify": bool(verify), "seed": int(_check_number(seed, "seed", 0, integer=True))}
        self.config = config          # what the checkpoints record (changes made while training update it)
        self.folder = os.fspath(folder)
        self.label = label or os.path.basename(os.path.normpath(self.folder))
        self.run_id = (self.ckpt.meta.get("run_id") if self.ckpt is not None else None) or uuid.uuid4().hex
        self._data = data
        self._lock = threading.Lock()
        self._resume_event = threading.Event()
        self._resume_event.set()
        self._stop = False
        self._pending = {}
        self._thread = None
        self.status = "ready"
        self.error = None
        self.step = 0
        self.epoch = self.ckpt.epoch if self.ckpt is not None else 0
        self.steps = []           # [step, loss]
        self.changes = []         # {"step", "epoch", "setting", "old", "new"}
        self.history = {}         # epoch metrics, lists
        self.epoch_steps = []     # the step each epoch ended at (None for epochs trained before a resume)
        self.layers = []
        self.flow_start = None    # the first gradient norms recorded: {"step", "grad_norm": [per layer]}
        self.filters = None
        self.probe = None
        self.confusion = None
        self.test = None
        self.class_names = []
        self.started_at = None

    # ------------------------------------------------------------------------------------ preparing
    def prepare(self):
        """Load the data, build the model and optimiser, make and lock the folder (errors: one-line ValueError)."""
        from .. import random
        from ..data import DataLoader, load_dataset, validation_split
        from ..optim import build_optimizer
        from . import recipe
        from .run import run_callbacks
        from .run_dir import RunDir

        c = self.config
        ds = self._data if self._data is not None else load_dataset(c["dataset"], data_dir=c["data_dir"],
                                                                     verify=c["verify"])
        self.class_names = list(ds.class_names)
        model_args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
        model = build_model(c["model"], model_args, rng=c["seed"])
        self.run_dir = RunDir(self.folder, option="run folder")
        resume_path = self.ckpt.path if self.ckpt is not None else None
        self.run_dir.check(run_id=self.run_id, resume=resume_path)
        random.manual_seed(c["seed"])
        x_tr, y_tr, x_val, y_val = validation_split(ds, c["val_split"], c["seed"])
        train_t, eval_t = recipe.build_transforms(c, x_tr, ds.input_shape)
        self.model = model
        self.opt = build_optimizer(c["optimizer"], model.parameters(), c["lr"], c["momentum"], c["weight_decay"])
        self.schedule = None   # a constant rate, which the user changes (a schedule would set it back)
        self.train = DataLoader(x_tr, y_tr, batch_size=c["batch_size"], shuffle=True, transform=train_t,
                                rng=c["seed"] + 1)
        self.val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=eval_t)
        self.ds, self.eval_t = ds, eval_t
        probe_x = (x_val if x_val is not None else ds.x_test)[:1]
        self.probe_input = eval_t(probe_x.astype(np.float32) / 255.0 if probe_x.dtype == np.uint8 else probe_x)
        self.probe_label = int((y_val if y_val is not None else ds.y_test)[0])
        self.meta = recipe.run_meta(c, model_args, self.run_id, ds, eval_t)
        self.callbacks = run_callbacks(self.run_dir, self.meta, with_best=self.val is not None)  # train_run's files
        self.run_dir.open(run_id=self.run_id, resume=resume_path)
        return self

    # ------------------------------------------------------------------------------------ control
    def start(self):
        """Prepare the run (synchronously: its errors reach the caller) and train it in a background thread."""
        if self.status != "ready":
            raise ValueError(f"the run {self.label!r} has already been started (it is {self.status}).")
        self.prepare()
        self.status = "running"
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._main, name=f"striate-live-{self.label}", daemon=True)
        self._thread.start()
        return self

    def pause(self):
        if self.status != "running":
            raise ValueError(f"only a running run can be paused; {self.label!r} is {self.status}.")
        self._resume_event.clear()
        self.status = "paused"
        return self

    def resume(self):
        if self.status != "paused":
            raise ValueError(f"only a paused run can be resumed; {self.label!r} is {self.status}.")
        self.status = "running"
        self._resume_event.set()
        return self

    def stop(self):
        """End the run before its next batch; its last checkpoint (the last whole epoch) stays to resume from."""
        if self.status not in ("running", "paused"):
            raise ValueError(f"only a running or paused run can be stopped; {self.label!r} is {self.status}.")
        self._stop = True
        self._resume_event.set()
        return self

    def set(self, **changes):
        """Change ``lr``, ``momentum``, ``weight_decay`` or ``batch_size`` before the next batch (the batch size
        from the next epoch). Each change is logged with the step it takes effect at (:attr:`changes`)."""
        changes = check_settings(changes)
        if self.status in ("stopped", "finished", "failed"):
            raise ValueError(f"the run {self.label!r} has ended ({self.status}); its settings can no longer change.")
        if "momentum" in changes and self.config["optimizer"] != "sgd":
            raise ValueError(f"momentum applies to SGD; this run uses {self.config['optimizer']}.")
        with self._lock:
            self._pending.update(changes)
        if self.status == "ready":
            self._apply_pending()
        return self

    @property
    def settings(self) -> dict:
        """The settings the next batch trains with: the current ones and the changes waiting for it."""
        with self._lock:
            return {**{k: self.config[k] for k in SETTABLE}, **self._pending}

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------------------------ the thread
    def _apply_pending(self, batch_size_now=False):
        with self._lock:
            pending, self._pending = self._pending, {}
            for key, new in pending.items():
                old = self.config[key]
                if old == new:
                    continue
                if key == "batch_size":
                    if hasattr(self, "train"):
                        self.train.batch_size = int(new)
                elif hasattr(self, "opt"):
                    for group in self.opt.param_groups:
                        group[key] = new
                self.config[key] = new
                self.changes.append({"step": self.step, "epoch": self.epoch + 1, "setting": key, "old": old,
                                     "new": new, "note": "from the next epoch" if key == "batch_size" else ""})

    def _main(self):
        from .loop import evaluate, fit
        from . import recipe
        from .checkpoint import save_weights

        control = _Control(self)
        started = time.perf_counter()
        try:
            history = fit(self.model, self.train, self.val, epochs=self.config["epochs"], optimizer=self.opt,
                          schedule=self.schedule, callbacks=self.callbacks + [control], verbose=0, resume=self.ckpt)
            from ..data import DataLoader
            test = DataLoader(self.ds.x_test, self.ds.y_test, batch_size=256, shuffle=False, transform=self.eval_t)
            result = evaluate(self.model, test)
            save_weights(self.run_dir.weights, self.model, meta=self.meta)
            metrics = recipe.run_metrics(result, history, self.model, self.ds, self.config, started,
                                         time.perf_counter() - started)
            self.run_dir.write_metrics(metrics)
            with self._lock:
                self.test = {"accuracy": result["accuracy"], "loss": result["loss"]}
                self.status = "finished"
        except _Stopped:
            self.status = "stopped"
        except Exception as e:  # the thread's end: the page shows the one line
            self.error = " ".join(str(e).split()) or type(e).__name__
            self.status = "failed"
        finally:
            self.run_dir.close()

    # ------------------------------------------------------------------------------------ observing
    def _record_stats(self, previous):
        """Per weight tensor: norms of the weights, gradients and last update, and histograms."""
        layers = []
        for name, p in self.model.named_parameters():
            if p.data.ndim < 2:
                continue
            w = p.data
            g = p.grad if p.grad is not None else np.zeros_like(w)
            g = g.data if isinstance(g, Tensor) else np.asarray(g)
            u = w - previous[name] if name in previous else np.zeros_like(w)
            wn, gn, un = _norm(w), _norm(g), _norm(u)
            layers.append({"name": name, "shape": list(w.shape), "weight_norm": wn, "grad_norm": gn,
                           "update_norm": un, "update_ratio": un / wn if wn > 0 else 0.0,
                           "weight_hist": _histogram(w), "grad_hist": _histogram(g)})
        first = next((p.data for _, p in self.model.named_parameters() if p.data.ndim == 4), None)
        filters = None
        if first is not None:   # HWIO: one kh x kw picture per output channel (its input channels averaged)
            f = first.mean(axis=2).transpose(2, 0, 1)
            filters = {"shape": list(f.shape), "lo": float(f.min()), "hi": float(f.max()),
                       "values": np.round(f, 5).ravel().tolist()}
        probe = self._probe_maps()
        with self._lock:
            self.layers, self.filters, self.probe = layers, filters, probe
            if self.flow_start is None and self.step > 0:   # the gradient flow of the first step, kept to compare
                self.flow_start = {"step": self.step, "grad_norm": [layer["grad_norm"] for layer in layers]}

    def _probe_maps(self):
        """The activations of the probe image at every layer whose output is a map (h, w, c)."""
        outputs = []
        hooks = []
        for name, m in self.model.named_modules():
            if name and not list(m.children()):
                hooks.append(m.register_forward_hook(
                    lambda mod, inp, out, name=name: outputs.append((f"{name} {type(mod).__name__}", out))))
        was = self.model.training
        self.model.eval()
        try:
            with no_grad():
                logits = self.model(Tensor(np.ascontiguousarray(self.probe_input, dtype=np.float32)))
        finally:
            self.model.train(was)
            for h in hooks:
                h.remove()
        maps = []
        for name, out in outputs:
            a = out.data[0] if isinstance(out, Tensor) else None
            if a is None or a.ndim != 3 or len(maps) >= 6:
                continue
            a = a[:, :, :8].transpose(2, 0, 1)   # at most 8 channels: (c, h, w)
            maps.append({"name": name, "shape": list(a.shape), "lo": float(a.min()), "hi": float(a.max()),
                         "values": np.round(a, 4).ravel().tolist()})
        z = logits.data[0].astype(np.float64)
        prob = np.exp(z - z.max())
        prob /= prob.sum()
        return {"label": self.probe_label, "maps": maps, "probabilities": np.round(prob, 4).tolist(),
                "image": {"shape": list(self.probe_input.shape[1:3]),
                          "values": np.round(self.probe_input[0].mean(axis=-1), 4).ravel().tolist()}}

    def snapshot(self, since: int = 0) -> dict:
        """What the run is and has seen, as JSON-ready values (thread-safe). ``since``: only the per-step
        losses of the steps after that one (a poller sends the last step it holds)."""
        with self._lock:
            first = self.steps[0][0] if self.steps else 1
            start = min(max(0, int(since) - first + 1), len(self.steps))   # steps are numbered consecutively
            return {"label": self.label, "folder": self.folder, "status": self.status, "error": self.error,
                    "step": self.step, "epoch": self.epoch, "epochs": self.config["epochs"],
                    "settings": {k: self.config[k] for k in ("optimizer", "lr", "momentum", "weight_decay",
                                                             "batch_size", "model", "dataset", "seed")},
                    "steps_from": int(since), "steps": self.steps[start:], "steps_total": len(self.steps),
                    "history": {k: list(v) for k, v in self.history.items()}, "epoch_steps": list(self.epoch_steps),
                    "changes": list(self.changes), "layers": self.layers, "flow_start": self.flow_start,
                    "filters": self.filters,
                    "probe": self.probe, "confusion": self.confusion, "class_names": self.class_names,
                    "test": self.test}


class _Control(Callback):
    """Between batches: apply changes, wait while paused, end a stopped run; record what the page draws."""

    def __init__(self, live: LiveRun):
        super().__init__()
        self.live = live
        self.previous = {}     # the weights before the coming step
        self.base = {}         # the weights before the last step taken (its update = now - base)
        self.last_stats = 0.0

    def _keep(self):
        self.base = self.previous
        self.previous = {n: p.data.copy() for n, p in self.live.model.named_parameters() if p.data.ndim >= 2}

    def on_train_begin(self, run):
        super().on_train_begin(run)
        live = self.live
        h = run.history.history
        with live._lock:
            live.history = {k: list(v) for k, v in h.items()}
            live.epoch_steps = [None] * len(h.get("loss", []))
        self._keep()
        live._apply_pending()

    def on_epoch_begin(self, epoch):
        self.live.epoch = epoch
        self._gate()

    def on_batch_end(self, batch, logs):
        live = self.live
        with live._lock:
            live.step += 1
            live.steps.append([live.step, round(float(logs["loss"]), 5)])
            if len(live.steps) > MAX_STEPS_KEPT:
                del live.steps[: len(live.steps) - MAX_STEPS_KEPT]
        self._keep()
        now = time.perf_counter()
        if now - self.last_stats >= STATS_EVERY:
            live._record_stats(self.base)
            self.last_stats = time.perf_counter()
        self._gate()

    def _gate(self):
        live = self.live
        if live._stop:
            raise _Stopped()
        if not live._resume_event.is_set():
            live._record_stats(self.base)
            live._resume_event.wait()
            if live._stop:
                raise _Stopped()
        live._apply_pending()

    def on_epoch_end(self, epoch, logs):
        from .loop import evaluate
        live = self.live
        confusion = None
        if live.val is not None:
            confusion = evaluate(live.model, live.val)["confusion_matrix"].tolist()
        live._record_stats(self.base)
        with live._lock:
            for k, v in logs.items():
                live.history.setdefault(k, []).append(float(v))
            live.epoch_steps.append(live.step)
            live.confusion = {"epoch": epoch + 1, "matrix": confusion}


def build_model(name: str, model_args: dict, rng=None) -> Module:
    """A zoo model or a layer list built for the data (``input_shape``, ``num_classes``), as
    :func:`striate.training.recipe.build_model` builds it; a layer list whose output does not match the
    classes is refused with a one-line ValueError (worded for a page: no option names)."""
    from . import recipe

    try:
        return recipe.build_model(name, model_args, rng=rng)
    except ValueError as e:
        raise ValueError(str(e).removeprefix("--model: ").removeprefix("--model ")) from None
