"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks", sec. 3.3).

Train a copy of the model for a few hundred steps while the rate grows exponentially from tiny to
huge, and watch the loss: flat while the rate is too low to move the weights, falling fast once it
is large enough, then blowing up when the steps jump past the minimum. A good rate lies on the
falling part, before the bottom.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..nn import Module
from ..optim import SGD, Optimizer
from ..validation import check_int, check_number
from .loop import _batch_input, _check_data, _loss_fn, _quiet_numerics

RULES = ("steepest", "min/10")


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured and suggests.

    Attributes:
        rates: the learning rate of every step taken, increasing.
        losses: the training loss of each step (raw, one batch each).
        smoothed: the bias-corrected exponential moving average of ``losses``.
        suggestion: the suggested learning rate (None if too few steps were taken to tell).
        rule: how ``suggestion`` was chosen: ``'steepest'`` (the rate where the smoothed loss falls
            fastest per unit of log-rate, searched before the smoothed minimum) or ``'min/10'``
            (a tenth of the rate at the smoothed minimum).
        min_rate: the rate at the smoothed loss's minimum.
        diverged: True when the test stopped because the loss diverged (before ``end_lr``).
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None
    rule: str
    min_rate: float
    diverged: bool

    def describe(self) -> str:
        """One line: the suggestion and the rule that gave it."""
        if self.suggestion is None:
            return (f"no suggestion: only {len(self.rates)} step(s) before the loss diverged; "
                    "start the range lower (start_lr).")
        how = ("steepest descent of the smoothed loss" if self.rule == "steepest"
               else "a tenth of the rate at the smoothed loss's minimum")
        return (f"suggested learning rate {self.suggestion:.3g} ({self.rule}: {how}); smoothed loss lowest at "
                f"{self.min_rate:.3g}")


def _cloned_optimizer(optimizer, model: Module, twin: Module) -> Optimizer:
    """An optimiser of ``optimizer``'s kind and hyper-parameters on ``twin``'s parameters (fresh state:
    no momentum carried over). Parameters are paired by their position in ``model.parameters()``."""
    if callable(optimizer) and not isinstance(optimizer, Optimizer):
        made = optimizer(twin.parameters())
        if not isinstance(made, Optimizer):
            raise TypeError("lr_find: optimizer(params) must return a striate.optim optimizer. "
                            f"Received: {type(made).__name__}.")
        return made
    if not isinstance(optimizer, Optimizer):
        raise TypeError("lr_find: optimizer must be a striate.optim optimizer (its kind and settings are used on the "
                        "copy) or a function params -> optimizer. Received: " f"{type(optimizer).__name__}.")
    position = {id(p): i for i, p in enumerate(model.parameters())}
    params = twin.parameters()
    groups = []
    for group in optimizer.param_groups:
        if any(id(p) not in position for p in group["params"]):
            raise ValueError("lr_find: the optimizer holds parameters that are not the model's; make it with "
                             "model.parameters().")
        groups.append({**{k: copy.deepcopy(v) for k, v in group.items() if k != "params"},
                       "params": [params[position[id(p)]] for p in group["params"]]})
    return type(optimizer)(groups, **optimizer.defaults)


def _batches(data):
    """Cycle through ``data`` (a loader re-shuffles on each pass) for as many steps as asked."""
    while True:
        empty = True
        for xb, yb in data:
            empty = False
            yield xb, yb
        if empty:
            raise ValueError("lr_find: the data yielded no batches. Check the data set and the batch size.")


