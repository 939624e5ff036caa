"""Write canvases of objects other than digits, and harder variants of them, as COCO and mask folders.

The default recipes of ``striate train --data-dir`` must work on objects striate was not tuned on.
This writes such data: drawn geometric shapes (no download needed) or the images of any small
classification set (e.g. Fashion-MNIST's clothes), 1-4 per canvas, in the layouts ``--data-dir`` reads.

    python scripts/make_objects_anywhere.py OUT                              # shapes, 1-4 per 64x64 canvas
    python scripts/make_objects_anywhere.py OUT --source fashion_mnist --data-dir DIR
    python scripts/make_objects_anywhere.py OUT --clutter 6 --invert         # distractor strokes, dark on light
    python scripts/make_objects_anywhere.py OUT --scale 0.4 0.7 --canvas 48  # smaller objects
    python scripts/make_objects_anywhere.py OUT --single --scale 1.0 1.6     # one object per canvas (localisation)
    python scripts/make_objects_anywhere.py OUT --flat                       # no split folders

Shapes (classes disk, ring, square, triangle, cross) are drawn at 28x28 with a random size, rotation
and anti-aliased edges; a fresh set is drawn for the test split. Variants change only the pictures,
never the annotations:

* ``--clutter K``: up to K straight strokes of random brightness per canvas and speckle noise; they
  are not objects (no box; background in the mask), so a model must tell objects from scribbles;
* ``--invert``: dark objects on a light canvas (255 - pixel).

OUT gets ``detection/`` (COCO: PNG canvases and ``_annotations.coco.json``) and ``segmentation/``
(``images/``, ``masks/`` with 0 background, class + 1 on the object, 255 where two classes overlap,
and ``classes.txt``), each with ``train/`` and ``test/`` split folders, or, with ``--flat``, without
them (the reader then holds out a seeded test split itself); and ``manifest.json``. The same
arguments write the same bytes. Never commit the output.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

SHAPES = ("disk", "ring", "square", "triangle", "cross")
SIDE = 28          # the side of a drawn shape's source image, as MNIST-like sets have
_SUPERSAMPLE = 4   # sub-pixels per pixel side: edges get anti-aliased grey levels like scanned strokes


def _inside(kind: str, u, v, size: float, thickness: float):
    """Whether points ``(u, v)`` (shape coordinates, centre 0, rotated frame) lie in the shape."""
    r = size / 2
    if kind == "disk":
        return u * u + v * v <= r * r
    if kind == "ring":
        d = np.sqrt(u * u + v * v)
        return (d <= r) & (d >= r - thickness)
    if kind == "square":
        return (np.abs(u) <= r * 0.7) & (np.abs(v) <= r * 0.7)   # corners stay inside the circle of radius r
    if kind == "triangle":   # equilateral, circumradius r: inside all three edges (at r / 2 from the centre)
        inside = np.ones(np.shape(u), bool)
        for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= u * np.cos(a) + v * np.sin(a) <= r / 2
        return inside
    if kind == "cross":      # a plus of two bars
        bar = thickness / 2
        return ((np.abs(u) <= bar) & (np.abs(v) <= r)) | ((np.abs(v) <= bar) & (np.abs(u) <= r))
    raise ValueError(f"unknown shape {kind!r}")


def draw_shapes(n: int, seed: int) -> tuple:
    """``n`` shape images ``(n, 28, 28)`` uint8, white on black, and their labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    s = _SUPERSAMPLE
    grid = (np.arange(SIDE * s) + 0.5) / s - SIDE / 2          # sub-pixel centres, shape centre at 0
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    labels = rng.integers(len(SHAPES), size=n)
    images = np.zeros((n, SIDE, SIDE), np.uint8)
    for i, c in enumerate(labels):
        size = rng.uniform(0.65, 0.95) * SIDE
        angle = rng.uniform(0, 2 * np.pi) if SHAPES[c] != "disk" else 0.0
        thickness = rng.uniform(0.18, 0.3) * size
        cos, sin = np.cos(angle), np.sin(angle)
        u, v = cos * xx + sin * yy, -sin * xx + cos * yy
        cover = _inside(SHAPES[c], u, v, size, thickness).reshape(SIDE, s, SIDE, s).mean(axis=(1, 3))
        brightness = rng.uniform(180, 255)
        images[i] = np.round(cover * brightness).astype(np.uint8)
    return images, labels.astype(np.int64)


