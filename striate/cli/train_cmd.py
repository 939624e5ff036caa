"""``striate train``: train a model on a data set with a good default recipe, write the run's files."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from .common import AUGMENTATIONS, RECIPES, build_model, load_data, recipe_for
from .main import CommandError

EPILOG = """\
examples:
  striate train                                   # 8x8 digits (ships with scikit-learn), digits_cnn, < 1 min
  striate train --epochs 3 --out runs/quick       # a shorter run into runs/quick
  striate train --dataset mnist --data-dir ../shared/data       # LeNet-5 on MNIST (local files)
  striate train --dataset mnist --model lenet5 --lr 0.02 --optimizer sgd --augment none
  striate train --dataset cifar10 --model resnet20 --augment crop,flip
  striate train --dataset path/to/folder          # one sub-folder of images per class
  striate train --resume runs/digits-digits_cnn/checkpoint.npz --epochs 20   # continue a run
  mpiexec -n 4 striate train --dataset mnist --data-dir ../shared/data --distributed   # 4 processes

Every option left out comes from the data set's recipe (see striate/cli/common.py: RECIPES).
The output folder receives weights.npz, checkpoint.npz (last epoch), checkpoint_best.npz (best val_acc),
log.csv (one row per epoch) and metrics.json (test_accuracy, test_loss, epochs, seconds, ...).
Then: striate evaluate --checkpoint OUT/weights.npz;  striate predict IMAGE --checkpoint OUT/weights.npz
"""

# options that the recipe (or a resumed run's saved configuration) fills in when left out
TUNABLE = ("model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup",
           "augment", "crop_padding", "val_split")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a CNN on a data set (default: the embedded 8x8 digits)",
        description="Train a model from the zoo on a data set with a tuned per-data-set recipe, evaluate it\n"
                    "on the test set, and write the weights, checkpoints, an epoch log and metrics.json.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", metavar="NAME|DIR",
                      help="digits (default, offline), mnist, fashion_mnist, cifar10, or an image folder")
    data.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (no download)")
    data.add_argument("--val-split", type=float, metavar="F", help="fraction of the training set held out for "
                      "validation, in [0, 1) (recipe: 0.05-0.1)")
    data.add_argument("--augment", metavar="LIST", help=f"comma-separated: {', '.join(AUGMENTATIONS)} "
                      "(crop = padded random crop, flip = horizontal mirror, pca = AlexNet colour lighting)")
    data.add_argument("--crop-padding", type=int, metavar="PX", help="padding of the random crop, in pixels")
    model = p.add_argument_group("model and optimisation")
    model.add_argument("--model", metavar="NAME", help="architecture (striate models lists them)")
    model.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    model.add_argument("--batch-size", type=int, metavar="N", help="images per step")
    model.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="sgd (momentum), adam or adamw")
    model.add_argument("--lr", type=float, metavar="RATE", help="initial learning rate")
    model.add_argument("--momentum", type=float, metavar="MU", help="SGD momentum in [0, 1)")
    model.add_argument("--weight-decay", type=float, metavar="L2", help="L2 weight decay (decoupled for adamw)")
    model.add_argument("--schedule", choices=("cosine", "step", "plateau", "none"),
                       help="learning-rate schedule: cosine annealing, /10 at 50%% and 75%% of the epochs, "
                            "/10 on a val_loss plateau, or constant")
    model.add_argument("--warmup", type=int, metavar="N", help="epochs of linear learning-rate warm-up")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, help="seed of initialisation, shuffling and augmentation (default 0)")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>-<model>)")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint.npz "
                     "(its settings are reused; --epochs sets the new total)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    run.add_argument("--report", action="store_true", help="also write report.html into --out (striate report)")
    run.add_argument("--distributed", action="store_true",
                     help="data-parallel training over the processes of mpiexec (mpiexec -n 4 striate train "
                          "... --distributed; pip install 'striate[mpi]'): --batch-size stays the global batch, "
                          "split over the ranks; rank 0 writes the files")
    p.set_defaults(command="train")
    return p


# --------------------------------------------------------------------------------------------- config
def _resolve(args) -> dict:
    """The run's settings: explicit options > the resumed run's saved settings > the data set's recipe."""
    saved = {}
    if args.resume:
        from ..training import CheckpointError, load_checkpoint
        try:
            ckpt = load_checkpoint(args.resume)
        except (CheckpointError, FileNotFoundError) as e:
            raise CommandError(str(e)) from None
        if ckpt.kind != "checkpoint":
            raise CommandError(f"{args.resume} is a weights file; --resume needs the checkpoint.npz of a run.")
        saved = dict(ckpt.meta.get("config") or {})
    dataset = args.dataset or saved.get("dataset") or "digits"
    if dataset.lower() not in RECIPES and os.path.isdir(dataset):
        dataset = os.path.abspath(dataset)  # an image folder: evaluate may run from another directory
    config = recipe_for(dataset)
    config.update({k: v for k, v in saved.items() if k in TUNABLE})
    config.update({k: getattr(args, k) for k in TUNABLE if getattr(args, k) is not None})
    config["dataset"] = dataset
    config["seed"] = args.seed if args.seed is not None else int(saved.get("seed", 0))
    _validate(config)
    return config


