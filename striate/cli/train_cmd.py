"""``striate train``: train a model on a data set with a good default recipe, write the run's files."""
from __future__ import annotations

import argparse
import os
import sys
import time

from ..training import recipe
from .common import AUGMENTATIONS, build_model, load_data, one_line
from .main import CommandError
from .train_config import (add_data_model_options, apply_config_file, check_run_dir, dense_request, load_resume,
                           open_run_dir, resolve_config)

EPILOG = """\
examples:
  striate train                                   # 8x8 digits (ships with scikit-learn), digits_cnn, < 1 min
  striate train --epochs 3 --out runs/quick       # a shorter run into runs/quick
  striate train --dataset mnist                   # mnist_cnn on MNIST (downloaded once, SHA-256 checked)
  striate train --data-dir PATH                   # your own copy: the files (SHA-256) say they are MNIST
  striate train --dataset mnist --model lenet5 --lr 0.02 --optimizer sgd --augment none
  striate train --dataset cifar10 --model resnet20 --augment crop,flip
  striate train --dataset path/to/folder          # one sub-folder of images per class
  striate train --resume runs/digits-digits_cnn/checkpoint.npz --epochs 30   # continue a run
  striate train --config runs/tune/best.toml --epochs 30   # options from a file (here striate tune's best)
  mpiexec -n 4 striate train --dataset mnist --distributed   # 4 processes
  striate train --dataset digits_localisation     # one digit anywhere on 56x56: its digit and box (localizer)
  striate train --dataset digits_anywhere         # 1-4 digits anywhere on 64x64: boxes (centernet)
  striate train --dataset digits_anywhere --task segmentation   # the same canvases, per-pixel classes (fcn)
  striate train --data-dir PATH                   # a COCO, YOLO or mask folder: the layout says the task

Every option left out comes from the data set's recipe (for boxes and masks, the task's):
{recipes}

The output folder receives weights.npz, checkpoint.npz (last epoch), checkpoint_best.npz (best val_acc),
log.csv (one row per epoch) and metrics.json (test_accuracy, test_loss, epochs, seconds, ...).
A folder holding another run is never written into: choose another --out, or --overwrite to replace
it (every file of the old run goes, report.html included). One run at a time writes into a folder.
Then: striate evaluate --checkpoint OUT/weights.npz;  striate predict IMAGE --checkpoint OUT/weights.npz

Resuming: --resume DIR/checkpoint.npz continues in DIR with the run's data set, data folder and settings.
Without --epochs (or with the run's own total) it finishes the planned run exactly as if never stopped.
With a larger --epochs N the learning-rate schedule is re-planned from where the run stopped: cosine
decays from the current rate to zero at epoch N (a finished run goes on from its last rate), step
divides it by 10 at 50% and 75% of the remaining epochs, none keeps it; no restart at the initial rate.
"""


def recipe_help() -> str:
    """The recipes as the lines of a table, for ``striate train --help``."""
    from .common import RECIPES

    rows = [("data set", "model", "epochs", "batch", "optimizer", "lr", "decay", "schedule", "warm-up", "augment")]
    for name, r in RECIPES.items():
        rows.append((name, r["model"], r["epochs"], r["batch_size"], r["optimizer"], r["lr"], r["weight_decay"],
                     r["schedule"], r["warmup"],
                     r["augment"] + (f" ({r['crop_padding']} px)" if "crop" in r["augment"] else "")))
        rows += [(f"  --model {m}", m, o.get("epochs", "\""), "\"", "\"", o.get("lr", "\""), "\"", "\"",
                  o.get("warmup", "\""), "\"") for m, o in r.get("models", {}).items()]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return table + "\n\n" + dense_recipe_help()


