"""``striate train``: train a model on a data set with a good default recipe, write the run's files."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from .common import (AUGMENTATIONS, build_model, check_seed, dataset_from_files, dataset_key, load_data,
                     match_name, one_line, recipe_for, resolve_model)
from .main import CommandError

EPILOG = """\
examples:
  striate train                                   # 8x8 digits (ships with scikit-learn), digits_cnn, < 1 min
  striate train --epochs 3 --out runs/quick       # a shorter run into runs/quick
  striate train --dataset mnist --data-dir ../shared/data/mnist # mnist_cnn on MNIST (local files)
  striate train --data-dir ../shared/data/mnist   # the same: the files (SHA-256) say they are MNIST
  striate train --dataset mnist --model lenet5 --lr 0.02 --optimizer sgd --augment none
  striate train --dataset cifar10 --model resnet20 --augment crop,flip
  striate train --dataset path/to/folder          # one sub-folder of images per class
  striate train --resume runs/digits-digits_cnn/checkpoint.npz --epochs 30   # continue a run
  mpiexec -n 4 striate train --dataset mnist --data-dir ../shared/data/mnist --distributed   # 4 processes

Every option left out comes from the data set's recipe (see striate/cli/common.py: RECIPES).
The output folder receives weights.npz, checkpoint.npz (last epoch), checkpoint_best.npz (best val_acc),
log.csv (one row per epoch) and metrics.json (test_accuracy, test_loss, epochs, seconds, ...).
A folder holding another run is never written into: choose another --out, or --overwrite to replace it.
Then: striate evaluate --checkpoint OUT/weights.npz;  striate predict IMAGE --checkpoint OUT/weights.npz

Resuming: --resume DIR/checkpoint.npz continues in DIR with the run's data set, data folder and settings.
Without --epochs (or with the run's own total) it finishes the planned run exactly as if never stopped.
With a larger --epochs N the learning-rate schedule is re-planned from where the run stopped: cosine
decays from the current rate to zero at epoch N (a finished run goes on from its last rate), step
divides it by 10 at 50% and 75% of the remaining epochs, none keeps it; no restart at the initial rate.
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
    data.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (no download); "
                      "without --dataset the files say which data set it is")
    data.add_argument("--no-verify", action="store_true", help="accept --data-dir files that are not the "
                      "published ones (SHA-256), e.g. your own re-packaged copy")
    data.add_argument("--val-split", type=float, metavar="F", help="fraction of the training set held out for "
                      "validation, in [0, 1) (recipe: 0.05-0.1)")
    data.add_argument("--augment", metavar="LIST", help=f"comma-separated: {', '.join(AUGMENTATIONS)} "
                      "(crop = padded random crop, flip = horizontal mirror, pca = AlexNet colour lighting)")
    data.add_argument("--crop-padding", type=int, metavar="PX", help="padding of the random crop, in pixels")
    model = p.add_argument_group("model and optimisation")
    model.add_argument("--model", metavar="NAME", help="architecture (striate models lists them)")
    model.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    model.add_argument("--batch-size", type=int, metavar="N", help="images per step")
    model.add_argument("--optimizer", metavar="NAME", help="sgd (momentum, Nesterov), adam or adamw")
    model.add_argument("--lr", type=float, metavar="RATE", help="initial learning rate")
    model.add_argument("--momentum", type=float, metavar="MU", help="SGD momentum in [0, 1)")
    model.add_argument("--weight-decay", type=float, metavar="L2", help="L2 weight decay (decoupled for adamw)")
    model.add_argument("--schedule", metavar="NAME",
                       help="learning-rate schedule: cosine annealing, /10 at 50%% and 75%% of the epochs, "
                            "/10 on a val_loss plateau, or constant")
    model.add_argument("--warmup", type=int, metavar="N", help="epochs of linear learning-rate warm-up")
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, help="seed of initialisation, shuffling and augmentation (default 0)")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>-<model>; with --resume "
                     "the checkpoint's folder)")
    run.add_argument("--overwrite", action="store_true", help="replace the run files already in --out")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint.npz "
                     "(its data and settings are reused; --epochs sets the new total, see below)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    run.add_argument("--report", action="store_true", help="also write report.html into --out (striate report)")
    run.add_argument("--distributed", action="store_true",
                     help="data-parallel training over the processes of mpiexec (mpiexec -n 4 striate train "
                          "... --distributed; pip install 'striate[mpi]'): --batch-size stays the global batch, "
                          "split over the ranks; rank 0 writes the files")
    p.set_defaults(command="train")
    return p


