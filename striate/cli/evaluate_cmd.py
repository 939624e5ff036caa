"""``striate evaluate``: test-set accuracy, loss, top-5, per-class accuracy and confusion matrix of saved weights."""
from __future__ import annotations

import argparse
import json

import numpy as np

from .common import load_model_file, load_run_data, standardizer
from .main import CommandError

EPILOG = """\
examples:
  striate evaluate --checkpoint runs/digits-digits_cnn/weights.npz
  striate evaluate --checkpoint runs/digits-digits_cnn/checkpoint_best.npz --tta
  striate evaluate --weights runs/mnist-lenet5/weights.npz --data-dir PATH --json
  striate evaluate --checkpoint runs/digits_anywhere-centernet/weights.npz   # mAP50, mAP, AP per class

Localisation runs report class accuracy and mean IoU, detection runs mAP50 and COCO's mAP (IoU 0.5:0.95)
with AP per class, segmentation runs mIoU (background included), pixel accuracy and IoU per class.

The data set and its folder are the ones the model was trained on (recorded in the file) unless
--dataset / --data-dir name others with the same image size and classes; only the test files are read.
--tta averages the softmax over views of the test images made only with the augmentations the run
trained with: the 4 corner and centre crops of the images padded by --tta-padding pixels (crop), and
their mirror images (flip). A run trained without flips is never shown mirrored images.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="evaluate saved weights on a test set",
        description="Evaluate a model saved by `striate train` (weights.npz or a checkpoint) on the test split\n"
                    "of its data set: loss, top-1 and top-5 accuracy, per-class accuracy, confusion matrix.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument_group("required arguments").add_argument(
        "--checkpoint", "--weights", dest="checkpoint", required=True, metavar="PATH",
        help="weights.npz or checkpoint.npz written by striate train or finetune")
    p.add_argument("--dataset", metavar="NAME|DIR", help="data set (default: the one recorded in the file)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: the one the "
                   "run was trained from)")
    p.add_argument("--no-verify", action="store_true", help="accept files that are not the published ones (SHA-256)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per forward pass (256)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation with the run's own augmentations "
                   "(crops, and mirrors if it trained with flips)")
    p.add_argument("--tta-padding", type=int, metavar="PX",
                   help="padding before the 10 crops (default: the training crop padding, 0 without crop)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(command="evaluate")
    return p


def _tta(meta: dict, padding: int, flips: bool, standardize):
    """Views ``(v, n, h, w, c)``: the 4 corner and the centre crops of the model's size from the images
    padded by ``padding`` (one view when ``padding`` is 0), and their mirror images when ``flips``."""
    h, w = meta["input_shape"][:2]

    def views(xb):
        padded = np.pad(xb, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        ph, pw = padded.shape[1:3]
        corners = [(0, 0), (0, pw - w), (ph - h, 0), (ph - h, pw - w), ((ph - h) // 2, (pw - w) // 2)]
        if padding == 0:
            corners = corners[-1:]
        crops = [padded[:, t:t + h, s:s + w] for t, s in corners]
        if flips:
            crops += [c[:, :, ::-1] for c in crops]
        crops = np.stack(crops)
        return np.stack([standardize(v) for v in crops]) if standardize is not None else crops

    return views


def run(args) -> int:
    from ..data import DataLoader
    from ..training import evaluate

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be a positive integer. Received: {args.batch_size}.")
    model, meta = load_model_file(args.checkpoint)
    if meta.get("task") in ("localisation", "detection", "segmentation"):
        from .dense_cmds import evaluate_dense_run
        return evaluate_dense_run(args, model, meta)
    config = meta.get("config") or {}
    # the recorded data set, folder and (for a fine-tuned model) class subset, unless others are given
    ds = load_run_data(meta, args.checkpoint, args.dataset, args.data_dir, no_verify=args.no_verify)
    expected = tuple(meta.get("input_shape") or ds.input_shape)
    if tuple(ds.input_shape) != expected:
        raise CommandError(f"the model takes {expected} images; {ds.name} has {tuple(ds.input_shape)}.")
    names = meta.get("class_names") or ds.class_names
    if len(names) != ds.num_classes:
        raise CommandError(f"the model has {len(names)} classes; {ds.name} has {ds.num_classes}.")
    standardize = standardizer(meta)
    if args.tta:
        augment = str(config.get("augment", "none")).split(",")
        padding = args.tta_padding
        if padding is None:  # the shifts the model saw in training (none without crop augmentation)
            padding = int(config.get("crop_padding") or 0) if "crop" in augment else 0
        if padding < 0:
            raise CommandError(f"--tta-padding must be >= 0. Received: {padding}.")
        loader = DataLoader(ds.x_test, ds.y_test, batch_size=args.batch_size, shuffle=False)
        result = evaluate(model, loader, tta=_tta(meta, padding, "flip" in augment, standardize))
    else:
        loader = DataLoader(ds.x_test, ds.y_test, batch_size=args.batch_size, shuffle=False, transform=standardize)
        result = evaluate(model, loader)

    per_class = {n: (None if np.isnan(a) else float(a)) for n, a in zip(names, result["per_class_accuracy"])}
    if args.json:
        out = {"accuracy": result["accuracy"], "loss": result["loss"], "top5_accuracy": result.get("top5_accuracy"),
               "num_samples": result["num_samples"], "tta": bool(args.tta), "per_class_accuracy": per_class,
               "confusion_matrix": result["confusion_matrix"].tolist()}
        print(json.dumps(out, indent=2))
        return 0
    tta = " with test-time augmentation" if args.tta else ""
    print(f"{meta['model'].get('name', 'imported graph')} on {ds.name} test set ({result['num_samples']} images){tta}")
    print(f"  accuracy  {100 * result['accuracy']:.2f}%")
    if "top5_accuracy" in result:
        print(f"  top-5     {100 * result['top5_accuracy']:.2f}%")
    print(f"  loss      {result['loss']:.4f}")
    width = max(len(n) for n in names)
    print("per-class accuracy:")
    for n, a in per_class.items():
        print(f"  {n.ljust(width)}  {'n/a' if a is None else f'{100 * a:6.2f}%'}")
    cm = result["confusion_matrix"]
    if len(cm) <= 20:
        print("confusion matrix (rows: true class, columns: predicted):")
        cell = max(4, len(str(cm.max())) + 1)
        print("  " + " " * width + "".join(n[:cell - 1].rjust(cell) for n in names))
        for n, row in zip(names, cm):
            print("  " + n.ljust(width) + "".join(str(v).rjust(cell) for v in row))
    return 0
