"""``striate predict``: classify image files with saved weights and print the top-k classes."""
from __future__ import annotations

import argparse
import json
import textwrap

import numpy as np

from ..data.images import BLANK_LEVELS, INVERT_RULE, ImageError, prepare
from .common import add_invert_option, invert_choice, load_model_file, read_each, report_unread, standardizer
from .main import CommandError

EPILOG = """\
examples:
  striate predict digit.png --checkpoint runs/digits-digits_cnn/weights.npz
  striate predict a.png b.jpg --checkpoint runs/mnist-lenet5/weights.npz --top-k 5
  striate predict scan.png --checkpoint runs/digits-digits_cnn/weights.npz --invert   # force inversion
  striate predict a.png b.png --checkpoint runs/digits_anywhere-centernet/weights.npz --out boxes --json det.json
  striate predict a.png --checkpoint runs/digits_anywhere-fcn/weights.npz --out masks

Detection and localisation models draw their boxes with class and score (--out DIR) and write COCO
results (--json FILE) in the pictures' own pixels. image_id is the picture's id in the COCO file of
its folder when every picture is listed in one (so COCOeval scores the results against that file as
they are), else the pictures are counted from 1 in the order given. Segmentation models write
NAME_overlay.png and NAME_mask.png (one class index per pixel).

Pictures are read as striate visualize and striate serve read them: turned upright by their EXIF
orientation, transparency laid over white (under dark strokes) or black (under light ones), converted
to the model's channels (grayscale or RGB) and resized to its input size with Pillow, then standardised
exactly as in training. A blank picture (every pixel within {levels} grey levels of the others) is refused.
""".format(levels=BLANK_LEVELS) + textwrap.fill("Inversion: " + INVERT_RULE.replace("%%", "%") + ".", 100)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="classify image files, or find boxes or masks in them, with saved weights",
        description="Classify images with a model saved by `striate train` and print the most likely\n"
                    "classes with their probabilities.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument_group("required arguments").add_argument(
        "--checkpoint", "--weights", dest="checkpoint", required=True, metavar="PATH",
        help="weights.npz or checkpoint.npz written by striate train or finetune")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes to show per image (3)")
    add_invert_option(p)
    p.add_argument("--json", nargs="?", const=True, default=False, metavar="FILE",
                   help="print the predictions as JSON; with FILE (boxes) write COCO results there: image_id (the "
                        "id in the COCO file beside the pictures, else 1, 2, ...), file_name, category_id "
                        "(the data set's own ids), bbox [x, y, w, h] in the picture's pixels, score")
    p.add_argument("--out", metavar="DIR", help="(boxes and masks) write the pictures with their boxes "
                   "(NAME_boxes.png) or masks (NAME_overlay.png and NAME_mask.png, class indices) into DIR")
    p.add_argument("--min-score", type=float, default=0.3, metavar="S",
                   help="(boxes) draw and list the boxes scoring at least S (0.3); --json FILE keeps all")
    p.add_argument("--overwrite", action="store_true", help="replace files that --out or --json would write")
    p.set_defaults(command="predict")
    return p


def run(args) -> int:
    from ..training import predict

    if args.top_k < 1:
        raise CommandError(f"--top-k must be a positive integer. Received: {args.top_k}.")
    model, meta = load_model_file(args.checkpoint)
    if meta.get("task") in ("localisation", "detection", "segmentation"):
        from .dense_cmds import predict_dense_run
        return predict_dense_run(args, model, meta)
    if isinstance(args.json, str) or args.out is not None:
        raise CommandError(f"{'--out' if args.out is not None else '--json FILE'} is for localisation, detection and "
                           "segmentation models; this one classifies: use --json alone to print JSON.")
    shape = meta.get("input_shape")
    if not shape:
        raise CommandError(f"{args.checkpoint} does not record the model's input shape.")
    # Every file is tried: an unreadable one is reported and skipped, and the exit code says so at the end.
    images, paths, failed = read_each(args.images, lambda path: prepare(path, tuple(shape), meta,
                                                                        invert=invert_choice(args)), ImageError)
    x = np.stack(images)                       # float32 (n, h, w, c) in [0, 1]
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
    return report_unread(failed, len(args.images))