# --------------------------------------------------------------------------------------------- config
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "plateau", "none")
# settings a resumed run cannot change: the weights, the optimiser state and the data would not fit
FIXED_ON_RESUME = ("dataset", "model", "optimizer")


def _load_resume(path):
    from ..training import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise CommandError(one_line(e)) from None
    if ckpt.kind != "checkpoint":
        raise CommandError(f"{path} is a weights file; --resume needs the checkpoint.npz of a run.")
    return ckpt


def _resolve(args, ckpt=None) -> dict:
    """The run's settings: explicit options > the resumed run's saved settings > the data set's recipe."""
    saved = dict((ckpt.meta.get("config") or {}) if ckpt is not None else {})
    given = {k: getattr(args, k) for k in TUNABLE if getattr(args, k) is not None}
    if "model" in given:
        given["model"] = resolve_model(given["model"])
    if "optimizer" in given:
        given["optimizer"] = match_name(given["optimizer"], OPTIMIZERS, "--optimizer")
    if "schedule" in given:
        given["schedule"] = match_name(given["schedule"], SCHEDULES, "--schedule")
    data_dir = os.path.abspath(args.data_dir) if args.data_dir is not None else None
    if args.dataset is not None:
        dataset = dataset_key(args.dataset)
    elif ckpt is not None and saved.get("dataset"):
        dataset = saved["dataset"]
    elif data_dir is not None:
        dataset = dataset_from_files(data_dir)  # a folder of MNIST files must not train the digits
    else:
        dataset = "digits"
    if ckpt is not None:
        mine = dict(given, dataset=dataset)
        for key in FIXED_ON_RESUME:
            if key in saved and key in mine and mine[key] != saved[key]:
                option = "--" + key.replace("_", "-")
                raise CommandError(f"{option} {mine[key]} differs from the run being resumed ({saved[key]}, in "
                                   f"{args.resume}); a run continues with its own {key}. Drop {option}, or start a "
                                   "new run without --resume.")
        if data_dir is None:
            data_dir = saved.get("data_dir")
    config = recipe_for(dataset)
    per_model = config.pop("models", {})
    config.update({k: v for k, v in saved.items() if k in TUNABLE})
    config.update(given)
    chosen = config["model"] = resolve_model(config["model"])
    for k, v in per_model.get(chosen, {}).items():  # e.g. --model lenet5 on MNIST: its own rate
        if k not in given and k not in saved:
            config[k] = v
    if "warmup" not in given and "warmup" not in saved and config["warmup"] >= config["epochs"]:
        config["warmup"] = config["epochs"] - 1  # the recipe's warm-up shortened for a short run (not an error)
    config["dataset"] = dataset
    config["data_dir"] = data_dir
    config["verify"] = not args.no_verify if (args.no_verify or ckpt is None) else saved.get("verify", True)
    config["seed"] = check_seed(args.seed) if args.seed is not None else int(saved.get("seed", 0))
    if ckpt is not None and saved.get("replan"):
        config["replan"] = saved["replan"]
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
    need(math.isfinite(c["weight_decay"]) and c["weight_decay"] >= 0,
         f"--weight-decay must be >= 0. Received: {c['weight_decay']}.")
    need(0 <= c["val_split"] < 1, f"--val-split must lie in [0, 1). Received: {c['val_split']}.")
    need(c["warmup"] >= 0, f"--warmup must be >= 0 epochs. Received: {c['warmup']}.")
    need(c["warmup"] == 0 or c["warmup"] < c["epochs"],
         f"--warmup must be shorter than the run (--epochs {c['epochs']}), or the rate never leaves the warm-up. "
         f"Received: --warmup {c['warmup']}.")
    need(c["crop_padding"] >= 0, f"--crop-padding must be >= 0 pixels. Received: {c['crop_padding']}.")
    need(c["schedule"] != "plateau" or c["val_split"] > 0, "--schedule plateau watches val_loss: give --val-split > 0.")
    need(c["schedule"] != "plateau" or c["warmup"] == 0, "--warmup does not combine with --schedule plateau; use "
                                                           "--warmup 0.")
    augs = [a.strip() for a in str(c["augment"]).split(",") if a.strip()]
    augs = [match_name(a, AUGMENTATIONS, "--augment") for a in augs]
    c["augment"] = ",".join(a for a in augs if a != "none") or "none"
    c["model"] = resolve_model(c["model"])


