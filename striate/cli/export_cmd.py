"""``striate export --checkpoint C --out model.onnx``: a trained model as an ONNX file."""
from __future__ import annotations

import argparse

from .common import add_overwrite_option, add_quiet_option, check_new_file, load_model_file
from .main import CommandError

EPILOG = """examples:
  striate export --checkpoint runs/mnist/weights.npz --out lenet5.onnx
  striate export --checkpoint runs/mnist/weights.npz --out lenet5_nchw.onnx --nchw-input --opset 13
The file carries the class names and the preprocessing of the run in its metadata; open it in Netron
(pip install netron; netron lenet5.onnx) or run it with onnxruntime.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="write a trained model as an ONNX file",
        description="Export the model of a striate weights or checkpoint file (or one made by `striate import`) "
                    "to ONNX, checked with onnx.checker.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", "--weights", dest="checkpoint", required=True, metavar="PATH",
                   help="weights.npz or checkpoint.npz written by striate train / finetune / import")
    p.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset version (default 17)")
    p.add_argument("--nchw-input", action="store_true",
                   help="take NCHW input (PyTorch's layout) instead of striate's NHWC: no input Transpose")
    add_overwrite_option(p, "replace --out if it exists (never the --checkpoint file itself)", legacy_force=True)
    add_quiet_option(p)
    p.set_defaults(command="export")
    return p


def run(args) -> int:
    check_new_file(args.out, args.overwrite, source=args.checkpoint)
    model, meta = load_model_file(args.checkpoint, allow_onnx=True)
    shape = meta.get("input_shape") or getattr(model, "input_shape", None)
    if not shape:
        raise CommandError(f"{args.checkpoint} does not record the input shape of its model.")
    try:
        from .. import onnx as st_onnx
        proto = st_onnx.export(model, args.out, tuple(shape), opset=args.opset, nchw_input=args.nchw_input,
                               class_names=meta.get("class_names"), preprocess=meta.get("preprocess"))
    except ImportError as e:
        raise CommandError(str(e)) from None
    except ValueError as e:
        raise CommandError(" ".join(str(e).split())) from None
    if args.quiet:
        return 0
    ops = sorted({n.op_type for n in proto.graph.node})
    layout = "NCHW" if args.nchw_input else "NHWC"
    print(f"exported {args.checkpoint} -> {args.out}: opset {args.opset}, {layout} input "
          f"{'x'.join(str(s) for s in shape)}, {len(proto.graph.node)} nodes ({', '.join(ops)})")
    return 0
