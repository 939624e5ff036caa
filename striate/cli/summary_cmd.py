"""``striate summary MODEL``: the per-layer table of an architecture of the zoo."""
from __future__ import annotations

import argparse

from .main import CommandError
from ._shapes import parse_size

EPILOG = """examples:
  striate summary lenet5
  striate summary alexnet --input 224x224x3
  striate summary resnet50 --stride-in-1x1          # the original (v1) bottleneck
  striate summary resnet20 --num-classes 100
  striate summary vgg16 --input 64x64               # channels default to the model's (3)
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "summary", help="per-layer table: output shapes, parameters, MACs, memory, receptive fields",
        description="Build MODEL (see `striate models`) and print one row per layer: output shape, parameters, "
                    "multiply-accumulates, activation memory, receptive field and jump; then totals and the "
                    "share of parameters and memory per layer type.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="architecture name, e.g. lenet5, alexnet, resnet50")
    p.add_argument("--input", metavar="HxWxC", default=None,
                   help="input size, e.g. 224x224x3 or 64x64 (default: the model's native size)")
    p.add_argument("--num-classes", type=int, default=None, metavar="N", help="outputs of the last layer")
    p.add_argument("--stride-in-1x1", action="store_true",
                   help="bottleneck ResNets: stride in the first 1x1 conv (original v1) instead of the 3x3 (v1.5)")
    p.set_defaults(command="summary")
    return p


def run(args) -> int:
    from .. import models
    from ..summary import summary

    try:
        info = models.info(args.model)
    except ValueError as e:
        raise CommandError(str(e)) from None
    kwargs = {}
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise CommandError(f"--num-classes must be >= 1. Received: {args.num_classes}.")
        kwargs["num_classes"] = args.num_classes
    if args.stride_in_1x1:
        kwargs["stride_in_1x1"] = True
    shape = info.input_shape
    if args.input is not None:
        try:
            size = parse_size(args.input, "--input")
        except ValueError as e:
            raise CommandError(str(e)) from None
        if len(size) == 1:
            size = (size[0], size[0])
        if min(size) < 1:
            raise CommandError(f"--input sizes must be >= 1. Received: {args.input!r}.")
        shape = size + info.input_shape[2:] if len(size) == 2 else size
        kwargs["input_shape"] = shape
    try:
        model = info.builder(**kwargs)
        print(summary(model, shape, name=args.model))
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    return 0