def _suggest(rates, smoothed, rule):
    """(suggestion, rule used, rate at the minimum)."""
    best = int(np.argmin(smoothed))
    if len(rates) < 3:
        return None, rule, float(rates[best])
    skip = max(1, len(rates) // 10)  # the first steps' average rests on a few noisy batches
    if rule == "steepest" and best >= skip + 2:
        # d(loss)/d(log rate) by central differences on the part before the minimum
        slope = np.gradient(smoothed[skip:best + 1], np.log(rates[skip:best + 1]))
        return float(rates[skip + int(np.argmin(slope))]), "steepest", float(rates[best])
    return float(rates[best]) / 10.0, "min/10", float(rates[best])


def lr_find(model: Module, data, optimizer=None, start_lr: float = 1e-6, end_lr: float = 10.0,
            num_steps: int = 100, smoothing: float = 0.9, diverge: float = 4.0, rule: str = "steepest",
            loss="cross_entropy") -> LRFindResult:
    """Smith's learning-rate range test, on a copy of ``model`` (its weights are left untouched).

    For ``num_steps`` steps the rate grows exponentially, ``lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``;
    each step trains the copy on one batch (cycling through ``data``) and records the loss. The
    loss is smoothed by an exponential moving average with weight ``smoothing`` on the past (bias-
    corrected, as in Adam); the test stops early once the smoothed loss exceeds ``diverge`` times the
    lowest seen, or the loss is not finite.

    The suggestion follows ``rule``: ``'steepest'`` picks the rate where the smoothed loss falls
    fastest against log(rate), searched up to the minimum; ``'min/10'`` takes a tenth of the rate at
    the minimum. When the minimum comes within the first two steps the steepest-descent rule has no
    slope to look at and ``'min/10'`` is used; the result's ``rule`` says which.

    Args:
        model: a built Module. A deep copy is trained; batch-norm statistics of ``model`` stay too.
        data: iterable of ``(x, y)`` batches, as for :func:`fit` (a DataLoader).
        optimizer: the optimiser of the training recipe: an optimiser on ``model.parameters()``
            (its kind and hyper-parameters are used on the copy, with fresh state), or a function
            ``params -> optimizer``. Default: SGD with momentum 0.9.
        start_lr, end_lr: the range of rates, ``0 < start_lr < end_lr``.
        num_steps: number of steps (rates) at most, >= 3.
        smoothing: weight of the past in the moving average, in [0, 1). 0.9 averages over about ten
            steps; the 0.98 often used with longer tests would lag ~50 steps, half of a 100-step range.
        diverge: stop when the smoothed loss exceeds this many times its minimum (> 1).
        rule: ``'steepest'`` or ``'min/10'``.
        loss: ``'cross_entropy'`` or a callable ``loss(logits, labels)``.

    Returns:
        :class:`LRFindResult` with the rates, raw and smoothed losses, the suggestion and the rule.

    Example::

        >>> opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)   # the recipe's optimiser
        >>> result = st.training.lr_find(model, DataLoader(x, y, batch_size=64), optimizer=opt)
        >>> print(result.describe())   # the suggested rate and the rule that chose it
    """
    if not isinstance(model, Module):
        raise TypeError(f"lr_find: model must be a striate.nn.Module. Received: {type(model).__name__}.")
    _check_data(data, "data", "lr_find")
    start_lr = check_number(start_lr, "start_lr", low=0.0, low_open=True, owner="lr_find")
    end_lr = check_number(end_lr, "end_lr", low=0.0, low_open=True, owner="lr_find")
    if end_lr <= start_lr:
        raise ValueError(f"lr_find: the rate range must grow: end_lr must be larger than start_lr. "
                         f"Received: start_lr={start_lr:g}, end_lr={end_lr:g}.")
    num_steps = check_int(num_steps, "num_steps", low=3, owner="lr_find")
    smoothing = check_number(smoothing, "smoothing", low=0.0, high=1.0, high_open=True, owner="lr_find")
    diverge = check_number(diverge, "diverge", low=1.0, low_open=True, owner="lr_find")
    if rule not in RULES:
        raise ValueError(f"lr_find: rule must be one of {', '.join(map(repr, RULES))}. Received: rule={rule!r}.")
    loss_fn = _loss_fn(loss)
    if not model.parameters():
        raise ValueError("lr_find: the model has no parameters yet; build it first with model.build(input_shape).")

    twin = copy.deepcopy(model)
    opt = (SGD(twin.parameters(), lr=start_lr, momentum=0.9) if optimizer is None
           else _cloned_optimizer(optimizer, model, twin))
    schedule = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))
    rates, losses, smoothed = [], [], []
    average, best, diverged = 0.0, math.inf, False
    twin.train()
    with _quiet_numerics():
        for i, (lr, (xb, yb)) in enumerate(zip(schedule, _batches(data))):
            opt.lr = float(lr)
            out = loss_fn(twin(_batch_input(xb)), np.asarray(yb))
            opt.zero_grad()
            out.backward()
            opt.step()
            value = float(out.data)
            if not math.isfinite(value):
                diverged = True
                break
            average = smoothing * average + (1.0 - smoothing) * value
            current = average / (1.0 - smoothing ** (i + 1))  # bias correction of the zero start
            rates.append(float(lr))
            losses.append(value)
            smoothed.append(current)
            best = min(best, current)
            if current > diverge * best:
                diverged = True
                break
    if not rates:
        raise FloatingPointError(f"lr_find: the loss was not finite at the first step (lr={start_lr:g}); lower "
                                 "start_lr or check the data.")
    rates, losses, smoothed = np.array(rates), np.array(losses), np.array(smoothed)
    suggestion, used, min_rate = _suggest(rates, smoothed, rule)
    return LRFindResult(rates, losses, smoothed, suggestion, used, min_rate, diverged)