def _validate(c: dict) -> None:
    def need(ok, message):
        if not ok:
            raise CommandError(message)

    need(c["epochs"] >= 1, f"--epochs must be a positive integer. Received: {c['epochs']}.")
    need(c["batch_size"] >= 1, f"--batch-size must be a positive integer. Received: {c['batch_size']}.")
    need(math.isfinite(c["lr"]) and c["lr"] > 0, f"--lr must be a positive number. Received: {c['lr']}.")
    need(0 <= c["momentum"] < 1, f"--momentum must lie in [0, 1). Received: {c['momentum']}.")
    need(c["weight_decay"] >= 0, f"--weight-decay must be >= 0. Received: {c['weight_decay']}.")
    need(0 <= c["val_split"] < 1, f"--val-split must lie in [0, 1). Received: {c['val_split']}.")
    need(c["warmup"] >= 0, f"--warmup must be >= 0 epochs. Received: {c['warmup']}.")
    need(c["crop_padding"] >= 0, f"--crop-padding must be >= 0 pixels. Received: {c['crop_padding']}.")
    need(c["schedule"] != "plateau" or c["val_split"] > 0, "--schedule plateau watches val_loss: give --val-split > 0.")
    augs = [a.strip() for a in str(c["augment"]).split(",") if a.strip()]
    unknown = [a for a in augs if a not in AUGMENTATIONS]
    need(not unknown, f"unknown --augment {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)} "
                      "(comma-separated, e.g. crop,flip).")
    c["augment"] = ",".join(a for a in augs if a != "none") or "none"
    from .. import models
    try:
        models.info(c["model"])
    except ValueError as e:
        raise CommandError(str(e)) from None


# ---------------------------------------------------------------------------------------------- pieces
def _split(ds, val_split: float, seed: int):
    """Hold out a stratified validation part of the training set."""
    from ..data import stratified_split

    x, y = ds.x_train, ds.y_train
    n_val = int(round(val_split * len(y)))
    if n_val == 0:
        return x, y, None, None
    train_idx, val_idx = stratified_split(y, n_test=n_val, seed=seed)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _transforms(config: dict, x_train, input_shape):
    """Training transform (augmentation, then standardisation) and the evaluation one (standardisation)."""
    from ..data import transforms as T

    h, w, c = input_shape
    standardize = T.Standardize().fit(x_train)
    augs = [] if config["augment"] == "none" else config["augment"].split(",")
    steps = []
    if "crop" in augs:
        steps.append(T.RandomCrop((h, w), padding=config["crop_padding"]))
    if "flip" in augs:
        steps.append(T.RandomHorizontalFlip(0.5))
    if "pca" in augs:
        if c != 3:
            raise CommandError(f"--augment pca (AlexNet lighting) needs RGB images; these have {c} channel(s).")
        steps.append(T.PCALighting(0.1).fit(x_train))
    return T.Compose(steps + [standardize]), standardize