def dense_recipe_help() -> str:
    """The recipes of localisation, detection and segmentation, each with its reason."""
    from ..training.dense_run import DENSE_RECIPES, RECIPE_REASONS

    rows = [("task", "model", "epochs", "batch", "optimizer", "lr", "schedule", "warm-up", "augment")]
    for task, r in DENSE_RECIPES.items():
        rows.append((task, r["model"], r["epochs"], r["batch_size"], r["optimizer"], r["lr"], r["schedule"],
                     r["warmup"], r["augment"] + (f" ({r['crop_padding']} px)" if "translate" in r["augment"] else "")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for task, reasons in RECIPE_REASONS.items():
        lines += [f"  {task if i == 0 else '':<13} {key.replace('_size', '')}: {why}"
                  for i, (key, why) in enumerate(reasons.items())]
    return "\n".join(lines)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a CNN on a data set (default: the embedded 8x8 digits)",
        description="Train a model from the zoo on a data set with a tuned per-data-set recipe, evaluate it\n"
                    "on the test set, and write the weights, checkpoints, an epoch log and metrics.json.",
        epilog=EPILOG.format(recipes=recipe_help()), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_model_options(p)
    run = p.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", help="read options from a TOML (.toml) or YAML (.yaml) file of "
                     "option = value (e.g. lr = 0.01, batch-size = 64, the best.toml of striate tune); options "
                     "typed on the command line win over the file")
    run.add_argument("--seed", type=int, help="seed of initialisation, shuffling and augmentation (default 0)")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>-<model>; with --resume "
                     "the checkpoint's folder)")
    run.add_argument("--overwrite", action="store_true", help="replace the run files already in --out")
    run.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in this checkpoint.npz "
                     "(its data and settings are reused; --epochs sets the new total, see below)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    run.add_argument("--report", action="store_true", help="also write report.html into --out (striate report)")
    run.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files into DIR: loss, "
                     "accuracy, rate, filters, activations, weight and gradient histograms (pip install "
                     "'striate[tensorboard]'; then tensorboard --logdir DIR)")
    run.add_argument("--distributed", action="store_true",
                     help="data-parallel training over the processes of mpiexec (mpiexec -n 4 striate train "
                          "... --distributed; pip install 'striate[mpi]'): --batch-size stays the global batch, "
                          "split over the ranks; rank 0 writes the files")
    p.set_defaults(command="train")
    return p


# -------------------------------------------------------------------------------------------- the folder
# ---------------------------------------------------------------------------------------------- pieces
def _lib(fn, *args):
    """A library call whose ValueErrors (worded with the options) become one-line CommandErrors."""
    try:
        return fn(*args)
    except ValueError as e:
        raise CommandError(one_line(e)) from None


def _optimizer(config: dict, params):
    from ..optim import build_optimizer
    return build_optimizer(config["optimizer"], params, config["lr"], config["momentum"], config["weight_decay"])


def _schedule(config: dict, opt):
    from ..optim import build_schedule
    return build_schedule(config["schedule"], opt, config["epochs"], config["warmup"], config.get("replan"))


# ------------------------------------------------------------------------------------------------ run
def own_parser() -> argparse.ArgumentParser:
    """A parser holding only ``striate train``'s options (what a --config file may set)."""
    from .main import command_parser

    return command_parser("train")


def run(args) -> int:
    apply_config_file(args, own_parser())
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
    from ..training.run_dir import default_folder

    model = "layers" if " " in config["model"] else config["model"]  # a layer list makes no folder name
    return args.out or default_folder("train", config["dataset"], model, resume=args.resume)


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


def _callbacks(run_dir, meta: dict, with_best: bool) -> list:
    """The run's files: checkpoint.npz every epoch, checkpoint_best.npz (best val_acc), log.csv."""
    from ..training import CSVLogger, ModelCheckpoint
    callbacks = [ModelCheckpoint(run_dir.checkpoint, meta=meta)]
    if with_best:
        callbacks.append(ModelCheckpoint(run_dir.best, monitor="val_acc", save_best_only=True, meta=meta))
    callbacks.append(CSVLogger(run_dir.log))
    return callbacks