def _check_fits_data(c: dict, input_shape) -> None:
    """Settings that need the images' size: the crop padding."""
    h, w = input_shape[:2]
    if "crop" in c["augment"] and c["crop_padding"] >= min(h, w):
        raise CommandError(f"--crop-padding {c['crop_padding']} is as large as the {h}x{w} images: the crops would "
                           f"be mostly padding. Use at most {max(1, min(h, w) // 8)} (about 1/8 of the image).")


# -------------------------------------------------------------------------------------------- the folder
RUN_FILES = ("weights.npz", "checkpoint.npz", "checkpoint_best.npz", "log.csv", "metrics.json")


def _same_run(folder: str, run_id) -> bool:
    """Whether the run files in ``folder`` belong to the run ``run_id``."""
    from ..training import CheckpointError, load_checkpoint

    path = os.path.join(folder, "checkpoint.npz")
    if run_id is None or not os.path.isfile(path):
        return False
    try:
        return load_checkpoint(path).meta.get("run_id") == run_id
    except (CheckpointError, OSError):
        return False


def _check_out(out: str, args, run_id) -> None:
    """Check the output folder before the data are read (nothing is created yet): a folder or a path
    where one can be made, writable, and holding no other run unless --overwrite."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} exists and is not a folder; choose a folder path.")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CommandError(f"--out {out!r} lies inside {parent!r}, which is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"cannot write into --out {out!r}: {parent!r} is not writable. Choose a writable folder.")
    present = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    resuming_here = args.resume is not None and os.path.isdir(out) and (
        os.path.samefile(os.path.dirname(os.path.abspath(args.resume)), out) or _same_run(out, run_id))
    if present and not resuming_here and not args.overwrite:
        raise CommandError(f"--out {out!r} holds another run ({', '.join(present)}); a new run never writes "
                           "over it. Choose another --out, or add --overwrite to replace that run.")


def _prepare_out(out: str, args, run_id) -> None:
    """Create the output folder and prove it takes a file, before any training; with --overwrite
    remove the replaced run's files; remove temporary files a killed write left."""
    from ..atomic import remove_stale_temporaries

    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".tmp-probe-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
        os.remove(probe)
    except OSError as e:
        raise CommandError(f"cannot write into --out {out!r}: {e.strerror or one_line(e)}. Choose a writable "
                           "folder.") from None
    resuming_here = args.resume is not None and (
        os.path.samefile(os.path.dirname(os.path.abspath(args.resume)), out) or _same_run(out, run_id))
    if args.overwrite and not resuming_here:
        for f in RUN_FILES:  # nothing of the old run may stay behind (a stale checkpoint_best.npz ...)
            if os.path.exists(os.path.join(out, f)):
                os.remove(os.path.join(out, f))
    remove_stale_temporaries(out)


# -------------------------------------------------------------------------------------------- resuming
def _replan(config: dict, ckpt) -> None:
    """``--resume --epochs N`` with a new total: continue the schedule from where the run stopped.

    Stores ``config["replan"] = {"epoch": e, "lr": rate}``: from epoch ``e`` on the schedule goes from
    ``rate`` (the rate the next epoch would have had; for a finished run the last epoch's rate) to
    the end of the new total, instead of jumping back to a rate of the old plan.
    """
    saved_total = int((ckpt.meta.get("config") or {}).get("epochs", config["epochs"]))
    done = ckpt.epoch
    if config["epochs"] <= done:
        raise CommandError(f"the run in {ckpt.path} has already trained {done} epochs: give --epochs N with N > "
                           f"{done} to continue it. Received: --epochs {config['epochs']}.")
    if config["epochs"] == saved_total or config["schedule"] == "plateau":
        return  # the planned run, finished exactly as if never stopped (plateau adapts by itself)
    groups = ((ckpt.state.get("optimizer") or {}).get("param_groups") or [{}])
    next_lr = float(groups[0].get("lr", config["lr"]))
    history = (ckpt.state.get("history") or {}).get("history", {}) if isinstance(ckpt.state.get("history"), dict) else {}
    last = history.get("lr") or [next_lr]
    rate = next_lr if next_lr > 1e-3 * float(last[-1]) else float(last[-1])
    config["replan"] = {"epoch": done, "lr": rate}


