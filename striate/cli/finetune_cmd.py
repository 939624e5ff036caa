"""``striate finetune --base C --dataset D``: transfer learning in two phases.

1. The base model (a ``striate train`` run, a ``striate import`` file or an ``.onnx`` file) gets a
   new head for D's classes; everything up to ``--freeze-until`` (default: all but the head) is
   frozen, batch norm included (it runs on its running statistics), and the head trains for
   ``--head-epochs`` at ``--lr``.
2. Everything is unfrozen and trains for ``--epochs`` more, the pre-trained layers at
   ``lr / --lr-mult`` and the head at ``lr`` (discriminative fine-tuning: two parameter groups),
   with a cosine decay.

The pieces are the train command's: the same data loading, optimiser, loop and output files
(weights.npz, checkpoint.npz, log.csv, metrics.json).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time

import numpy as np

from .main import CommandError

EPILOG = """examples:
  striate finetune --base runs/mnist04/weights.npz --dataset mnist --data-dir PATH \\
      --classes 5,6,7,8,9 --per-class 50 --head-epochs 5 --epochs 10 --out runs/ft59
  striate finetune --base resnet18.onnx --dataset path/to/folder --freeze-until layer3 --lr 0.01
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "finetune", help="transfer learning: new head, train it, then fine-tune everything at a lower rate",
        description="Fine-tune a pre-trained model on a new data set: replace the head for its classes, train the "
                    "head with the base frozen, then unfreeze and train all layers with a lower rate for the base.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", required=True, metavar="PATH", help="weights/checkpoint .npz or .onnx to start from")
    p.add_argument("--dataset", required=True, metavar="NAME|DIR", help="data set to fine-tune on")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--classes", metavar="LIST", help="comma-separated class indices to keep (e.g. 5,6,7,8,9); "
                   "they are renumbered 0..k-1")
    p.add_argument("--per-class", type=int, metavar="N", help="use only N training images per class (seeded)")
    p.add_argument("--val-split", type=float, default=0.0, metavar="F",
                   help="hold out this fraction of the training images to pick checkpoint_best.npz (default 0)")
    p.add_argument("--freeze-until", metavar="NAME", help="freeze the layers up to and including NAME in the head "
                   "phase (default: everything but the new head)")
    p.add_argument("--train-bn", action="store_true", help="keep batch-norm layers trainable while frozen")
    p.add_argument("--head-epochs", type=int, default=1, metavar="N", help="epochs of the head phase (default 1)")
    p.add_argument("--epochs", type=int, default=5, metavar="N", help="epochs of the fine-tuning phase (default 5)")
    p.add_argument("--lr", type=float, default=0.01, metavar="RATE", help="learning rate of the head (default 0.01)")
    p.add_argument("--lr-mult", type=float, default=10.0, metavar="M",
                   help="the pre-trained layers fine-tune at lr / M (default 10)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per step (default 32)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd", help="default sgd (momentum 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, metavar="L2", help="default 5e-4")
    p.add_argument("--seed", type=int, default=0, help="seed of the new head, the subset and shuffling (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/finetune-<dataset>)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    p.set_defaults(command="finetune")
    return p


def _subset(ds, classes, per_class, seed):
    """The data set restricted to ``classes`` (renumbered) and ``per_class`` training images each."""
    from ..data import Dataset

    x_tr, y_tr, x_te, y_te, names = ds.x_train, ds.y_train, ds.x_test, ds.y_test, list(ds.class_names)
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(names)]
        if bad:
            raise CommandError(f"--classes must be indices in 0..{len(names) - 1}. Received: {bad}.")
        lut = np.full(len(names), -1)
        lut[classes] = np.arange(len(classes))
        keep_tr, keep_te = lut[y_tr] >= 0, lut[y_te] >= 0
        x_tr, y_tr, x_te, y_te = x_tr[keep_tr], lut[y_tr[keep_tr]], x_te[keep_te], lut[y_te[keep_te]]
        names = [names[c] for c in classes]
    if per_class is not None:
        if per_class < 1:
            raise CommandError(f"--per-class must be a positive integer. Received: {per_class}.")
        rng = np.random.default_rng(seed)
        idx = []
        for c in range(len(names)):
            members = np.flatnonzero(y_tr == c)
            if len(members) < per_class:
                raise CommandError(f"--per-class {per_class}: class {names[c]!r} has only {len(members)} images.")
            idx.append(rng.choice(members, per_class, replace=False))
        idx = np.sort(np.concatenate(idx))
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    return Dataset(x_tr, y_tr, x_te, y_te, names, name=ds.name)


def _write_log(path, rows):
    from ..atomic import atomic_write_text

    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def finetune(model, head, train, epochs_head, epochs, config, freeze_until=None, train_bn=False, verbose=1,
             val=None, callbacks=()):
    """The two phases on a model whose head was just replaced; returns the log rows and the optimiser.
    ``val`` and ``callbacks`` (e.g. the best checkpoint) serve the fine-tuning phase."""
    from .. import optim
    from ..training import fit
    from .train_cmd import _optimizer

    head_ids = {id(p) for p in head.parameters()}
    rows = []
    if epochs_head:
        if freeze_until:
            model.freeze(until=freeze_until, train_bn=train_bn)
        else:
            model.freeze(train_bn=train_bn)
        head.unfreeze()
        opt = _optimizer(config, model.parameters())
        history = fit(model, train, epochs=epochs_head, optimizer=opt, verbose=verbose)
        rows += [dict(phase="head", epoch=i + 1, **{k: v[i] for k, v in history.history.items()})
                 for i in range(len(history.epoch))]
    model.unfreeze()
    body = [p for p in model.parameters() if id(p) not in head_ids]
    # two groups (discriminative fine-tuning); the head first, so the logged lr is the head's
    groups = [{"params": head.parameters()}, {"params": body, "lr": config["lr"] / config["lr_mult"]}]
    opt = _optimizer(config, groups if body else head.parameters())
    if epochs:
        schedule = optim.CosineAnnealingLR(opt, t_max=epochs)
        history = fit(model, train, val, epochs=epochs, optimizer=opt, schedule=schedule, callbacks=callbacks,
                      verbose=verbose)
        rows += [dict(phase="finetune", epoch=epochs_head + i + 1, **{k: v[i] for k, v in history.history.items()})
                 for i in range(len(history.epoch))]
    return rows, opt


def _check_args(args):
    """The numeric options and ``--classes`` parsed; one-line errors."""
    for name in ("head_epochs", "epochs"):
        if getattr(args, name) < 0:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 0. Received: {getattr(args, name)}.")
    if not args.lr > 0 or not args.lr_mult > 0:
        raise CommandError(f"--lr and --lr-mult must be positive. Received: {args.lr}, {args.lr_mult}.")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be a positive integer. Received: {args.batch_size}.")
    if not 0 <= args.val_split < 1:
        raise CommandError(f"--val-split must lie in [0, 1). Received: {args.val_split}.")
    if not args.classes:
        return None
    try:
        return [int(c) for c in args.classes.split(",") if c.strip()]
    except ValueError:
        raise CommandError(f"--classes must be comma-separated integers. Received: {args.classes!r}.") from None


def _check_layer(model, name):
    layers = [n for n, _ in model.named_modules() if n]
    if name is not None and name not in layers:
        shown = ", ".join(layers[:12]) + (", ..." if len(layers) > 12 else "")
        raise CommandError(f"--freeze-until must name a layer of the base model. Received: {name!r}. "
                           f"Layers: {shown}.")


def _run_meta(args, model, meta, ds, standardize):
    """The description stored with the fine-tuned weights (model, classes, preprocessing, config)."""
    new_meta = dict(meta)
    new_meta.update(class_names=list(ds.class_names), input_shape=list(ds.input_shape), dataset=args.dataset,
                    preprocess={"scale": 1 / 255, "mean": np.asarray(standardize.mean).tolist(),
                                "std": np.asarray(standardize.std).tolist(), "eps": standardize.eps},
                    base=os.path.abspath(args.base))
    spec = new_meta.get("model") or {}
    if "graph" in spec:
        new_meta["model"] = {"graph": model.current_spec()}
    elif "name" in spec:  # a zoo model: `striate evaluate` / `predict` rebuild it with the new class count
        new_meta["model"] = {"name": spec["name"], "args": dict(spec.get("args") or {}, num_classes=ds.num_classes)}
    config = {k: getattr(args, k) for k in ("dataset", "classes", "per_class", "val_split", "freeze_until",
                                              "train_bn", "head_epochs", "epochs", "lr", "lr_mult", "batch_size",
                                              "optimizer", "weight_decay", "seed")}
    new_meta["config"] = config
    return new_meta


def _write_run(out, args, model, new_meta, ds, rows, opt, result, started, train_images):
    """weights.npz, checkpoint.npz, log.csv and metrics.json, as `striate train` writes them
    (checkpoint_best.npz is written during training when there is a validation split)."""
    from ..atomic import atomic_write_text
    from ..training import save_checkpoint, save_weights

    epochs = args.head_epochs + args.epochs
    save_weights(os.path.join(out, "weights.npz"), model, meta=new_meta)
    save_checkpoint(os.path.join(out, "checkpoint.npz"), model, opt, epoch=epochs, meta=new_meta)
    _write_log(os.path.join(out, "log.csv"), rows)
    metrics = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": epochs,
               "seconds": round(time.perf_counter() - started, 2), "train_images": int(train_images),
               "params": model.num_parameters(),
               "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                                      for n, a in zip(ds.class_names, result["per_class_accuracy"])},
               "confusion_matrix": result["confusion_matrix"].tolist(), "config": new_meta["config"]}
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics


