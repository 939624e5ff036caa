"""Optimizer: the base of SGD, Adam and AdamW — parameter groups, per-parameter state, saving.

An optimiser holds *parameter groups* (lists of Parameters sharing hyper-parameters such as ``lr``)
and a *state* per parameter (momentum buffers, Adam moments, step counts). ``step()`` updates every
parameter that has a gradient, in place on ``p.data``; parameters whose ``grad`` is None or whose
``requires_grad`` is False (frozen layers in transfer learning) are left alone.

``state_dict()`` names parameters by their position in the groups (as PyTorch does), so a state
saved from one model loads into a freshly built copy of it.
"""
from __future__ import annotations

import copy

import numpy as np

from ..tensor import Tensor
from ..validation import check_number  # noqa: F401  (also imported from here by optim's modules)


class Optimizer:
    """Base class: subclasses define ``defaults`` validation in ``__init__`` and ``_update``.

    Args:
        params: an iterable of Parameters (``model.parameters()``), or of dicts
            ``{"params": [...], "lr": ...}`` to give groups their own hyper-parameters.
        defaults: hyper-parameters used where a group does not set its own.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Parameters, not a single Tensor. "
                "Pass model.parameters() or [tensor]."
            )
        params = list(params)
        if not params:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list. Layers create their weights on the "
                "first call: build the model first with model.build(input_shape), e.g. "
                "model.build((28, 28, 1)), then pass model.parameters()."
            )
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # id(parameter) -> its state
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with optional hyper-parameter overrides."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(
                f"{type(self).__name__}: a parameter group must be a dict with a 'params' key. "
                f"Received: {type(group).__name__}."
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: every parameter must be a Tensor (a Parameter of a Module). "
                    f"Received: item {i} of type {type(p).__name__}."
                )
            if not np.issubdtype(p.data.dtype, np.floating):
                raise TypeError(
                    f"{type(self).__name__}: parameters must be floating point. Received: item {i} with "
                    f"dtype={p.data.dtype}."
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group (or twice).")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown hyper-parameter(s) {sorted(unknown)} in a parameter group. "
                f"Known: {sorted(self.defaults)}."
            )
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        self._validate(full)
        full["params"] = params
        self.param_groups.append(full)

    def _validate(self, hyper: dict) -> None:
        """Check (and normalise in place) one group's hyper-parameters; subclasses override."""

    # ----------------------------------------------------------------- the update
    def zero_grad(self) -> None:
        """Forget every gradient (``p.grad = None``) so the next backward starts from zero."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place, keeping its dtype."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue  # unused in this forward, or frozen
                if p.grad.shape != p.data.shape:
                    raise ValueError(
                        f"{type(self).__name__}: gradient shape {p.grad.shape} differs from parameter "
                        f"shape {p.data.shape}."
                    )
                state = self.state.setdefault(id(p), {})
                # the gradient in the parameter's dtype: never let a float64 grad upcast float32 weights
                g = p.grad if p.grad.dtype == p.data.dtype else p.grad.astype(p.data.dtype)
                self._update(p.data, g, state, group)

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- learning rate helpers
    @property
    def lr(self) -> float:
        """Learning rate of the first group (the only one in the common case)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value) -> None:
        value = check_number(value, "lr", low=0.0, owner=type(self).__name__)
        for group in self.param_groups:
            group["lr"] = value

    # ----------------------------------------------------------------- saving
    def _ordered_params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyper..., "params": [index]}]}``.

        Arrays are copies, numbers are Python numbers: the result can be saved as JSON + arrays.
        """
        index = {id(p): i for i, p in enumerate(self._ordered_params())}
        state = {}
        for pid, s in self.state.items():
            if pid in index:
                state[index[pid]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        groups, start = [], 0
        for group in self.param_groups:
            g = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            g["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(g)
        return {"type": type(self).__name__, "state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state saved by :meth:`state_dict`.

        The groups must have the same sizes and the arrays the parameters' shapes.
        """
        saved_type = state_dict.get("type")
        if saved_type is not None and saved_type != type(self).__name__:
            raise ValueError(
                f"This optimizer state was saved from {saved_type}, not {type(self).__name__}. "
                f"Create a {saved_type} to resume it."
            )
        groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in groups]
        if sizes != saved_sizes:
            raise ValueError(
                f"Optimizer state does not match: the saved parameter groups have sizes {saved_sizes}, "
                f"this optimizer's have {sizes}. Was it saved from a different model?"
            )
        params = self._ordered_params()
        new_state = {}
        for key, s in state_dict["state"].items():
            p = params[int(key)]
            restored = {}
            for name, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.data.shape:
                        raise ValueError(
                            f"Optimizer state {name!r} of parameter {key} has shape {v.shape}; the parameter "
                            f"has shape {p.data.shape}."
                        )
                    v = v.astype(p.data.dtype, copy=True)
                restored[name] = v
            new_state[id(p)] = restored
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} tensors, {hyper}")
        return "\n".join(lines) + "\n)"
