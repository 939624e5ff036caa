"""``striate import model.onnx --out weights.npz``: an ONNX model as a striate weights file.

The weights file records the imported graph (its layers and ops, :class:`striate.onnx.GraphModule`)
in its meta, so ``striate finetune --base`` and ``striate export --checkpoint`` rebuild it without
the onnx package. :func:`load_base` is the loader the three model-exchange commands share.
"""
from __future__ import annotations

import argparse
import os

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
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(command="import")
    return p


def _graph_meta(model, meta: dict) -> dict:
    out = dict(meta)
    out["model"] = {"graph": model.current_spec()}
    if model.input_shape:
        out["input_shape"] = list(model.input_shape)
    return out


def load_base(path):
    """``(model, meta)`` from a ``.onnx`` file, a weights file written by ``striate import`` (an
    imported graph) or a checkpoint/weights file of a zoo model (``striate train``)."""
    if path is None:
        raise CommandError("give the model file, e.g. runs/mnist/weights.npz or model.onnx.")
    if not os.path.isfile(path):
        raise CommandError(f"no such file: {path!r}.")
    if path.lower().endswith(".onnx"):
        from .. import onnx as st_onnx
        try:
            from ..onnx.load import read_model
            model, meta = st_onnx.from_onnx(read_model(path))
        except ImportError as e:
            raise CommandError(str(e)) from None
        except ValueError as e:
            message = " ".join(str(e).split())
            raise CommandError(message if message.startswith(path) else f"{path}: {message}") from None
        except Exception as e:  # noqa: BLE001  (protobuf decode errors of a damaged file)
            raise CommandError(f"{path} is not a readable ONNX file ({type(e).__name__}).") from None
        return model, _graph_meta(model, meta)
    from .common import load_model_file
    model, meta = load_model_file(path)
    if "graph" in meta.get("model", {}):
        model.eval()
    return model, meta


def run(args) -> int:
    from ..training import save_weights

    if os.path.exists(args.out) and not args.force:
        raise CommandError(f"--out {args.out!r} exists; pass --force to overwrite it.")
    if not args.onnx_file.lower().endswith(".onnx"):
        raise CommandError(f"expected an .onnx file. Received: {args.onnx_file!r}.")
    model, meta = load_base(args.onnx_file)
    if args.class_names:
        try:
            with open(args.class_names, encoding="utf-8") as f:
                meta["class_names"] = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise CommandError(f"--class-names {args.class_names!r}: {e.strerror}.") from None
    meta["source"] = os.path.basename(args.onnx_file)
    save_weights(args.out, model, meta=meta)
    layers = len(model.spec["modules"])
    print(f"imported {args.onnx_file}: {len(model.spec['nodes'])} ops, {layers} layers with weights, "
          f"{model.num_parameters():,} parameters -> {args.out}")
    return 0
