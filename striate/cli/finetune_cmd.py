"""``striate finetune --base C --dataset D``: transfer learning in two phases.

1. The base model (a ``striate train`` run, a ``striate import`` file or an ``.onnx`` file) gets a
   new head for D's classes; everything up to ``--freeze-until`` (default: all but the head) is
   frozen, batch norm included (it runs on its running statistics), and the head trains for
   ``--head-epochs`` at ``--lr``.
2. Everything is unfrozen and trains for ``--epochs`` more, the pre-trained layers at
   ``lr / --lr-mult`` and the head at ``lr`` (discriminative fine-tuning: two parameter groups),
   with a cosine decay.

The run is one library call, :func:`striate.training.finetune_run`: the same data loading, optimiser,
loop and run folder as the train command's (weights.npz, checkpoint.npz, log.csv, metrics.json). The run
records its data set, --data-dir and class subset, so evaluate, report and visualize cut the same data.
"""
from __future__ import annotations

import argparse

from .common import one_line, one_line_warnings
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


def run(args) -> int:
    from ..training import TrainingFailed, finetune_run

    try:
        with one_line_warnings():
            result = finetune_run(args.base, args.dataset, args.out, data_dir=args.data_dir, classes=args.classes,
                                  per_class=args.per_class, val_split=args.val_split, freeze_until=args.freeze_until,
                                  train_bn=args.train_bn, head_epochs=args.head_epochs, epochs=args.epochs,
                                  lr=args.lr, lr_mult=args.lr_mult, batch_size=args.batch_size,
                                  optimizer=args.optimizer, weight_decay=args.weight_decay, seed=args.seed,
                                  overwrite=args.overwrite, verbose=0 if args.quiet else 2)
    except (ValueError, FileNotFoundError, ImportError, TrainingFailed) as e:
        raise CommandError(one_line(e)) from None
    m = result.metrics
    print(f"test accuracy {100 * m['test_accuracy']:.2f}%  test loss {m['test_loss']:.4f}  "
          f"({m['epochs']} epochs, {m['seconds']:.0f}s)  ->  {result.out}/ "
          "(weights.npz, checkpoint.npz, log.csv, metrics.json)")
    return 0