# ---------------------------------------------------------------------------------------------- pieces
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


def _continued_schedule_class():
    from .. import optim

    class ContinuedLR(optim.LRSchedule):
        """The schedule of a run continued to a new total (``config["replan"]``): from epoch ``start`` at
        rate ``rate``, cosine down to zero at epoch ``total``, /10 at 50% and 75% of the remaining epochs
        ("step"), or constant ("none")."""

        def __init__(self, optimizer, kind: str, start: int, rate: float, total: int):
            self.kind, self.start, self.rate, self.total = kind, int(start), float(rate), int(total)
            super().__init__(optimizer)

        def lr_at(self, epoch, base_lr):
            e, span = max(0, epoch - self.start), max(1, self.total - self.start)
            if self.kind == "cosine":
                return self.rate * (1.0 + math.cos(math.pi * min(e, span) / span)) / 2.0
            if self.kind == "step":
                return self.rate * 0.1 ** sum(e >= m for m in (max(1, span // 2), max(2, 3 * span // 4)))
            return self.rate

    return ContinuedLR


def _schedule(config: dict, opt):
    from .. import optim

    epochs, warmup = config["epochs"], config["warmup"]
    name = config["schedule"]
    if name == "plateau":
        return optim.ReduceLROnPlateau(opt, monitor="val_loss", factor=0.1, patience=3, cooldown=1)
    if config.get("replan"):
        plan = config["replan"]
        sched = _continued_schedule_class()(opt, name, plan["epoch"], plan["lr"], epochs)
        sched.last_epoch = plan["epoch"]
        sched._apply()
        return sched
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


def _out_folder(args, config: dict) -> str:
    """--out, else the folder of the run being resumed (a run continues where it lives), else
    runs/<dataset>-<model>."""
    if args.out is not None:
        return args.out
    if args.resume:
        return os.path.dirname(os.path.abspath(args.resume))
    name = os.path.basename(os.path.normpath(config["dataset"])) or "data"
    return os.path.join("runs", f"{name}-{config['model']}")


def _check_resumed_model(ckpt, model_args: dict, path) -> None:
    saved_model = (ckpt.meta.get("model") or {}).get("args")
    if saved_model is not None and dict(saved_model) != model_args:
        raise CommandError(f"the data of this run no longer fit the checkpoint {path}: the model was "
                           f"built for {saved_model}, the data give {model_args}.")


def _announce(config, model, name, counts, comm) -> None:
    n_train, n_val, n_test = counts
    print(f"training {config['model']} ({model.num_parameters():,} parameters) on {name}: "
          f"{n_train} train / {n_val} val / {n_test} test images, "
          f"{config['epochs']} epochs, {config['optimizer']} lr {config['lr']:g}, batch {config['batch_size']}, "
          f"{config['schedule']} schedule, augment {config['augment']}"
          + (f", {comm.size} processes x {config['batch_size'] // comm.size}" if comm else ""))
    if config.get("replan"):
        plan = config["replan"]
        print(f"continuing after epoch {plan['epoch']} to {config['epochs']}: the {config['schedule']} schedule "
              f"goes on from lr {plan['lr']:.3g}")


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
        "data_dir": config["data_dir"],
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


def _meta(config, model_args, run_id, ds, eval_t) -> dict:
    """What the run's weights and checkpoints record: the model, the data (name, folder), the run's
    id (which folder holds which run), the classes and the preprocessing that predict repeats."""
    from .. import __version__
    return {
        "model": {"name": config["model"], "args": model_args},
        "dataset": config["dataset"], "data_dir": config["data_dir"], "run_id": run_id,
        "class_names": list(ds.class_names), "input_shape": list(ds.input_shape),
        "preprocess": {"scale": 1 / 255, "mean": eval_t.mean.tolist(), "std": eval_t.std.tolist(), "eps": eval_t.eps},
        "config": config, "striate_version": __version__,
    }


def _callbacks(out: str, meta: dict, with_best: bool) -> list:
    """The run's files: checkpoint.npz every epoch, checkpoint_best.npz (best val_acc), log.csv."""
    from ..training import CSVLogger, ModelCheckpoint
    callbacks = [ModelCheckpoint(os.path.join(out, "checkpoint.npz"), meta=meta)]
    if with_best:
        callbacks.append(ModelCheckpoint(os.path.join(out, "checkpoint_best.npz"), monitor="val_acc",
                                         save_best_only=True, meta=meta))
    callbacks.append(CSVLogger(os.path.join(out, "log.csv")))
    return callbacks


def _run(args) -> int:
    import uuid

    from .. import random
    from .. import distributed as dist  # (mpi4py is imported only by dist.init, under mpiexec)
    from ..atomic import atomic_write_text
    from ..data import DataLoader
    from ..training import CheckpointError, evaluate, fit, save_weights

    started = time.perf_counter()
    ckpt = _load_resume(args.resume) if args.resume else None
    config = _resolve(args, ckpt)
    comm = _init_distributed(config) if args.distributed else None
    main = comm is None or comm.rank == 0  # the one process that prints and writes files
    if ckpt is not None:
        _replan(config, ckpt)
    run_id = (ckpt.meta.get("run_id") if ckpt is not None else None) or uuid.uuid4().hex
    out = _out_folder(args, config)
    if main:
        _check_out(out, args, run_id)
    ds = load_data(config["dataset"], config["data_dir"], verify=config["verify"])
    _check_fits_data(config, ds.input_shape)
    if main:
        _prepare_out(out, args, run_id)
    random.manual_seed(config["seed"])
    x_tr, y_tr, x_val, y_val = _split(ds, config["val_split"], config["seed"])
    train_t, eval_t = _transforms(config, x_tr, ds.input_shape)
    model_args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
    if ckpt is not None:
        _check_resumed_model(ckpt, model_args, args.resume)
    model = build_model(config["model"], model_args, rng=config["seed"])
    opt = _optimizer(config, model.parameters())
    train = DataLoader(x_tr, y_tr, batch_size=config["batch_size"], shuffle=True, transform=train_t,
                       rng=config["seed"] + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=eval_t)
    meta = _meta(config, model_args, run_id, ds, eval_t)
    callbacks = _callbacks(out, meta, with_best=val is not None)
    if comm is not None:
        model, opt, train, val, callbacks = _distribute(model, opt, train, val, callbacks, comm)
    schedule = _schedule(config, opt)
    if ckpt is not None and config.get("replan") and ckpt.state.get("schedule") is not None:
        ckpt.state["schedule"] = schedule.state_dict()  # the new plan, not the old one
    if main and not args.quiet:
        name = os.path.basename(os.path.normpath(config["dataset"])) or "data"
        _announce(config, model, name, (len(y_tr), 0 if y_val is None else len(y_val), len(ds.y_test)), comm)
    try:
        history = fit(model, train, val, epochs=config["epochs"], optimizer=opt, schedule=schedule,
                      callbacks=callbacks, verbose=0 if args.quiet or not main else 1, resume=ckpt,
                      reduce=None if comm is None else dist.reduce_metrics)
        train_seconds = time.perf_counter() - started
        test = DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=eval_t)
        result = evaluate(model, test) if comm is None else dist.evaluate(model, test)
        if not main:
            return 0
        save_weights(os.path.join(out, "weights.npz"), model, meta=meta)
        metrics = _metrics(result, history, model, ds, config, started, train_seconds, comm)
        atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    except CheckpointError as e:
        raise CommandError(one_line(e)) from None
    except FloatingPointError as e:
        raise CommandError(str(e).replace("fit: ", "") + " (--lr)") from None
    except MemoryError:
        raise CommandError(f"out of memory training {config['model']} with --batch-size {config['batch_size']}: "
                           "lower --batch-size or choose a smaller --model.") from None
    except BrokenPipeError:  # the reader of the output went away (`| head`): not the disk
        raise
    except OSError as e:  # a full or vanished disk: every file there is whole (atomic writes)
        raise CommandError(f"could not write the run into {out!r}: {e.strerror or one_line(e)}. The files already "
                           "there are intact; free space (or choose another --out) and --resume "
                           f"{os.path.join(out, 'checkpoint.npz')}.") from None
    print(f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
          f"({len(history.epoch)} epochs, {metrics['seconds']:.0f}s)  ->  {out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    if getattr(args, "report", False):
        from .report_cmd import write_report
        print(f"report -> {write_report(out, data_dir=config['data_dir'])}")
    return 0
