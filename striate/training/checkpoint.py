"""Checkpoints and weight files: one ``.npz`` holding arrays plus a JSON description — no pickle.

A *checkpoint* holds everything a run needs to continue exactly where it stopped: model weights and
buffers, optimiser state (momentum buffers, Adam moments, step counts, rates), schedule and callback
state, the random generators' states (striate's default generator, the data loader's, any layer's
own), the epoch count and the history. A *weights* file holds the model and its description only.

Layout of the file (``np.savez``, loadable with ``allow_pickle=False``)::

    __striate__                 0-d string array: JSON {"format": "striate", "kind", "version",
                                "epoch", "meta", "state": <tree>}
    model/<name>                one array per parameter and buffer, e.g. model/features.0.w
    <path>/<to>/<array>         arrays inside the state tree (optimizer/state/0/momentum_buffer, ...)

In the JSON tree an array is the placeholder ``{"__array__": "<key>"}``. Writes are atomic: the
file is written next to its destination and moved into place with ``os.replace``, so an
interrupted save never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import random as st_random
from ..atomic import atomic_open

FORMAT = "striate"
VERSION = 1
_META_KEY = "__striate__"
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A file that is not a striate checkpoint, or one that is truncated or corrupt."""


# --------------------------------------------------------------------------- JSON + arrays tree
def _flatten(obj, key: str, arrays: dict):
    """Replace arrays in a nested dict/list by placeholders, collecting them in ``arrays``."""
    if isinstance(obj, np.ndarray):
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _flatten(v, f"{key}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {key!r}).")


def _unflatten(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _unflatten(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, arrays) for v in obj]
    return obj


def atomic_save_npz(path, arrays: dict) -> None:
    """``np.savez`` written atomically (see :mod:`striate.atomic`)."""
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def _write(path, kind: str, model_state: dict, state: dict, epoch: int, meta: dict | None) -> None:
    arrays = {f"model/{name}": np.asarray(a) for name, a in model_state.items()}
    tree = _flatten(state, "state", arrays)
    header = {"format": FORMAT, "kind": kind, "version": VERSION, "epoch": int(epoch),
              "meta": _flatten(meta or {}, "meta", arrays),
              "model": list(model_state), "state": tree}
    arrays[_META_KEY] = np.array(json.dumps(header))
    atomic_save_npz(path, arrays)


# --------------------------------------------------------------------------- random generators
def _generator_states(model, loader) -> dict:
    """States of every random generator a run draws from, to continue the same random stream."""
    modules = {}
    for name, module in model.named_modules():
        rng = getattr(module, "rng", None)
        if isinstance(rng, np.random.Generator) and rng is not st_random.default_generator():
            modules[name] = rng.bit_generator.state
    state = {"default": st_random.get_state(), "modules": modules, "loader": None}
    if loader is not None:
        if hasattr(loader, "state_dict"):
            state["loader"] = {"state_dict": loader.state_dict()}
        elif isinstance(getattr(loader, "rng", None), np.random.Generator):
            state["loader"] = {"rng": loader.rng.bit_generator.state}
    return state


def _restore_generators(state: dict, model, loader) -> None:
    st_random.set_state(state["default"])
    found = dict(model.named_modules())
    for name, s in state.get("modules", {}).items():
        rng = getattr(found.get(name), "rng", None)
        if isinstance(rng, np.random.Generator):
            rng.bit_generator.state = s
    saved = state.get("loader")
    if loader is not None and saved is not None:
        if "state_dict" in saved and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(saved["state_dict"])
        elif "rng" in saved and isinstance(getattr(loader, "rng", None), np.random.Generator):
            loader.rng.bit_generator.state = saved["rng"]


# --------------------------------------------------------------------------- public API
def save_checkpoint(path, model, optimizer=None, schedule=None, epoch: int = 0, history=None,
                    callbacks=(), loader=None, meta: dict | None = None, stopped: bool = False) -> None:
    """Write a resumable checkpoint of a training run to ``path`` (atomically).

    Args:
        path: destination file (``.npz`` recommended).
        model: the Module; its ``state_dict()`` (parameters and buffers) is stored.
        optimizer, schedule: their ``state_dict()`` is stored when given.
        epoch: number of completed epochs.
        history: a :class:`~striate.training.History` (stored with the callbacks if among them).
        callbacks: callbacks whose ``state_dict()`` should be stored (keyed by position and class).
        loader: the training data loader, whose random state is stored (``state_dict()`` or ``.rng``).
        meta: JSON-able description, e.g. ``{"model": {"name": "lenet5", "args": {...}}}``.
        stopped: the run was stopped early (resuming it trains no further).

    Example::

        >>> save_checkpoint("run/checkpoint.npz", model, opt, sched, epoch=3, loader=train_loader)
    """
    state = {
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "schedule": schedule.state_dict() if schedule is not None else None,
        "callbacks": {_callback_key(i, cb): cb.state_dict() for i, cb in enumerate(callbacks)},
        "history": history.state_dict() if history is not None else None,
        "rng": _generator_states(model, loader),
        "stopped": bool(stopped),
    }
    _write(path, "checkpoint", model.state_dict(), state, epoch, meta)


