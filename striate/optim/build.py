"""An optimiser and a learning-rate schedule from their names and settings, as a recipe gives them
(``striate train`` and ``striate finetune`` build theirs here)."""
from __future__ import annotations

from .adam import Adam, AdamW
from .schedules import (ConstantLR, ContinuedLR, CosineAnnealingLR, LinearWarmup, MultiStepLR,
                        ReduceLROnPlateau)
from .sgd import SGD

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "plateau", "none")


def build_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """``"sgd"`` (heavy-ball momentum with Nesterov's correction when ``momentum > 0``), ``"adam"`` or
    ``"adamw"`` (decoupled weight decay) over ``params`` (parameters or parameter groups).

    Example::

        >>> opt = st.optim.build_optimizer("sgd", model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    """
    if name == "sgd":
        return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    if name == "adam":
        return Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: {name!r}.")


def build_schedule(name: str, optimizer, epochs: int, warmup: int = 0, replan: dict | None = None):
    """The schedule of a run of ``epochs`` epochs.

    Args:
        name: ``"cosine"`` (to zero at the last epoch), ``"step"`` (/10 at 50% and 75% of the epochs after
            the warm-up), ``"plateau"`` (/10 when val_loss stalls for 3 epochs) or ``"none"``.
        optimizer: the optimizer whose rate it sets.
        epochs: the run's total number of epochs.
        warmup: epochs of linear warm-up first (not with ``"plateau"``).
        replan: ``{"epoch": e, "lr": rate}`` for a run continued past its planned end: the schedule goes
            on from ``rate`` at epoch ``e`` to the new total (:class:`ContinuedLR`).

    Example::

        >>> sched = st.optim.build_schedule("cosine", opt, epochs=12, warmup=1)
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}. Received: {name!r}.")
    if name == "plateau":
        return ReduceLROnPlateau(optimizer, monitor="val_loss", factor=0.1, patience=3, cooldown=1)
    if replan:
        return ContinuedLR(optimizer, name, replan["epoch"], replan["lr"], epochs)
    main_epochs = max(1, epochs - warmup)
    if name == "cosine":
        sched = CosineAnnealingLR(optimizer, t_max=main_epochs)
    elif name == "step":
        sched = MultiStepLR(optimizer, milestones=sorted({max(1, main_epochs // 2), max(2, 3 * main_epochs // 4)}))
    else:
        sched = ConstantLR(optimizer)
    return LinearWarmup(sched, warmup_epochs=warmup) if warmup else sched
