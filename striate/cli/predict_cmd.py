"""``striate predict``: classify image files with saved weights and print the top-k classes."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from .common import load_model_file, standardizer
from .main import CommandError

EPILOG = """\
examples:
  striate predict digit.png --checkpoint runs/digits-digits_cnn/weights.npz
  striate predict a.png b.jpg --checkpoint runs/mnist-lenet5/weights.npz --top-k 5
  striate predict scan.png --checkpoint runs/digits-digits_cnn/weights.npz --invert   # dark ink on white

Images are converted to the model's channels (grayscale or RGB) and resized to its input size with
Pillow, then preprocessed exactly as in training.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="classify image files with saved weights",
        description="Classify images with a model saved by `striate train` and print the most likely\n"
                    "classes with their probabilities.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument_group("required arguments").add_argument(
        "--checkpoint", "--weights", dest="checkpoint", required=True, metavar="PATH",
        help="weights.npz or checkpoint.npz written by striate train or finetune")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes to show per image (3)")
    p.add_argument("--invert", action="store_true",
                   help="invert the images first (the digits data sets are light strokes on black)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(command="predict")
    return p


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise CommandError("reading images needs Pillow: pip install pillow (or pip install striate[cli]).") from None
    return Image


def load_image(path, input_shape, invert: bool = False) -> np.ndarray:
    """Read one image file with Pillow into uint8 ``(h, w, c)`` of the model's input shape; a
    CommandError (one line) for a file that cannot be used."""
    Image = _pillow()
    h, w, c = input_shape
    if not os.path.isfile(path):
        raise CommandError(f"no image file at {path!r}.")
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as e:
        raise CommandError(f"{path}: this image is too large to decode safely ({' '.join(str(e).split())}). "
                           "Shrink it first.") from None
    except (OSError, ValueError, MemoryError) as e:
        raise CommandError(f"cannot read {path!r} as an image ({' '.join(str(e).split()) or type(e).__name__}).") from None
    a = a.reshape(h, w, -1)
    if a.shape[-1] != c:
        raise CommandError(f"{path}: the model takes {c} channel(s), the image has {a.shape[-1]}.")
    return 255 - a if invert else a


def load_images(paths, input_shape, invert: bool = False) -> np.ndarray:
    """Read image files into uint8 ``(n, h, w, c)``; the first unusable one raises a CommandError."""
    return np.stack([load_image(p, input_shape, invert) for p in paths])


def run(args) -> int:
    import sys

    from ..training import predict

    if args.top_k < 1:
        raise CommandError(f"--top-k must be a positive integer. Received: {args.top_k}.")
    model, meta = load_model_file(args.checkpoint)
    shape = meta.get("input_shape")
    if not shape:
        raise CommandError(f"{args.checkpoint} does not record the model's input shape.")
    # Every file is tried: an unreadable one is reported and skipped, and the exit code says so at the end.
    images, paths, failed = [], [], []
    for path in args.images:
        try:
            images.append(load_image(path, tuple(shape), invert=args.invert))
            paths.append(path)
        except CommandError as e:
            if len(args.images) == 1:
                raise
            print(f"striate predict: error: {e}", file=sys.stderr)
            failed.append(path)
    if not images:
        raise CommandError(f"none of the {len(args.images)} image(s) could be read.")
    x = np.stack(images)
    standardize = standardizer(meta)
    names = meta.get("class_names")
    pred = predict(model, x, class_names=names, transform=standardize)
    tops = pred.top_k(args.top_k)
    if args.json:
        print(json.dumps([{"image": path, "top_k": [{"class": str(n), "probability": p} for n, p in top]}
                          for path, top in zip(paths, tops)], indent=2))
    else:
        width = max(len(p) for p in paths)
        for path, top in zip(paths, tops):
            print(f"{path.ljust(width)}  " + "  ".join(f"{n} {100 * p:5.1f}%" for n, p in top))
    if failed:
        print(f"striate predict: error: {len(failed)} of {len(args.images)} image(s) could not be read: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 2
    return 0
