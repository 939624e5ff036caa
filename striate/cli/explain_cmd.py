"""``striate explain``: the arithmetic of one unit of one layer for one image, printed or saved as JSON."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .common import add_invert_option, invert_choice
from .main import CommandError

EPILOG = """\
examples:
  striate explain --checkpoint runs/digits-digits_cnn/weights.npz --image digit.png --layer features.0 --unit 3,4,7
  striate explain --checkpoint C --image digit.png --layer classifier.2 --unit 5 --top-k 12
  striate explain --checkpoint C --image digit.png --layer features.3 --unit 1,1,0 --gradient --target 3
  striate explain --checkpoint C --image digit.png --layer features.0 --unit 0,0,0 --json unit.json

Layer names are those of `striate summary`; --unit is row,col,channel for feature maps and one number
for a vector (a dense layer's output). The image is read and preprocessed as `striate predict` does;
a .npy file is taken as already preprocessed (h, w, c).
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain", help="how one unit of a layer got its value, with the real numbers",
        description="Explain one unit of one layer for one image: a conv's input patch times its kernel,\n"
                    "summed per input channel, plus the bias; batch norm, pooling, residual sums,\n"
                    "dense layers and the softmax likewise. --gradient adds what backprop sends to it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", "--weights", dest="checkpoint", metavar="PATH",
                   help="weights.npz or checkpoint.npz written by striate train")
    p.add_argument("--image", required=True, metavar="IMAGE",
                   help="image file (PNG, JPEG, ...), or a preprocessed (h, w, c) array as .npy")
    p.add_argument("--layer", required=True, metavar="NAME", help="layer name (striate summary)")
    p.add_argument("--unit", required=True, metavar="R,C,K", help="row,col,channel (or one index for a vector)")
    p.add_argument("--top-k", type=int, default=8, metavar="N", help="largest contributions listed one by one (8)")
    p.add_argument("--gradient", action="store_true", help="also the gradients of the unit and of its weights")
    p.add_argument("--target", type=int, metavar="K", help="class for --gradient (default: the predicted class)")
    add_invert_option(p)
    p.add_argument("--json", metavar="OUT", help="write the explanation as JSON to OUT instead of printing it")
    p.add_argument("--overwrite", action="store_true", help="replace --json OUT if it exists")
    p.set_defaults(command="explain")
    return p


def parse_unit(text: str) -> tuple:
    try:
        unit = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise CommandError(f"--unit must be row,col,channel (e.g. 3,4,7) or one index. Received: {text!r}.") from None
    return unit


def load_input(path, meta, invert="auto") -> np.ndarray:
    """The image as the model takes it, ``(h, w, c)``: read as ``striate predict`` reads it, scaled to
    [0, 1] and standardised as in training; a ``.npy`` array is taken as preprocessed."""
    from ..data.images import ImageError, load_array, prepare
    from .common import standardizer

    shape = tuple(meta.get("input_shape") or ())
    if len(shape) != 3:
        raise CommandError("the model file does not record its input shape (h, w, c).")
    try:
        if str(path).lower().endswith(".npy"):
            return load_array(path, shape).astype(np.float32)
        x = prepare(path, shape, meta, invert=invert)[None]              # (1, h, w, c) in [0, 1]
    except ImageError as e:
        raise CommandError(str(e)) from None
    standardize = standardizer(meta)
    return (standardize(x) if standardize is not None else x)[0]


def _gradient_lines(g) -> list:
    lines = [f"backward: d {g['score']}[class {g['target']}] / d unit = {g['grad']:.6g}"]
    if "weight_grad" in g:
        lines.append(f"  d / d pre-activation = {g['pre_activation_grad']:.6g}; d / d bias = {g['bias_grad']:.6g}")
        lines.append(f"  {'weight (i, j, c)':<18} {'value':>12} {'grad via unit':>14} {'grad':>12}"
                     "   (largest through this unit first)")
        lines += [f"  {str(t['index']):<18} {t['weight']:>+12.6g} {t['grad_via_unit']:>+14.6g} {t['grad']:>+12.6g}"
                  for t in g["top_weights"]]
    if "gamma_grad" in g:
        lines.append(f"  d / d gamma = {g['gamma_grad']:.6g}; d / d beta = {g['beta_grad']:.6g}")
    return lines


def run(args) -> int:
    from .. import vis
    from ..atomic import atomic_write_text
    from .common import load_model_file

    if args.top_k < 1:
        raise CommandError(f"--top-k must be a positive integer. Received: {args.top_k}.")
    if args.json and os.path.exists(args.json) and not args.overwrite:
        raise CommandError(f"--json {args.json!r} exists; pass --overwrite to replace it.")
    model, meta = load_model_file(args.checkpoint)
    x = load_input(args.image, meta, invert_choice(args))
    unit = parse_unit(args.unit)
    try:
        e = vis.explain_unit(model, x, args.layer, unit, top_k=args.top_k)
        g = vis.explain_gradient(model, x, args.layer, unit, target=args.target) if args.gradient else None
    except (ValueError, TypeError) as err:
        raise CommandError(" ".join(str(err).split())) from None
    if args.json:
        data = vis.to_json(e)
        if g is not None:
            data["gradient"] = vis.to_json({k: v for k, v in g.items() if k not in ("gradients", "unit")})
        atomic_write_text(args.json, json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.json}")
        return 0
    print(vis.format_explanation(e))
    if g is not None:
        print("\n".join(_gradient_lines(g)))
    return 0