def save_weights(path, model, meta: dict | None = None) -> None:
    """Write the model's parameters and buffers (and a JSON ``meta`` description) to ``path``.

    Example::

        >>> save_weights("weights.npz", model, meta={"model": {"name": "lenet5", "args": {"num_classes": 10}}})
    """
    _write(path, "weights", model.state_dict(), {}, 0, meta)


def _callback_key(i: int, cb) -> str:
    return f"{i}:{type(cb).__name__}"


@dataclass
class Checkpoint:
    """The content of a checkpoint or weights file (see :func:`load_checkpoint`)."""

    path: str
    kind: str                      # "checkpoint" or "weights"
    epoch: int                     # completed epochs
    meta: dict                     # what the writer described (model name and arguments, classes, ...)
    model_state: dict              # name -> array, for model.load_state_dict
    state: dict = field(default_factory=dict)  # optimizer, schedule, callbacks, history, rng, stopped

    def restore(self, model, optimizer=None, schedule=None, callbacks=(), loader=None, history=None) -> None:
        """Put the saved state back into the run's objects (all that are given)."""
        model.load_state_dict(self.model_state)
        if self.kind != "checkpoint":
            if optimizer is not None or schedule is not None:
                raise CheckpointError(
                    f"{self.path} is a weights file, not a checkpoint: it holds no optimiser or schedule "
                    "state to resume from. Resume from the checkpoint.npz a training run wrote."
                )
            return
        s = self.state
        if optimizer is not None and s.get("optimizer") is not None:
            optimizer.load_state_dict(s["optimizer"])
        if schedule is not None and s.get("schedule") is not None:
            schedule.load_state_dict(s["schedule"])
        saved_callbacks = s.get("callbacks") or {}
        for i, cb in enumerate(callbacks):
            key = _callback_key(i, cb)
            if key in saved_callbacks:
                cb.load_state_dict(saved_callbacks[key])
        if history is not None and s.get("history") is not None:
            history.load_state_dict(s["history"])
        if s.get("rng") is not None:
            _restore_generators(s["rng"], model, loader)


def _array(npz, key, path):
    """``npz[key]``, refusing a pickled (object) array by name: NumPy's own error reads like damage."""
    try:
        return npz[key]
    except ValueError as e:
        if "allow_pickle" not in str(e):  # NumPy refusing an object array, not a damaged one
            raise
    raise CheckpointError(
        f"{path} holds a pickled object array ({key!r}): striate never unpickles, since unpickling can run "
        "code. Save plain numeric arrays (np.savez with numbers only).")


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint or weights file written by striate (never unpickles anything).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a striate checkpoint, or is truncated or corrupt.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint at {path!r}.")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty: the checkpoint is truncated or corrupt.")
    if head != _ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a striate checkpoint (not an .npz archive). Pass a checkpoint.npz or weights.npz "
            "written by striate."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _META_KEY not in npz.files:
                shown = ", ".join(npz.files[:5]) + (", ..." if len(npz.files) > 5 else "")
                raise CheckpointError(
                    f"{path} is not a striate checkpoint: it is an .npz archive without striate's "
                    f"'{_META_KEY}' record (its arrays: {shown or 'none'})."
                )
            header = json.loads(str(_array(npz, _META_KEY, path)))
            arrays = {k: _array(npz, k, path) for k in npz.files if k != _META_KEY}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}).") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a striate checkpoint (unknown format record).")
    if header.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer striate (format version {header['version']}; this one reads "
            f"up to {VERSION}). Upgrade striate."
        )
    try:
        model_state = {name: arrays[f"model/{name}"] for name in header["model"]}
        state = _unflatten(header["state"], arrays)
        meta = _unflatten(header.get("meta") or {}, arrays)
    except KeyError as e:
        raise CheckpointError(f"{path} is truncated or corrupt (missing array {e}).") from None
    return Checkpoint(path=path, kind=header["kind"], epoch=int(header["epoch"]), meta=meta,
                      model_state=model_state, state=state)


def load_weights(path, model) -> dict:
    """Load the model weights from a weights file or a checkpoint into ``model``; return its meta.

    The model must be built with the same architecture (``model.build(input_shape)`` first for
    layers that create their weights lazily).
    """
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt.model_state)
    return ckpt.meta
