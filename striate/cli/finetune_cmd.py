"""``striate finetune --base C --dataset D``: transfer learning in two phases.

1. The base model (a ``striate train`` run, a ``striate import`` file or an ``.onnx`` file) gets a
   new head for D's classes; everything up to ``--freeze-until`` (default: all but the head) is
   frozen, batch norm included (it runs on its running statistics), and the head trains for
   ``--head-epochs`` at ``--lr``.
2. Everything is unfrozen and trains for ``--epochs`` more, the pre-trained layers at
   ``lr / --lr-mult`` and the head at ``lr`` (discriminative fine-tuning: two parameter groups),
   with a cosine decay.

The pieces are the train command's: the same data loading, optimiser, loop and run folder
(weights.npz, checkpoint.npz, log.csv, metrics.json; striate.training.RunDir). The run records its
data set, --data-dir and class subset, so evaluate, report and visualize cut the same data.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .common import one_line
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
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/finetune-<dataset>); never the folder "
                   "of --base, and never a folder holding another run unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the run files already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    p.set_defaults(command="finetune")
    return p


def _subset(ds, classes, per_class, seed):
    """The data set restricted to ``classes`` (renumbered) and ``per_class`` training images each."""
    from ..data import sample_per_class, select_classes

    try:
        if classes is not None:
            ds = select_classes(ds, classes)
        return ds if per_class is None else sample_per_class(ds, per_class, seed)
    except ValueError as e:  # worded with the parameters' names: said with the options' names
        raise CommandError(one_line(e).replace("per_class=", "--per-class ").replace("classes=", "--classes ")
                           .replace("classes must", "--classes must", 1)) from None


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
    if args.per_class is not None and args.per_class < 1:
        raise CommandError(f"--per-class must be a positive integer. Received: {args.per_class}.")
    if args.classes is None:
        return None
    try:
        classes = [int(c) for c in args.classes.split(",") if c.strip()]
    except ValueError:
        raise CommandError(f"--classes must be comma-separated integers. Received: {args.classes!r}.") from None
    if len(set(classes)) < 2 or len(set(classes)) != len(classes):
        raise CommandError("--classes must name at least two different classes, each once: a model of one class has "
                           f"nothing to tell apart (its accuracy would always be 100%). Received: {args.classes!r}.")
    return classes


def _check_layer(model, name):
    layers = [n for n, _ in model.named_modules() if n]
    if name is not None and name not in layers:
        shown = ", ".join(layers[:12]) + (", ..." if len(layers) > 12 else "")
        raise CommandError(f"--freeze-until must name a layer of the base model. Received: {name!r}. "
                           f"Layers: {shown}.")


def _run_meta(args, model, meta, ds, standardize, data: dict, run_id: str):
    """The description stored with the fine-tuned weights: model, classes, preprocessing, and the data it
    was made from (data set, --data-dir, the class subset), so evaluate / report / ... cut the same data."""
    from .. import __version__

    new_meta = {k: v for k, v in meta.items() if k not in ("config", "run_id", "data_dir", "dataset", "classes")}
    new_meta.update(class_names=list(ds.class_names), input_shape=list(ds.input_shape),
                    preprocess={"scale": 1 / 255, "mean": np.asarray(standardize.mean).tolist(),
                                "std": np.asarray(standardize.std).tolist(), "eps": standardize.eps},
                    base=os.path.abspath(args.base), run_id=run_id, striate_version=__version__, **data)
    spec = new_meta.get("model") or {}
    if "graph" in spec:
        new_meta["model"] = {"graph": model.current_spec()}
    elif "name" in spec:  # a zoo model: `striate evaluate` / `predict` rebuild it with the new class count
        new_meta["model"] = {"name": spec["name"], "args": dict(spec.get("args") or {}, num_classes=ds.num_classes)}
    config = {k: getattr(args, k) for k in ("per_class", "val_split", "freeze_until", "train_bn", "head_epochs",
                                              "epochs", "lr", "lr_mult", "batch_size", "optimizer", "weight_decay",
                                              "seed")}
    new_meta["config"] = dict(config, **data, verify=True)
    return new_meta


def _write_run(run_dir, args, model, new_meta, ds, rows, opt, result, started, train_images):
    """weights.npz, checkpoint.npz, log.csv and metrics.json, as `striate train` writes them
    (checkpoint_best.npz is written during training when there is a validation split)."""
    from ..training import save_checkpoint, save_weights

    epochs = args.head_epochs + args.epochs
    save_weights(run_dir.weights, model, meta=new_meta)
    save_checkpoint(run_dir.checkpoint, model, opt, epoch=epochs, meta=new_meta)
    run_dir.write_log(rows)
    metrics = {"test_accuracy": result["accuracy"], "test_loss": result["loss"], "epochs": epochs,
               "seconds": round(time.perf_counter() - started, 2), "train_images": int(train_images),
               "params": model.num_parameters(), "dataset": new_meta["dataset"], "data_dir": new_meta["data_dir"],
               "classes": new_meta["classes"],
               "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                                      for n, a in zip(ds.class_names, result["per_class_accuracy"])},
               "confusion_matrix": result["confusion_matrix"].tolist(), "config": new_meta["config"]}
    run_dir.write_metrics(metrics)
    return metrics


def _open(args, data: dict, run_id: str):
    """The run folder, checked before any data are read: never another run's (unless --overwrite), and
    never the folder of the base model it reads."""
    from ..training import RunDir, RunDirError
    from ..training.run_dir import default_folder

    run_dir = RunDir(args.out or default_folder("finetune", data["dataset"]))
    try:
        run_dir.check(overwrite=args.overwrite, run_id=run_id, reads=[args.base])
    except RunDirError as e:
        raise CommandError(one_line(e)) from None
    return run_dir


def run(args) -> int:
    import uuid

    from ..training import RunDirError
    from .common import dataset_key, load_data, load_model_file

    started = time.perf_counter()
    classes = _check_args(args)
    data = {"dataset": dataset_key(args.dataset),
            "data_dir": os.path.abspath(args.data_dir) if args.data_dir is not None else None, "classes": classes}
    model, meta = load_model_file(args.base, allow_onnx=True)
    run_id = uuid.uuid4().hex
    run_dir = _open(args, data, run_id)
    ds = _subset(load_data(data["dataset"], data["data_dir"]), classes, args.per_class, args.seed)
    expected = tuple(meta.get("input_shape") or getattr(model, "input_shape", None) or ds.input_shape)
    if tuple(ds.input_shape) != expected:
        raise CommandError(f"the base model takes {'x'.join(map(str, expected))} images; {args.dataset} has "
                           f"{'x'.join(map(str, ds.input_shape))}.")
    _check_layer(model, args.freeze_until)
    try:
        run_dir.open(overwrite=args.overwrite, run_id=run_id, reads=[args.base])
    except RunDirError as e:
        raise CommandError(one_line(e)) from None
    with run_dir:
        return _finetune(args, model, meta, ds, data, run_id, run_dir, started)


def _finetune(args, model, meta, ds, data, run_id, run_dir, started) -> int:
    from .. import random
    from ..data import DataLoader, validation_split
    from ..data import transforms as T
    from ..training import ModelCheckpoint, evaluate, finetune
    from .common import standardizer

    random.manual_seed(args.seed)
    # the base model's own preprocessing keeps its features' inputs as in pre-training
    standardize = standardizer(meta) or T.Standardize().fit(ds.x_train)
    head = model.replace_head(ds.num_classes, rng=args.seed)
    x_tr, y_tr, x_val, y_val = validation_split(ds, args.val_split, args.seed)
    train = DataLoader(x_tr, y_tr, batch_size=args.batch_size, shuffle=True, transform=standardize, rng=args.seed + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=standardize)
    new_meta = _run_meta(args, model, meta, ds, standardize, data, run_id)
    best = [] if val is None else [ModelCheckpoint(run_dir.best, monitor="val_acc", save_best_only=True,
                                                   meta=new_meta)]
    verbose = 0 if args.quiet else 2
    if verbose:
        print(f"fine-tuning {args.base} ({model.num_parameters():,} parameters) on {ds.name}: "
              f"{len(y_tr)} train / {0 if y_val is None else len(y_val)} val / {len(ds.y_test)} test images, "
              f"{ds.num_classes} classes; "
              f"{args.head_epochs} head epoch(s) at lr {args.lr:g}, then {args.epochs} at lr {args.lr:g} "
              f"(head) / {args.lr / args.lr_mult:g} (base)")
    try:
        rows, opt = finetune(model, head, train, args.head_epochs, args.epochs, optimizer=args.optimizer,
                             lr=args.lr, lr_mult=args.lr_mult, momentum=0.9, weight_decay=args.weight_decay,
                             freeze_until=args.freeze_until, train_bn=args.train_bn, verbose=verbose, val=val,
                             callbacks=best)
    except FloatingPointError as e:
        raise CommandError(str(e).replace("fit: ", "") + " (--lr)") from None
    result = evaluate(model, DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=standardize))
    metrics = _write_run(run_dir, args, model, new_meta, ds, rows, opt, result, started, len(y_tr))
    print(f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
          f"({metrics['epochs']} epochs, {metrics['seconds']:.0f}s)  ->  {run_dir.path}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    return 0
