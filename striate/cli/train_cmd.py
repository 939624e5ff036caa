"""``striate train``: train a model on a data set with a good default recipe, write the run's files."""
from __future__ import annotations

import argparse
import sys
import time

from .common import one_line, one_line_warnings
from .main import CommandError
from .train_config import add_data_model_options, apply_config_file, dense_request, load_resume, settings_of

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
    from ..training.recipe import RECIPES

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


def _run(args) -> int:
    from ..training import TrainingFailed, train_run

    started = time.perf_counter()
    ckpt = load_resume(args.resume) if args.resume else None
    request = dense_request(args, ckpt)
    if request is not None:
        from .dense_cmds import train_dense_run
        return train_dense_run(args, request, ckpt, started)
    strategy = None
    if args.distributed:
        from ..distributed import DataParallel
        strategy = DataParallel()
    try:
        with one_line_warnings():
            result = train_run(settings_of(args), out=args.out, resume=ckpt, overwrite=args.overwrite,
                               tensorboard=args.tensorboard, strategy=strategy, verbose=0 if args.quiet else 1)
    except (ValueError, ImportError, TrainingFailed) as e:
        raise CommandError(one_line(e)) from None
    if result.metrics is None:   # a data-parallel run's other processes: rank 0 prints
        return 0
    m = result.metrics
    print(f"test accuracy {100 * m['test_accuracy']:.2f}%  test loss {m['test_loss']:.4f}  "
          f"({m['epochs']} epochs, {m['seconds']:.0f}s)  ->  {result.out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    if getattr(args, "report", False):
        print(f"report -> {_write_report(result.out, result.config['data_dir'])}")
    return 0


def _write_report(out: str, data_dir) -> str:
    from ..training import CheckpointError
    from ..vis.run_report import write_run_report

    try:
        return write_run_report(out, data_dir=data_dir)
    except (ValueError, ImportError, CheckpointError) as e:
        raise CommandError(one_line(e)) from None
