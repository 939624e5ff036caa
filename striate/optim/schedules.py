"""Learning-rate schedules: StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearWarmup,
ReduceLROnPlateau.

A schedule wraps an optimizer and sets ``group["lr"]`` for every parameter group. It counts epochs:
``step()`` is called once at the end of each epoch (``striate.training.fit`` does it) and sets the
rate for the next one. The epoch-based schedules are closed-form functions ``lr_at(epoch, base_lr)``
of the base rate each group had when the schedule was made, so they compose (:class:`LinearWarmup`
runs another schedule after its warm-up) and resume exactly from a saved epoch count.

:class:`ReduceLROnPlateau` instead reacts to a monitored metric: ``step(value)``.

Example::

    >>> opt = st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> sched = st.optim.LinearWarmup(st.optim.CosineAnnealingLR(opt, t_max=45), warmup_epochs=5)
    >>> for epoch in range(50):
    ...     train_one_epoch(...)
    ...     sched.step()
"""
from __future__ import annotations

import math


from ..validation import check_int_at_least as _check_int
from .optimizer import Optimizer, check_number


def _check_optimizer(optimizer, owner: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{owner} takes an optimizer (e.g. st.optim.SGD(model.parameters(), lr=0.1)). "
            f"Received: {type(optimizer).__name__}."
        )
    return optimizer


class LRSchedule:
    """Base of the epoch-indexed schedules: subclasses implement ``lr_at(epoch, base_lr)``.

    Creating a schedule records each group's current ``lr`` as its base rate and sets epoch 0's rate.
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = _check_optimizer(optimizer, type(self).__name__)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = 0  # epochs completed; the current rate is lr_at(last_epoch)
        self._apply()

    def lr_at(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def get_lr(self) -> list:
        """The rate of each parameter group for the current epoch."""
        return [float(self.lr_at(self.last_epoch, base)) for base in self.base_lrs]

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def step(self, metric=None) -> None:
        """End of an epoch: move to the next epoch's rate (``metric`` is ignored here)."""
        self.last_epoch += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        _check_type(self, state)
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()

    def __repr__(self):
        return f"{type(self).__name__}(epoch={self.last_epoch}, lr={self.get_lr()})"


def _check_type(schedule, state):
    saved = state.get("type")
    if saved is not None and saved != type(schedule).__name__:
        raise ValueError(
            f"This schedule state was saved from {saved}, not {type(schedule).__name__}. "
            f"Create a {saved} to resume it."
        )


class StepLR(LRSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``base * gamma ** (epoch // step_size)``.

    Example::

        >>> sched = st.optim.StepLR(opt, step_size=30, gamma=0.1)   # AlexNet/VGG style: /10 every 30
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _check_int(step_size, "step_size", 1, "StepLR")
        self.gamma = check_number(gamma, "gamma", low=0.0, low_open=True, owner="StepLR")
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRSchedule):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones`` (e.g. ``[30, 60, 80]``)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        milestones = list(milestones)
        for m in milestones:
            _check_int(m, "each milestone", 1, "MultiStepLR")
        if milestones != sorted(set(milestones)):
            raise ValueError(f"MultiStepLR: milestones must be increasing. Received: milestones={milestones}.")
        self.milestones = [int(m) for m in milestones]
        self.gamma = check_number(gamma, "gamma", low=0.0, low_open=True, owner="MultiStepLR")
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)