def _optimizer(config: dict, params):
    from .. import optim

    name, lr, wd = config["optimizer"], config["lr"], config["weight_decay"]
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=config["momentum"], weight_decay=wd,
                         nesterov=config["momentum"] > 0)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    return optim.AdamW(params, lr=lr, weight_decay=wd)


def _schedule(config: dict, opt):
    from .. import optim

    epochs, warmup = config["epochs"], config["warmup"]
    name = config["schedule"]
    if name == "plateau":
        if warmup:
            raise CommandError("--warmup does not combine with --schedule plateau; use --warmup 0.")
        return optim.ReduceLROnPlateau(opt, monitor="val_loss", factor=0.1, patience=3, cooldown=1)
    main_epochs = max(1, epochs - warmup)
    if name == "cosine":
        sched = optim.CosineAnnealingLR(opt, t_max=main_epochs)
    elif name == "step":
        sched = optim.MultiStepLR(opt, milestones=sorted({max(1, main_epochs // 2), max(2, 3 * main_epochs // 4)}))
    else:
        sched = optim.ConstantLR(opt)
    return optim.LinearWarmup(sched, warmup_epochs=warmup) if warmup else sched


# ------------------------------------------------------------------------------------------------ run
def run(args) -> int:
    if not args.distributed:
        return _run(args)
    try:
        return _run(args)
    except CommandError as e:
        from ..distributed import comm as dist_comm
        comm = dist_comm._comm
        if comm is None or comm.size == 1:
            raise
        # one rank returning while the others wait in an allreduce would hang the job: end all of them
        print(f"striate train: error (rank {comm.rank} of {comm.size}): {e}", file=sys.stderr, flush=True)
        comm.abort(2)


def _init_distributed(config: dict):
    """The communicator of ``--distributed``, once the global batch is known to split evenly."""
    from .. import distributed as dist
    try:
        comm = dist.init()
    except ImportError as e:
        raise CommandError(f"--distributed: {e}") from None
    if config["batch_size"] % comm.size:
        raise CommandError(f"--batch-size (the global batch) must be a multiple of the {comm.size} processes. "
                           f"Received: {config['batch_size']}.")
    return comm


def _distribute(model, opt, train, val, callbacks, comm):
    """The data-parallel run: batch norm over the global batch, gradients averaged over the ranks,
    each rank's shares of the data, files from rank 0 only, each rank its own dropout masks."""
    from .. import distributed as dist
    model = dist.convert_sync_batchnorm(model)
    opt = dist.DistributedOptimizer(opt)  # before the schedule, which must be made on it
    train = dist.shard(train)             # batch_size / size images per step
    val = None if val is None else dist.shard(val, evaluation=True)
    callbacks = (callbacks if comm.rank == 0 else []) + [dist.RankRandomStreams()]
    return model, opt, train, val, callbacks


def _metrics(result, history, model, ds, config, started, train_seconds, comm) -> dict:
    """What metrics.json records of a finished run."""
    h = history.history
    return {
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "test_top5_accuracy": result.get("top5_accuracy"),
        "epochs": len(history.epoch),
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "model": config["model"],
        "dataset": config["dataset"],
        "params": model.num_parameters(),
        "final_train_loss": h["loss"][-1] if h.get("loss") else None,
        "final_train_accuracy": h["acc"][-1] if h.get("acc") else None,
        "best_val_accuracy": max(h["val_acc"]) if h.get("val_acc") else None,
        "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                               for n, a in zip(ds.class_names, result["per_class_accuracy"])},
        "confusion_matrix": result["confusion_matrix"].tolist(),
        "config": config,
        "processes": 1 if comm is None else comm.size,
    }


def _run(args) -> int:
    from .. import __version__, random
    from .. import distributed as dist  # (mpi4py is imported only by dist.init, under mpiexec)
    from ..data import DataLoader
    from ..training import CheckpointError, CSVLogger, ModelCheckpoint, evaluate, fit, save_weights

    started = time.perf_counter()
    config = _resolve(args)
    comm = _init_distributed(config) if args.distributed else None
    main = comm is None or comm.rank == 0  # the one process that prints and writes files
    verbose = 0 if args.quiet or not main else 1
    ds = load_data(config["dataset"], args.data_dir)
    name = os.path.basename(os.path.normpath(ds.name)) or "data"
    out = args.out or os.path.join("runs", f"{name}-{config['model']}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} exists and is not a folder.")

    random.manual_seed(config["seed"])
    x_tr, y_tr, x_val, y_val = _split(ds, config["val_split"], config["seed"])
    train_t, eval_t = _transforms(config, x_tr, ds.input_shape)
    model_args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
    model = build_model(config["model"], model_args, rng=config["seed"])
    opt = _optimizer(config, model.parameters())

    train = DataLoader(x_tr, y_tr, batch_size=config["batch_size"], shuffle=True, transform=train_t,
                       rng=config["seed"] + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=eval_t)
    meta = {
        "model": {"name": config["model"], "args": model_args},
        "dataset": config["dataset"], "class_names": list(ds.class_names), "input_shape": list(ds.input_shape),
        "preprocess": {"scale": 1 / 255, "mean": eval_t.mean.tolist(), "std": eval_t.std.tolist(), "eps": eval_t.eps},
        "config": config, "striate_version": __version__,
    }
    callbacks = [ModelCheckpoint(os.path.join(out, "checkpoint.npz"), meta=meta)]
    if val is not None:
        callbacks.append(ModelCheckpoint(os.path.join(out, "checkpoint_best.npz"), monitor="val_acc",
                                         save_best_only=True, meta=meta))
    callbacks.append(CSVLogger(os.path.join(out, "log.csv")))
    if comm is not None:
        model, opt, train, val, callbacks = _distribute(model, opt, train, val, callbacks, comm)
    schedule = _schedule(config, opt)

    if verbose:
        print(f"training {config['model']} ({model.num_parameters():,} parameters) on {name}: "
              f"{len(y_tr)} train / {0 if y_val is None else len(y_val)} val / {len(ds.y_test)} test images, "
              f"{config['epochs']} epochs, {config['optimizer']} lr {config['lr']:g}, batch {config['batch_size']}, "
              f"{config['schedule']} schedule, augment {config['augment']}"
              + (f", {comm.size} processes x {config['batch_size'] // comm.size}" if comm else ""))
    try:
        history = fit(model, train, val, epochs=config["epochs"], optimizer=opt, schedule=schedule,
                      callbacks=callbacks, verbose=verbose, resume=args.resume,
                      reduce=None if comm is None else dist.reduce_metrics)
    except CheckpointError as e:
        raise CommandError(str(e)) from None
    except FloatingPointError as e:
        raise CommandError(str(e).replace("fit: ", "") + " (--lr)") from None
    train_seconds = time.perf_counter() - started

    test = DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=eval_t)
    result = evaluate(model, test) if comm is None else dist.evaluate(model, test)
    if not main:
        return 0
    save_weights(os.path.join(out, "weights.npz"), model, meta=meta)
    metrics = _metrics(result, history, model, ds, config, started, train_seconds, comm)
    from ..atomic import atomic_write_text
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    print(f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
          f"({len(history.epoch)} epochs, {metrics['seconds']:.0f}s)  ->  {out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    if getattr(args, "report", False):
        from .report_cmd import write_report
        print(f"report -> {write_report(out, data_dir=args.data_dir)}")
    return 0
