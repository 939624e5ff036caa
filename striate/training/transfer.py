"""Fine-tuning in two phases (transfer learning), on a model whose head was just replaced
(:meth:`striate.nn.Module.replace_head`).

1. Everything up to ``freeze_until`` (default: all but the head) is frozen, batch norm included (it
   runs on its running statistics unless ``train_bn``), and the head trains for ``head_epochs``.
2. Everything is unfrozen and trains for ``epochs`` more: the pre-trained layers at ``lr / lr_mult``,
   the head at ``lr`` (discriminative fine-tuning: two parameter groups), with a cosine decay.

:func:`finetune` runs the two phases on a model and data you made; :func:`finetune_run` does what
``striate finetune`` does — base model in, run folder out — in one call.
"""
from __future__ import annotations

import os
import time
import uuid

import numpy as np

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


# ------------------------------------------------------------------------------------------ a whole run
def _check_numbers(head_epochs, epochs, lr, lr_mult, batch_size, val_split, per_class, seed) -> None:
    def whole(value, name, least):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"--{name.replace('_', '-')} must be an integer. Received: {name}={value!r}.")
        if value < least:
            raise ValueError(f"--{name.replace('_', '-')} must be "
                             f"{'>= 0' if least == 0 else 'a positive integer'}. Received: {value}.")

    whole(head_epochs, "head_epochs", 0)
    whole(epochs, "epochs", 0)
    for name, value in (("lr", lr), ("lr_mult", lr_mult), ("val_split", val_split)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"--{name.replace('_', '-')} must be a number. Received: {name}={value!r}.")
    if not lr > 0 or not lr_mult > 0:
        raise ValueError(f"--lr and --lr-mult must be positive. Received: {lr}, {lr_mult}.")
    whole(batch_size, "batch_size", 1)
    if not 0 <= val_split < 1:
        raise ValueError(f"--val-split must lie in [0, 1). Received: {val_split}.")
    if per_class is not None:
        whole(per_class, "per_class", 1)
    whole(seed, "seed", 0)


def _parse_classes(classes):
    """``classes`` (``"5,6,7"`` or a list of ints) as a list, at least two different ones, each once."""
    if classes is None:
        return None
    if isinstance(classes, str):
        try:
            found = [int(c) for c in classes.split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"--classes must be comma-separated integers. Received: {classes!r}.") from None
    else:
        found = list(classes)
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in found):
            raise ValueError(f"--classes must be integers. Received: {classes!r}.")
        found = [int(c) for c in found]
    if len(set(found)) < 2 or len(set(found)) != len(found):
        raise ValueError("--classes must name at least two different classes, each once: a model of one class has "
                         f"nothing to tell apart (its accuracy would always be 100%). Received: {classes!r}.")
    return found


def _subset(ds, classes, per_class, seed):
    """The data set restricted to ``classes`` (renumbered) and ``per_class`` training images each."""
    from ..data import sample_per_class, select_classes

    try:
        if classes is not None:
            ds = select_classes(ds, classes)
        return ds if per_class is None else sample_per_class(ds, per_class, seed)
    except ValueError as e:  # worded with the parameters' names: said with the options' names
        text = " ".join(str(e).split())
        raise ValueError(text.replace("per_class=", "--per-class ").replace("classes=", "--classes ")
                         .replace("classes must", "--classes must", 1)) from None


def _check_layer(model, name) -> None:
    layers = [n for n, _ in model.named_modules() if n]
    if name is not None and name not in layers:
        shown = ", ".join(layers[:12]) + (", ..." if len(layers) > 12 else "")
        raise ValueError(f"--freeze-until must name a layer of the base model. Received: {name!r}. "
                         f"Layers: {shown}.")


def _standardizer(meta: dict):
    """The base model's own preprocessing, recorded in its file (None when it records none)."""
    from ..data import transforms

    pre = meta.get("preprocess") or {}
    if pre.get("mean") is None:
        return None
    return transforms.Standardize(mean=np.asarray(pre["mean"]), std=np.asarray(pre["std"]), eps=pre.get("eps", 1e-7))