def _write_report(out: str, data_dir) -> str:
    from ..training import CheckpointError
    from ..vis.run_report import write_run_report

    try:
        return write_run_report(out, data_dir=data_dir)
    except (ValueError, ImportError, CheckpointError) as e:
        raise CommandError(one_line(e)) from None


def _tensorboard(log_dir: str):
    """The TensorBoard callback of --tensorboard, with its errors (a second writer, no tensorboardX) as one line."""
    from ..training import TensorBoard
    try:
        return TensorBoard(log_dir)
    except (ValueError, TypeError, ImportError) as e:
        raise CommandError(f"--tensorboard: {one_line(e).replace('TensorBoard: ', '')}") from None
    except OSError as e:
        raise CommandError(f"--tensorboard {log_dir!r}: {e.strerror or one_line(e)}.") from None


def _run(args) -> int:
    import uuid

    started = time.perf_counter()
    ckpt = load_resume(args.resume) if args.resume else None
    request = dense_request(args, ckpt)
    if request is not None:
        from .dense_cmds import train_dense_run
        return train_dense_run(args, request, ckpt, started)
    config = resolve_config(args, ckpt)
    comm = _init_distributed(config) if args.distributed else None
    main = comm is None or comm.rank == 0  # the one process that prints and writes files
    if ckpt is not None:
        plan = _lib(recipe.continue_plan, config, ckpt)
        if plan:
            config["replan"] = plan
    run_id = (ckpt.meta.get("run_id") if ckpt is not None else None) or uuid.uuid4().hex
    out = _out_folder(args, config)
    run_dir = check_run_dir(out, args, run_id, main)
    ds = load_data(config["dataset"], config["data_dir"], verify=config["verify"])
    _lib(recipe.check_fits_data, config, ds.input_shape)
    if main:
        open_run_dir(run_dir, args, run_id)
    try:
        return _train(args, config, ckpt, comm, main, run_id, run_dir, ds, started)
    finally:
        run_dir.close()


def _train(args, config, ckpt, comm, main, run_id, run_dir, ds, started) -> int:
    """The run proper, in its locked folder."""
    from .. import random
    from .. import distributed as dist  # (mpi4py is imported only by dist.init, under mpiexec)
    from ..data import DataLoader, validation_split
    from ..training import CheckpointError, evaluate, fit, save_weights

    out = run_dir.path
    random.manual_seed(config["seed"])
    x_tr, y_tr, x_val, y_val = validation_split(ds, config["val_split"], config["seed"])
    train_t, eval_t = _lib(recipe.build_transforms, config, x_tr, ds.input_shape)
    model_args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
    if ckpt is not None:
        _check_resumed_model(ckpt, model_args, args.resume)
    model = build_model(config["model"], model_args, rng=config["seed"])
    opt = _optimizer(config, model.parameters())
    train = DataLoader(x_tr, y_tr, batch_size=config["batch_size"], shuffle=True, transform=train_t,
                       rng=config["seed"] + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=eval_t)
    meta = recipe.run_meta(config, model_args, run_id, ds, eval_t)
    callbacks = _callbacks(run_dir, meta, with_best=val is not None)
    if getattr(args, "tensorboard", None) and main:
        callbacks.append(_tensorboard(args.tensorboard))
    callbacks += list(getattr(args, "callbacks", None) or [])  # e.g. striate tune's pruning of weak trials
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
        save_weights(run_dir.weights, model, meta=meta)
        metrics = recipe.run_metrics(result, history, model, ds, config, started, train_seconds,
                                     1 if comm is None else comm.size)
        run_dir.write_metrics(metrics)
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
                           f"{run_dir.checkpoint}.") from None
    print(f"test accuracy {100 * result['accuracy']:.2f}%  test loss {result['loss']:.4f}  "
          f"({len(history.epoch)} epochs, {metrics['seconds']:.0f}s)  ->  {out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    if getattr(args, "report", False):
        print(f"report -> {_write_report(out, config['data_dir'])}")
    return 0