def run(args) -> int:
    from .. import random
    from ..data import DataLoader
    from ..data import transforms as T
    from ..training import ModelCheckpoint, evaluate
    from .common import load_data, standardizer
    from .import_cmd import load_base
    from .train_cmd import _split

    started = time.perf_counter()
    classes = _check_args(args)
    model, meta = load_base(args.base)
    ds = _subset(load_data(args.dataset, args.data_dir), classes, args.per_class, args.seed)
    expected = tuple(meta.get("input_shape") or getattr(model, "input_shape", None) or ds.input_shape)
    if tuple(ds.input_shape) != expected:
        raise CommandError(f"the base model takes {'x'.join(map(str, expected))} images; {args.dataset} has "
                           f"{'x'.join(map(str, ds.input_shape))}.")
    _check_layer(model, args.freeze_until)
    random.manual_seed(args.seed)
    # the base model's own preprocessing keeps its features' inputs as in pre-training
    standardize = standardizer(meta) or T.Standardize().fit(ds.x_train)
    head = model.replace_head(ds.num_classes, rng=args.seed)
    config = {"optimizer": args.optimizer, "lr": args.lr, "momentum": 0.9, "weight_decay": args.weight_decay,
              "lr_mult": args.lr_mult}
    x_tr, y_tr, x_val, y_val = _split(ds, args.val_split, args.seed)
    train = DataLoader(x_tr, y_tr, batch_size=args.batch_size, shuffle=True, transform=standardize, rng=args.seed + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=standardize)
    out = args.out or os.path.join("runs", f"finetune-{os.path.basename(os.path.normpath(ds.name))}")
    new_meta = _run_meta(args, model, meta, ds, standardize)
    best = [] if val is None else [ModelCheckpoint(os.path.join(out, "checkpoint_best.npz"), monitor="val_acc",
                                                   save_best_only=True, meta=new_meta)]
    verbose = 0 if args.quiet else 2
    if verbose:
        print(f"fine-tuning {args.base} ({model.num_parameters():,} parameters) on {ds.name}: "
              f"{len(y_tr)} train / {0 if y_val is None else len(y_val)} val / {len(ds.y_test)} test images, "
              f"{ds.num_classes} classes; "
              f"{args.head_epochs} head epoch(s) at lr {args.lr:g}, then {args.epochs} at lr {args.lr:g} "
              f"(head) / {args.lr / args.lr_mult:g} (base)")
    try:
        rows, opt = finetune(model, head, train, args.head_epochs, args.epochs, config, args.freeze_until,
                             args.train_bn, verbose, val, best)
    except FloatingPointError as e:
        raise CommandError(str(e).replace("fit: ", "") + " (--lr)") from None
    result = evaluate(model, DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=standardize))
    metrics = _write_run(out, args, model, new_meta, ds, rows, opt, result, started, len(y_tr))
    print(f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
          f"({metrics['epochs']} epochs, {metrics['seconds']:.0f}s)  ->  {out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    return 0