def add_clutter(images: np.ndarray, max_strokes: int, seed: int) -> np.ndarray:
    """Canvases ``(n, H, W, 1)`` with up to ``max_strokes`` random line strokes and speckle noise each."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    n, h, w = images.shape[:3]
    for i in range(n):
        layer = np.zeros((h, w), np.float64)
        for _ in range(int(rng.integers(0, max_strokes + 1))):
            (x0, x1), (y0, y1) = rng.uniform(0, w, 2), rng.uniform(0, h, 2)
            steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
            t = np.linspace(0, 1, steps)
            xs = np.clip(np.round(x0 + t * (x1 - x0)).astype(int), 0, w - 1)
            ys = np.clip(np.round(y0 + t * (y1 - y0)).astype(int), 0, h - 1)
            layer[ys, xs] = np.maximum(layer[ys, xs], rng.uniform(90, 230))
        specks = rng.random((h, w)) < 0.02
        layer[specks] = np.maximum(layer[specks], rng.uniform(60, 200, specks.sum()))
        out[i, ..., 0] = np.maximum(out[i, ..., 0], layer.round().astype(np.uint8))
    return out


def _source(args):
    """``(x_train, y_train, x_test, y_test, class_names, name)`` of the objects to place."""
    if args.source == "shapes":
        x_train, y_train = draw_shapes(args.n_source, args.seed)
        x_test, y_test = draw_shapes(max(1, args.n_source // 5), args.seed + 1)
        return x_train, y_train, x_test, y_test, list(SHAPES), "shapes"
    from striate.data import load_dataset

    src = load_dataset(args.source, data_dir=args.data_dir, verify=not args.no_verify)
    return src.x_train, src.y_train, src.x_test, src.y_test, src.class_names, src.name


def _variant(ds, args):
    """The data set with ``--clutter`` and ``--invert`` applied to its pictures (annotations kept)."""
    from striate.data.annotated import AnnotatedDataset, AnnotatedSplit, fingerprint
    from striate.data.canvas import split_digest

    if not args.clutter and not args.invert:
        return ds
    splits = {}
    for k, (name, split) in enumerate(ds.splits.items()):
        images = split.images
        if args.clutter:
            images = add_clutter(images, args.clutter, args.seed + 100 + k)
        if args.invert:
            images = 255 - images
        splits[name] = AnnotatedSplit(images, split.boxes, split.labels, masks=split.masks,
                                      file_names=split.file_names)
    sha = fingerprint(sum((split_digest(s, n) for n, s in splits.items()), []))
    return AnnotatedDataset(splits, ds.class_names, ds.task, category_ids=ds.category_ids,
                            mask_class_names=ds.mask_class_names, name=ds.name, layout="generated", sha256=sha)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the folder to write (must not exist, unless --overwrite)")
    p.add_argument("--source", default="shapes",
                   help="shapes (drawn here, the default) or a data set name such as fashion_mnist")
    p.add_argument("--data-dir", help="a folder holding the source's files (for fashion_mnist and other IDX sets)")
    p.add_argument("--no-verify", action="store_true", help="accept source files that differ from the published ones")
    p.add_argument("--n-source", type=int, default=6000, help="shapes drawn for training (a fifth as many for test)")
    p.add_argument("--n-train", type=int, default=6000, help="training canvases (default 6000)")
    p.add_argument("--n-test", type=int, default=1000, help="test canvases (default 1000)")
    p.add_argument("--canvas", type=int, default=None, help="canvas side in pixels (default 64; 56 with --single)")
    p.add_argument("--objects", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                   help="objects per canvas (default 1 4; 1 1 with --single)")
    p.add_argument("--scale", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="resize factor of a source image (default: its side becomes 16..28 pixels)")
    p.add_argument("--single", action="store_true", help="one object per canvas: the localisation task")
    p.add_argument("--clutter", type=int, default=0, metavar="K", help="up to K distractor strokes per canvas, "
                   "and speckle noise (default 0: none)")
    p.add_argument("--invert", action="store_true", help="dark objects on a light canvas")
    p.add_argument("--flat", action="store_true", help="no train/test split folders: one folder per layout")
    p.add_argument("--layouts", nargs="+", default=["coco", "masks"], choices=["coco", "masks"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)

    from striate.data.canvas import make_canvas_dataset, write_canvas_folders

    canvas = args.canvas or (56 if args.single else 64)
    objects = tuple(args.objects) if args.objects else ((1, 1) if args.single else (1, 4))
    if args.clutter < 0:
        p.error(f"--clutter must be 0 or more. Received: {args.clutter}.")
    try:
        x_train, y_train, x_test, y_test, names, source = _source(args)
        suffix = "_localisation" if args.single else "_anywhere"
        name = source + suffix + ("_clutter" if args.clutter else "") + ("_inverted" if args.invert else "")
        ds = make_canvas_dataset(x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64), names,
                                 args.n_train, args.n_test, canvas=canvas, digits=objects,
                                 scale=tuple(args.scale) if args.scale else None, seed=args.seed, name=name)
        ds = _variant(ds, args)
        params = {"source": source, "n_train": args.n_train, "n_test": args.n_test, "canvas": canvas,
                  "objects": list(objects), "scale": args.scale, "clutter": args.clutter, "invert": args.invert,
                  "flat": args.flat, "seed": args.seed}
        manifest = write_canvas_folders(ds, args.out, layouts=tuple(args.layouts), overwrite=args.overwrite,
                                        params=params, split_folders=not args.flat)
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for sub, info in manifest["folders"].items():
        print(f"{os.path.join(args.out, sub)}: {info['layout']}")
    print(f"{os.path.join(args.out, 'manifest.json')}: arrays sha256 {manifest['arrays_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
