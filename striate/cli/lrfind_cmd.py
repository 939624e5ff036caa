"""``striate lr-find``: the learning-rate range test on the model, data and recipe of ``striate train``."""
from __future__ import annotations

import argparse
import math
import os

from .common import AUGMENTATIONS, load_data, one_line
from .main import CommandError

EPILOG = """\
examples:
  striate lr-find                                  # digits_cnn on the embedded 8x8 digits, its recipe's SGD
  striate lr-find --dataset mnist --data-dir DIR --model lenet5 --out lenet_lr.png
  striate lr-find --optimizer adam --start-lr 1e-5 --end-lr 1 --steps 150

The rate grows exponentially from --start-lr to --end-lr over --steps training steps on a copy of the
model (Smith 2017); the test stops early once the smoothed loss exceeds 4x its minimum. The suggestion
is the rate where the smoothed loss falls fastest (--rule steepest) or a tenth of the rate at its
minimum (--rule min/10). Then: striate train --lr SUGGESTION (with the same options).
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "lr-find", help="learning-rate range test: loss against rate, and a suggested rate",
        description="Train a copy of the model for a few steps while the learning rate grows exponentially,\n"
                    "plot the loss against the rate (PNG) and suggest a rate. Model, data and optimiser are\n"
                    "those `striate train` would use with the same options.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data (as striate train)")
    data.add_argument("--dataset", metavar="NAME|DIR",
                      help="digits (default, offline), mnist, fashion_mnist, cifar10, or an image folder")
    data.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (no download)")
    data.add_argument("--no-verify", action="store_true", help="accept --data-dir files that are not the published ones")
    data.add_argument("--val-split", type=float, metavar="F", help="fraction held out (not used by the test)")
    data.add_argument("--augment", metavar="LIST", help=f"comma-separated: {', '.join(AUGMENTATIONS)}")
    data.add_argument("--crop-padding", type=int, metavar="PX", help="padding of the random crop, in pixels")
    model = p.add_argument_group("model and optimiser (as striate train)")
    model.add_argument("--model", metavar="NAME", help="architecture (striate models lists them)")
    model.add_argument("--batch-size", type=int, metavar="N", help="images per step")
    model.add_argument("--optimizer", metavar="NAME", help="sgd (momentum, Nesterov), adam or adamw")
    model.add_argument("--momentum", type=float, metavar="MU", help="SGD momentum in [0, 1)")
    model.add_argument("--weight-decay", type=float, metavar="L2", help="L2 weight decay")
    model.add_argument("--seed", type=int, help="seed of initialisation and shuffling (default 0)")
    test = p.add_argument_group("the range test")
    test.add_argument("--start-lr", type=float, default=1e-6, metavar="RATE", help="first rate (default 1e-6)")
    test.add_argument("--end-lr", type=float, default=10.0, metavar="RATE", help="last rate (default 10)")
    test.add_argument("--steps", type=int, default=100, metavar="N", help="training steps at most (default 100)")
    test.add_argument("--rule", choices=("steepest", "min/10"), default="steepest",
                      help="how the rate is suggested (default steepest)")
    test.add_argument("--out", default="lr_find.png", metavar="FILE.png", help="the plot (default lr_find.png)")
    test.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(command="lr-find", epochs=None, lr=None, schedule=None, warmup=None, resume=None)
    return p


def _check(args) -> None:
    for option, value in (("--start-lr", args.start_lr), ("--end-lr", args.end_lr)):
        if not (math.isfinite(value) and value > 0):
            raise CommandError(f"{option} must be a positive number. Received: {option} {value:g}.")
    if args.end_lr <= args.start_lr:
        raise CommandError(f"the rate range is empty or reversed: --end-lr must be larger than --start-lr. Received: "
                           f"--start-lr {args.start_lr:g} --end-lr {args.end_lr:g}.")
    if args.steps < 3:
        raise CommandError(f"--steps must be at least 3 (a slope needs three points). Received: --steps {args.steps}.")
    if os.path.splitext(args.out)[1].lower() != ".png":
        raise CommandError(f"--out must name a .png file. Received: --out {args.out!r}.")
    if os.path.exists(args.out) and not args.overwrite:
        raise CommandError(f"--out {args.out!r} exists; choose another file, or add --overwrite to replace it.")
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise CommandError(f"--out {args.out!r}: the folder {parent!r} does not exist.")


def run(args) -> int:
    from ..training import lr_find, recipe
    from ..vis import save_lr_find_plot
    # the model, data and optimiser exactly as `striate train` makes them
    from .train_config import resolve_config

    _check(args)
    config = resolve_config(args)
    ds = load_data(config["dataset"], config["data_dir"], verify=config["verify"])
    try:
        recipe.check_fits_data(config, ds.input_shape)
        pieces = recipe.build_run(config, ds)
    except ValueError as e:
        raise CommandError(one_line(e)) from None
    model, opt, train = pieces.model, pieces.optimizer, pieces.train
    name = os.path.basename(os.path.normpath(config["dataset"])) or "data"
    print(f"{config['model']} on {name}: {config['optimizer']} (momentum {config['momentum']:g}, weight decay "
          f"{config['weight_decay']:g}), batch {config['batch_size']}, rates {args.start_lr:g} .. {args.end_lr:g} "
          f"over {args.steps} steps")
    try:
        result = lr_find(model, train, optimizer=opt, start_lr=args.start_lr, end_lr=args.end_lr,
                         num_steps=args.steps, rule=args.rule)
    except (ValueError, FloatingPointError) as e:
        raise CommandError(one_line(e).replace("lr_find: ", "")) from None
    except MemoryError:
        raise CommandError(f"out of memory with --batch-size {config['batch_size']}: lower it.") from None
    try:
        save_lr_find_plot(result, args.out, title=f"{config['model']} on {name}, {config['optimizer']}")
    except ImportError as e:
        raise CommandError(one_line(e)) from None
    except OSError as e:
        raise CommandError(f"could not write --out {args.out!r}: {e.strerror or one_line(e)}.") from None
    stop = "the loss diverged" if result.diverged else "the range ended"
    print(f"{len(result.rates)} steps ({stop} at {result.rates[-1]:.3g})")
    print(result.describe())
    print(f"the recipe's rate is {config['lr']:g}; plot -> {args.out}")
    return 0
