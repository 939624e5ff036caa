"""``striate summary MODEL``: the per-layer table of an architecture of the zoo."""
from __future__ import annotations

import argparse
import os

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


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def estimate_memory(info, kwargs: dict, shape: tuple):
    """``(weights_bytes, activation_bytes)`` the summary of ``shape`` would take, extrapolated from two
    smaller square inputs: weights are ``a + b * area`` (a dense layer after a flatten grows with the
    area, convs do not), activations ``c * area``; both float32. None when no small input builds."""
    from ..summary import summary

    native = info.input_shape
    side = max(native[0], native[1])
    points = []
    for f in (0.25, 0.5, 1.0, 1.5):
        size = max(1, int(round(side * f)))
        try:
            model = info.builder(**dict(kwargs, input_shape=(size, size) + tuple(shape[2:])))
            table = summary(model, (size, size) + tuple(shape[2:]))
        except (TypeError, ValueError):
            continue  # too small for this model
        points.append((size * size, 4 * table.total_params, table.total_memory))
        if len(points) == 2:
            break
    if len(points) < 2:
        return None
    (a1, p1, m1), (a2, p2, m2) = points
    area = shape[0] * shape[1]
    slope_p, slope_m = (p2 - p1) / (a2 - a1), (m2 - m1) / (a2 - a1)
    return max(p1 + slope_p * (area - a1), p1), max(m1 + slope_m * (area - a1), m1)


def run(args) -> int:
    from .. import models
    from ..summary import summary

    from .common import resolve_model
    info = models.info(resolve_model(args.model))
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
    native_area = info.input_shape[0] * info.input_shape[1]
    if shape[0] * shape[1] > max(4 * native_area, 512 * 512):
        # A large input is first costed on small ones: building it would allocate every weight and
        # activation (vgg16 at 20000x20000 wants terabytes) before anything could be said.
        estimate, free = estimate_memory(info, {k: v for k, v in kwargs.items() if k != "input_shape"}, shape), \
            available_memory()
        if estimate is not None and free is not None and sum(estimate) > 0.5 * free:
            size = "x".join(str(d) for d in shape)
            raise CommandError(f"{args.model} at {size} would need about {_gb(sum(estimate))} of memory (weights "
                               f"{_gb(estimate[0])}, activations {_gb(estimate[1])}, extrapolated from smaller inputs); "
                               f"this machine has {_gb(free)} free. Choose a smaller --input. Received: --input {args.input}.")
    try:
        model = info.builder(**kwargs)
        print(summary(model, shape, name=args.model))
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    except MemoryError:
        raise CommandError(f"not enough memory to build {args.model} at --input {args.input}; choose a smaller "
                           "--input.") from None
    return 0
