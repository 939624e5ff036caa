"""Write "digits anywhere" canvases as COCO and mask folders that `--data-dir` reads back.

    python scripts/make_digits_anywhere.py OUT                         # embedded 8x8 digits, 1-4 per 64x64 canvas
    python scripts/make_digits_anywhere.py OUT --source mnist --data-dir MNIST_DIR
    python scripts/make_digits_anywhere.py OUT --idx train-images.gz train-labels.gz t10k-images.gz t10k-labels.gz
    python scripts/make_digits_anywhere.py OUT --single                # one digit per 56x56 canvas (localisation)

OUT gets ``detection/{train,test}/`` (PNG canvases and ``_annotations.coco.json``: boxes [x, y, w, h],
category id = digit + 1, name = the digit), ``segmentation/{train,test}/{images,masks}/`` (mask value 0
for background, digit + 1 on its strokes, 255 where two digits' strokes cross) with ``classes.txt``, and
``manifest.json`` with every file's SHA-256 and the digest each folder loads as. The same arguments
and seed write the same bytes. Never commit the output.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the folder to write (must not exist, unless --overwrite)")
    p.add_argument("--source", default="digits", help="a data set name: digits (embedded), mnist, fashion_mnist, ...")
    p.add_argument("--data-dir", help="a folder holding the source's files (for mnist and other IDX sets)")
    p.add_argument("--no-verify", action="store_true", help="accept source files that differ from the published ones")
    p.add_argument("--idx", nargs=4, metavar=("TRAIN_IMAGES", "TRAIN_LABELS", "TEST_IMAGES", "TEST_LABELS"),
                   help="any data set in the IDX layout, instead of --source")
    p.add_argument("--n-train", type=int, default=6000, help="training canvases (default 6000)")
    p.add_argument("--n-test", type=int, default=1000, help="test canvases (default 1000)")
    p.add_argument("--canvas", type=int, default=None, help="canvas side in pixels (default 64; 56 with --single)")
    p.add_argument("--digits", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                   help="digits per canvas (default 1 4; 1 1 with --single)")
    p.add_argument("--scale", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="resize factor of a source image (default: its side becomes 16..28 pixels)")
    p.add_argument("--single", action="store_true", help="one digit per 56x56 canvas: the localisation task")
    p.add_argument("--layouts", nargs="+", default=["coco", "masks"], choices=["coco", "masks"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)

    import numpy as np

    from striate.data import load_dataset, read_idx
    from striate.data.canvas import make_canvas_dataset, write_canvas_folders

    canvas = args.canvas or (56 if args.single else 64)
    digits = tuple(args.digits) if args.digits else ((1, 1) if args.single else (1, 4))
    try:
        if args.idx:
            x_train, y_train, x_test, y_test = (read_idx(f, expected_ndim=3 if i % 2 == 0 else 1)
                                                for i, f in enumerate(args.idx))
            names = [str(c) for c in range(int(max(y_train.max(), y_test.max())) + 1)]
            source = "idx:" + ",".join(os.path.basename(f) for f in args.idx)
        else:
            src = load_dataset(args.source, data_dir=args.data_dir, verify=not args.no_verify)
            x_train, y_train, x_test, y_test, names = src.x_train, src.y_train, src.x_test, src.y_test, src.class_names
            source = src.name
        name = f"{source}_anywhere" if not args.single else f"{source}_localisation"
        ds = make_canvas_dataset(x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64), names,
                                 args.n_train, args.n_test, canvas=canvas, digits=digits,
                                 scale=tuple(args.scale) if args.scale else None, seed=args.seed, name=name)
        params = {"source": source, "n_train": args.n_train, "n_test": args.n_test, "canvas": canvas,
                  "digits": list(digits), "scale": args.scale, "seed": args.seed}
        manifest = write_canvas_folders(ds, args.out, layouts=tuple(args.layouts), overwrite=args.overwrite,
                                        params=params)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for sub, info in manifest["folders"].items():
        print(f"{os.path.join(args.out, sub)}: {info['layout']}, {len(info['files'])} files, sha256 {info['sha256']}")
    print(f"{os.path.join(args.out, 'manifest.json')}: arrays sha256 {manifest['arrays_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
