"""``striate import model.onnx --out weights.npz``: an ONNX model as a striate weights file.

The weights file records the imported graph (its layers and ops, :class:`striate.onnx.GraphModule`)
in its meta, so ``striate finetune --base`` and ``striate export --checkpoint`` rebuild it without
the onnx package (:func:`striate.training.load_model` reads every kind of model file).
"""
from __future__ import annotations

import argparse
import os

from .common import add_overwrite_option, add_quiet_option, check_new_file, load_model_file
from .main import CommandError

EPILOG = """examples:
  striate import lenet5.onnx --out runs/imported/weights.npz
  striate import resnet18.onnx --out r18.npz --class-names imagenet_classes.txt
Supported operators: striate.onnx.IMPORTERS (Conv, BatchNormalization, MaxPool, AveragePool, LRN, Gemm,
Relu/LeakyRelu/Sigmoid/Tanh/Softmax, Add, Concat, GlobalAveragePool, Flatten, ...); the model is first
converted to opset 17. Anything else is listed in one error.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "import", help="read an ONNX model into a striate weights file",
        description="Convert an ONNX model (exported by PyTorch, striate, ...) to a striate weights.npz.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("onnx_file", metavar="MODEL.onnx", help="the ONNX file to read")
    p.add_argument("--out", required=True, metavar="PATH", help="the weights .npz to write")
    p.add_argument("--class-names", metavar="FILE", help="text file with one class name per line "
                   "(default: the names stored in the ONNX metadata, else 0..N-1)")
    add_overwrite_option(p, "replace --out if it exists (never the ONNX file itself)", legacy_force=True)
    add_quiet_option(p)
    p.set_defaults(command="import")
    return p


def run(args) -> int:
    from ..training import save_weights

    if not args.onnx_file.lower().endswith(".onnx"):
        raise CommandError(f"expected an .onnx file. Received: {args.onnx_file!r}.")
    check_new_file(args.out, args.overwrite, source=args.onnx_file)
    model, meta = load_model_file(args.onnx_file, allow_onnx=True)
    if args.class_names:
        try:
            with open(args.class_names, encoding="utf-8") as f:
                meta["class_names"] = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise CommandError(f"--class-names {args.class_names!r}: {e.strerror}.") from None
    meta["source"] = os.path.basename(args.onnx_file)
    save_weights(args.out, model, meta=meta)
    if args.quiet:
        return 0
    layers = len(model.spec["modules"])
    print(f"imported {args.onnx_file}: {len(model.spec['nodes'])} ops, {layers} layers with weights, "
          f"{model.num_parameters():,} parameters -> {args.out}")
    return 0