def _run_meta(base, model, meta, ds, standardize, data: dict, config: dict, run_id: str) -> dict:
    """The description stored with the fine-tuned weights: model, classes, preprocessing, and the data it
    was made from (data set, data folder, the class subset), so evaluate / report / ... cut the same data."""
    from .. import __version__

    new_meta = {k: v for k, v in meta.items() if k not in ("config", "run_id", "data_dir", "dataset", "classes")}
    new_meta.update(class_names=list(ds.class_names), input_shape=list(ds.input_shape),
                    preprocess={"scale": 1 / 255, "mean": np.asarray(standardize.mean).tolist(),
                                "std": np.asarray(standardize.std).tolist(), "eps": standardize.eps},
                    base=os.path.abspath(base), run_id=run_id, striate_version=__version__, **data)
    spec = new_meta.get("model") or {}
    if "graph" in spec:
        new_meta["model"] = {"graph": model.current_spec()}
    elif "name" in spec:  # a zoo model: `striate evaluate` / `predict` rebuild it with the new class count
        new_meta["model"] = {"name": spec["name"], "args": dict(spec.get("args") or {}, num_classes=ds.num_classes)}
    new_meta["config"] = dict(config, **data, verify=True)
    return new_meta


def finetune_run(base, dataset, out=None, *, data_dir=None, classes=None, per_class=None, val_split: float = 0.0,
                 freeze_until=None, train_bn: bool = False, head_epochs: int = 1, epochs: int = 5, lr: float = 0.01,
                 lr_mult: float = 10.0, batch_size: int = 32, optimizer: str = "sgd", weight_decay: float = 5e-4,
                 seed: int = 0, overwrite: bool = False, verbose: int = 2):
    """Fine-tune a pre-trained model on a data set and write a run folder, as ``striate finetune`` does.

    The base model gets a new head for the data set's classes and trains in the two phases of
    :func:`finetune`; the folder receives ``weights.npz``, ``checkpoint.npz``, ``log.csv``, ``metrics.json``
    (and ``checkpoint_best.npz`` with a validation split), recording the data set, data folder and class
    subset so that evaluate, report and visualize cut the same data.

    Args:
        base: the model to start from: a ``weights.npz`` or ``checkpoint.npz`` of a run, or an ``.onnx`` file.
        dataset: the data set to fine-tune on (a name, any spelling, or an image folder).
        out: the run folder (default ``runs/finetune-<dataset>``); never the folder of ``base``, and never one
            holding another run unless ``overwrite``.
        data_dir: the folder holding the data set's files (no download).
        classes: the class indices to keep (``[5, 6, 7]`` or ``"5,6,7"``), renumbered 0..k-1.
        per_class: use only this many training images per class (seeded).
        val_split: the fraction of training images held out to pick ``checkpoint_best.npz``.
        freeze_until: the last layer frozen in the head phase (default: all but the new head).
        train_bn: keep batch-norm layers trainable while frozen.
        head_epochs, epochs: the lengths of the head phase and the fine-tuning phase.
        lr, lr_mult: the head's learning rate; the pre-trained layers fine-tune at ``lr / lr_mult``.
        batch_size, optimizer, weight_decay: ``optimizer`` is ``"sgd"`` (momentum 0.9), ``"adam"`` or ``"adamw"``.
        seed: the seed of the new head, the subset and the shuffling.
        overwrite: replace the files of the run already in ``out``.
        verbose: 0 silent, 2 a line describing the run and a line per epoch.

    Returns:
        A :class:`~striate.training.RunResult` (``history``: one log row per epoch, with its phase).

    Raises:
        ValueError: an argument, the base model, the data or the folder that cannot work (one line, naming
            the argument the way the command line's option does: ``--classes``, ``--out``, ...).
        TrainingFailed: the loss diverged.

    Example::

        >>> result = finetune_run("runs/a/weights.npz", "digits", "runs/b", classes=[0, 1], epochs=2)
        >>> result.metrics["classes"], result.metrics["epochs"]
        ([0, 1], 3)
    """
    from .. import random
    from ..data import DataLoader, validation_split
    from ..data import transforms as T
    from . import recipe
    from .callbacks import ModelCheckpoint
    from .checkpoint import save_checkpoint, save_weights
    from .loop import evaluate
    from .model_file import load_model
    from .run import RunResult, TrainingFailed
    from .run_dir import RunDir, default_folder

    started = time.perf_counter()
    _check_numbers(head_epochs, epochs, lr, lr_mult, batch_size, val_split, per_class, seed)
    optimizer = recipe.match_choice(str(optimizer), ("sgd", "adam", "adamw"), "--optimizer")
    chosen = _parse_classes(classes)
    data = {"dataset": recipe.dataset_key(os.fspath(dataset)),
            "data_dir": os.path.abspath(data_dir) if data_dir is not None else None, "classes": chosen}
    base = os.fspath(base)
    model, meta = load_model(base, allow_onnx=True)
    run_id = uuid.uuid4().hex
    run_dir = RunDir(os.fspath(out) if out is not None else default_folder("finetune", data["dataset"]))
    run_dir.check(overwrite=overwrite, run_id=run_id, reads=[base])   # before any data are read
    ds = _subset(recipe.load_data(data["dataset"], data["data_dir"]), chosen, per_class, seed)
    expected = tuple(meta.get("input_shape") or getattr(model, "input_shape", None) or ds.input_shape)
    if tuple(ds.input_shape) != expected:
        raise ValueError(f"the base model takes {'x'.join(map(str, expected))} images; {os.fspath(dataset)} has "
                         f"{'x'.join(map(str, ds.input_shape))}.")
    _check_layer(model, freeze_until)
    config = {"per_class": per_class, "val_split": val_split, "freeze_until": freeze_until, "train_bn": train_bn,
              "head_epochs": head_epochs, "epochs": epochs, "lr": lr, "lr_mult": lr_mult, "batch_size": batch_size,
              "optimizer": optimizer, "weight_decay": weight_decay, "seed": seed}
    run_dir.open(overwrite=overwrite, run_id=run_id, reads=[base])
    with run_dir:
        random.manual_seed(seed)
        # the base model's own preprocessing keeps its features' inputs as in pre-training
        standardize = _standardizer(meta) or T.Standardize().fit(ds.x_train)
        head = model.replace_head(ds.num_classes, rng=seed)
        x_tr, y_tr, x_val, y_val = validation_split(ds, val_split, seed)
        train = DataLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, transform=standardize, rng=seed + 1)
        val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False,
                                                    transform=standardize)
        new_meta = _run_meta(base, model, meta, ds, standardize, data, config, run_id)
        best = [] if val is None else [ModelCheckpoint(run_dir.best, monitor="val_acc", save_best_only=True,
                                                       meta=new_meta)]
        if verbose:
            print(f"fine-tuning {base} ({model.num_parameters():,} parameters) on {ds.name}: "
                  f"{len(y_tr)} train / {0 if y_val is None else len(y_val)} val / {len(ds.y_test)} test images, "
                  f"{ds.num_classes} classes; "
                  f"{head_epochs} head epoch(s) at lr {lr:g}, then {epochs} at lr {lr:g} "
                  f"(head) / {lr / lr_mult:g} (base)")
        try:
            rows, opt = finetune(model, head, train, head_epochs, epochs, optimizer=optimizer, lr=lr,
                                 lr_mult=lr_mult, momentum=0.9, weight_decay=weight_decay, freeze_until=freeze_until,
                                 train_bn=train_bn, verbose=verbose, val=val, callbacks=best)
        except FloatingPointError as e:
            raise TrainingFailed(str(e).replace("fit: ", "") + " (--lr)") from None
        test = DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=standardize)
        result = evaluate(model, test)
        total = head_epochs + epochs
        save_weights(run_dir.weights, model, meta=new_meta)
        save_checkpoint(run_dir.checkpoint, model, opt, epoch=total, meta=new_meta)
        run_dir.write_log(rows)
        metrics = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": total,
                   "seconds": round(time.perf_counter() - started, 2), "train_images": int(len(y_tr)),
                   "params": model.num_parameters(), "dataset": new_meta["dataset"],
                   "data_dir": new_meta["data_dir"], "classes": new_meta["classes"],
                   "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                                          for n, a in zip(ds.class_names, result["per_class_accuracy"])},
                   "confusion_matrix": result["confusion_matrix"].tolist(), "config": new_meta["config"]}
        run_dir.write_metrics(metrics)
    return RunResult(run_dir.path, metrics, rows, model, new_meta["config"])