class ExponentialLR(LRSchedule):
    """Multiply the rate by ``gamma`` every epoch: ``base * gamma ** epoch``."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = check_number(gamma, "gamma", low=0.0, low_open=True, owner="ExponentialLR")
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRSchedule):
    """Half a cosine from the base rate down to ``eta_min`` over ``t_max`` epochs (SGDR without restarts,
    Loshchilov & Hutter 2017)::

        lr(e) = eta_min + (base - eta_min) * (1 + cos(pi * e / t_max)) / 2,   e <= t_max

    and ``eta_min`` after ``t_max`` (PyTorch's formula would climb back up).

    Example::

        >>> sched = st.optim.CosineAnnealingLR(opt, t_max=10)   # one cycle over a 10-epoch run
    """

    def __init__(self, optimizer, t_max: int, eta_min: float = 0.0):
        self.t_max = _check_int(t_max, "t_max", 1, "CosineAnnealingLR")
        self.eta_min = check_number(eta_min, "eta_min", low=0.0, owner="CosineAnnealingLR")
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        e = min(epoch, self.t_max)
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * e / self.t_max)) / 2.0


class ConstantLR(LRSchedule):
    """The base rate for ever (what :class:`LinearWarmup` continues with when given an optimizer)."""

    def lr_at(self, epoch, base_lr):
        return base_lr


class ContinuedLR(LRSchedule):
    """The schedule of a run continued past its planned end: from epoch ``start``, where the rate was
    ``rate``, to a new total of ``total`` epochs, without jumping back to a rate of the old plan::

        cosine:  lr(e) = rate * (1 + cos(pi * min(e - start, T) / T)) / 2,     T = total - start
        step:    lr(e) = rate * 0.1 ** (number of milestones T // 2, 3T // 4 reached by e - start)
        none:    lr(e) = rate

    Args:
        optimizer: the optimizer whose rate it sets (every group gets the same rate).
        kind: ``"cosine"``, ``"step"`` or ``"none"``.
        start: the epochs already trained; the schedule starts there (``last_epoch = start``).
        rate: the rate at ``start``.
        total: the new total number of epochs, > ``start``.

    Example::

        >>> sched = st.optim.ContinuedLR(opt, "cosine", start=10, rate=0.004, total=20)
    """

    KINDS = ("cosine", "step", "none")

    def __init__(self, optimizer, kind: str, start: int, rate: float, total: int):
        if kind not in self.KINDS:
            raise ValueError(f"ContinuedLR kind must be one of {', '.join(self.KINDS)}. Received: kind={kind!r}.")
        self.kind = kind
        self.start = _check_int(start, "start", 0, "ContinuedLR")
        self.rate = check_number(rate, "rate", low=0.0, owner="ContinuedLR")
        self.total = _check_int(total, "total", self.start + 1, "ContinuedLR")
        super().__init__(optimizer)
        self.last_epoch = self.start
        self._apply()

    def lr_at(self, epoch, base_lr):
        e, span = max(0, epoch - self.start), max(1, self.total - self.start)
        if self.kind == "cosine":
            return self.rate * (1.0 + math.cos(math.pi * min(e, span) / span)) / 2.0
        if self.kind == "step":
            return self.rate * 0.1 ** sum(e >= m for m in (max(1, span // 2), max(2, 3 * span // 4)))
        return self.rate


class LinearWarmup(LRSchedule):
    """Ramp the rate linearly from ``start_factor * base`` to ``base`` over ``warmup_epochs``, then follow
    ``after`` from its epoch 0 (Goyal et al. 2017, "Accurate, large minibatch SGD")::

        lr(e) = base * (start_factor + (1 - start_factor) * e / warmup_epochs),   e < warmup_epochs
        lr(e) = after.lr_at(e - warmup_epochs, base),                              otherwise

    Args:
        schedule: an optimizer (constant rate after the warm-up) or another schedule to run after it,
            e.g. ``CosineAnnealingLR(opt, t_max=epochs - warmup_epochs)``.
        warmup_epochs: length of the ramp, >= 1.
        start_factor: fraction of the base rate at epoch 0, in (0, 1].

    Example::

        >>> sched = st.optim.LinearWarmup(st.optim.StepLR(opt, 10), warmup_epochs=2)
    """

    def __init__(self, schedule, warmup_epochs: int, start_factor: float = 0.1):
        if isinstance(schedule, Optimizer):
            schedule = ConstantLR(schedule)
        if isinstance(schedule, ReduceLROnPlateau) or not isinstance(schedule, LRSchedule):
            raise TypeError(
                "LinearWarmup takes an optimizer or an epoch-based schedule (StepLR, CosineAnnealingLR, ...). "
                f"Received: {type(schedule).__name__}."
            )
        self.after = schedule
        self.warmup_epochs = _check_int(warmup_epochs, "warmup_epochs", 1, "LinearWarmup")
        self.start_factor = check_number(start_factor, "start_factor", low=0.0, high=1.0, low_open=True,
                                         owner="LinearWarmup")
        self.optimizer = schedule.optimizer
        self.base_lrs = list(schedule.base_lrs)
        self.last_epoch = 0
        self._apply()

    def lr_at(self, epoch, base_lr):
        if epoch < self.warmup_epochs:
            return base_lr * (self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_epochs)
        return self.after.lr_at(epoch - self.warmup_epochs, base_lr)

    def state_dict(self):
        state = super().state_dict()
        state["after"] = self.after.state_dict()
        return state

    def load_state_dict(self, state):
        self.after.load_state_dict(state["after"])
        super().load_state_dict(state)


class ReduceLROnPlateau:
    """Divide the rate by ``1 / factor`` when a monitored metric stops improving (Keras' rule, exactly).

    After every epoch call ``step(value)`` with the metric (``fit`` passes ``logs[monitor]``)::

        if in cooldown: cooldown_counter -= 1; wait = 0
        if value improves on best (min: value < best - min_delta; max: value > best + min_delta):
            best = value; wait = 0
        elif not in cooldown:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr); cooldown_counter = cooldown; wait = 0

    Args:
        optimizer: the optimizer whose groups' rates are reduced.
        monitor: name of the metric ``fit`` passes (``'val_loss'``, ``'val_acc'``, ``'loss'``, ...).
        factor: multiplier in (0, 1).
        patience: epochs without improvement before a reduction.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (max if the monitor name contains ``'acc'``).
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: floor of the rate.

    Example::

        >>> sched = st.optim.ReduceLROnPlateau(opt, monitor='val_loss', factor=0.1, patience=3)
        >>> sched.step(0.52)   # after each epoch
    """

    def __init__(self, optimizer, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        owner = "ReduceLROnPlateau"
        self.optimizer = _check_optimizer(optimizer, owner)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{owner}: monitor must be a metric name such as 'val_loss'. Received: {monitor!r}.")
        self.monitor = monitor
        self.factor = check_number(factor, "factor", low=0.0, high=1.0, low_open=True, high_open=True, owner=owner)
        self.patience = _check_int(patience, "patience", 0, owner)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}.")
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.min_delta = abs(check_number(min_delta, "min_delta", owner=owner))
        self.cooldown = _check_int(cooldown, "cooldown", 0, owner)
        self.min_lr = check_number(min_lr, "min_lr", low=0.0, owner=owner)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _improves(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, metric=None) -> None:
        """End of an epoch with the monitored ``metric`` value."""
        if metric is None:
            raise ValueError(
                f"ReduceLROnPlateau.step needs the value of the monitored metric {self.monitor!r}: "
                "call step(value) after each epoch."
            )
        value = float(metric)
        self.last_epoch += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(value):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                reduced = False
                for group in self.optimizer.param_groups:
                    if group["lr"] > self.min_lr:
                        group["lr"] = max(group["lr"] * self.factor, self.min_lr)
                        reduced = True
                if reduced:
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def get_lr(self) -> list:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"type": "ReduceLROnPlateau", "best": float(self.best), "wait": self.wait,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch,
                "lrs": self.get_lr()}

    def load_state_dict(self, state: dict) -> None:
        _check_type(self, state)
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.last_epoch = int(state["last_epoch"])
        for group, lr in zip(self.optimizer.param_groups, state["lrs"]):
            group["lr"] = float(lr)

    def __repr__(self):
        return (f"ReduceLROnPlateau(monitor={self.monitor!r}, best={self.best}, wait={self.wait}, "
                f"lr={self.get_lr()})")
