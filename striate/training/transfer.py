"""Fine-tuning in two phases (transfer learning), on a model whose head was just replaced
(:meth:`striate.nn.Module.replace_head`).

1. Everything up to ``freeze_until`` (default: all but the head) is frozen, batch norm included (it
   runs on its running statistics unless ``train_bn``), and the head trains for ``head_epochs``.
2. Everything is unfrozen and trains for ``epochs`` more: the pre-trained layers at ``lr / lr_mult``,
   the head at ``lr`` (discriminative fine-tuning: two parameter groups), with a cosine decay.
"""
from __future__ import annotations

from .loop import fit


def finetune(model, head, train, head_epochs: int, epochs: int, optimizer: str = "sgd", lr: float = 0.01,
             lr_mult: float = 10.0, momentum: float = 0.9, weight_decay: float = 5e-4, freeze_until=None,
             train_bn: bool = False, verbose: int = 1, val=None, callbacks=()):
    """Run the two phases; returns ``(rows, optimizer)``: one log row per epoch (``phase``, ``epoch``
    and the history's metrics) and the optimiser of the last phase (for the run's checkpoint).

    Args:
        model: the model, its head already replaced.
        head: the new head (a module of ``model``).
        train: the training batches; ``val`` and ``callbacks`` (e.g. the best checkpoint) serve the
            fine-tuning phase.
        head_epochs, epochs: the lengths of the two phases (either may be 0).
        optimizer, lr, momentum, weight_decay: as :func:`striate.optim.build_optimizer`.
        lr_mult: the pre-trained layers fine-tune at ``lr / lr_mult``.
        freeze_until: the last layer frozen in the head phase (a name of ``model.named_modules()``).
        train_bn: keep batch-norm layers trainable while frozen.

    Example::

        >>> head = model.replace_head(5, rng=0)
        >>> rows, opt = st.training.finetune(model, head, train_loader, head_epochs=1, epochs=5)
    """
    from ..optim import CosineAnnealingLR, build_optimizer

    def make(params, rate):
        return build_optimizer(optimizer, params, rate, momentum, weight_decay)

    head_ids = {id(p) for p in head.parameters()}
    rows = []
    if head_epochs:
        if freeze_until:
            model.freeze(until=freeze_until, train_bn=train_bn)
        else:
            model.freeze(train_bn=train_bn)
        head.unfreeze()
        history = fit(model, train, epochs=head_epochs, optimizer=make(model.parameters(), lr), verbose=verbose)
        rows += [dict(phase="head", epoch=i + 1, **{k: v[i] for k, v in history.history.items()})
                 for i in range(len(history.epoch))]
    model.unfreeze()
    body = [p for p in model.parameters() if id(p) not in head_ids]
    # two groups (discriminative fine-tuning); the head first, so the logged lr is the head's
    groups = [{"params": head.parameters()}, {"params": body, "lr": lr / lr_mult}]
    opt = make(groups if body else head.parameters(), lr)
    if epochs:
        history = fit(model, train, val, epochs=epochs, optimizer=opt, schedule=CosineAnnealingLR(opt, t_max=epochs),
                      callbacks=callbacks, verbose=verbose)
        rows += [dict(phase="finetune", epoch=head_epochs + i + 1, **{k: v[i] for k, v in history.history.items()})
                 for i in range(len(history.epoch))]
    return rows, opt
