"""Write harder variants of MNIST in the MNIST file layout, to check that a recipe generalises.

    python scripts/make_mnist_variants.py PATH/TO/MNIST /tmp/mnist-hard --kind hard

Kinds (each a deterministic function of the seed; train and test get the same treatment):

* ``inverted``  half the images, at random, are dark strokes on white;
* ``noise``     a uniform-noise background under the strokes (pixel = max(stroke, noise));
* ``texture``   a smooth random texture (blurred noise) as background;
* ``shifted``   each digit moved by up to 4 pixels (what falls off the edge is lost);
* ``clutter``   four 8x8 fragments of other digits pasted at random places;
* ``hard``      shifted + clutter + texture + inverted, all at once.

The files are written as ``train-images-idx3-ubyte.gz`` etc. into the output folder, so that
``striate train --dataset fashion_mnist --data-dir OUT --no-verify`` trains the Fashion-MNIST recipe
on them (a 28x28 grayscale 10-class data set that is not plain MNIST). Never commit the output.
"""
from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

KINDS = ("inverted", "noise", "texture", "shifted", "clutter", "hard")


def _write_idx(path: str, array: np.ndarray) -> None:
    # IDX: big-endian magic (0x08 = uint8, then the number of axes), the axis sizes, the bytes.
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def _shift(x, rng, max_shift=4):
    n, h, w = x.shape
    padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
    rows = dy[:, None] + np.arange(h)[None, :]            # (n, h)
    cols = dx[:, None] + np.arange(w)[None, :]            # (n, w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _clutter(x, rng, pieces=4, size=8):
    n, h, w = x.shape
    out = x.copy()
    for _ in range(pieces):
        src = rng.integers(0, n, n)
        sy, sx, ty, tx = (rng.integers(0, h - size + 1, n) for _ in range(4))
        r = np.arange(size)
        patch = x[src[:, None, None], sy[:, None, None] + r[None, :, None], sx[:, None, None] + r[None, None, :]]
        rows, cols = ty[:, None, None] + r[None, :, None], tx[:, None, None] + r[None, None, :]
        idx = np.arange(n)[:, None, None]
        out[idx, rows, cols] = np.maximum(out[idx, rows, cols], patch)
    return out


def _texture(shape, rng, strength=150):
    n, h, w = shape
    noise = rng.random((n, h // 4 + 2, w // 4 + 2), dtype=np.float32)
    big = np.repeat(np.repeat(noise, 4, axis=1), 4, axis=2)[:, :h, :w]     # blocky, then smoothed
    for axis in (1, 2):
        big = (big + np.roll(big, 1, axis) + np.roll(big, -1, axis) + np.roll(big, 2, axis)) / 4
    return (big * strength).astype(np.uint8)


def make(x: np.ndarray, kind: str, rng) -> np.ndarray:
    """The variant ``kind`` of uint8 images ``x`` (n, 28, 28)."""
    if kind == "inverted":
        flip = rng.random(len(x)) < 0.5
        return np.where(flip[:, None, None], 255 - x, x)
    if kind == "noise":
        return np.maximum(x, rng.integers(0, 110, x.shape).astype(np.uint8))
    if kind == "texture":
        return np.maximum(x, _texture(x.shape, rng))
    if kind == "shifted":
        return _shift(x, rng)
    if kind == "clutter":
        return _clutter(x, rng)
    if kind == "hard":
        y = _clutter(_shift(x, rng), rng)
        y = np.maximum(y, _texture(x.shape, rng, strength=120))
        return make(y, "inverted", rng)
    raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: {kind!r}.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mnist_dir", help="folder with the four MNIST files")
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--kind", choices=KINDS, default="hard")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preview", metavar="PNG", help="also save a grid of 40 training images")
    p.add_argument("--train-size", type=int, metavar="N", help="keep only the first N training images (quicker checks)")
    args = p.parse_args(argv)
    from striate.data import load_dataset

    ds = load_dataset("mnist", data_dir=args.mnist_dir)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    n = len(ds.y_train) if args.train_size is None else max(1, min(args.train_size, len(ds.y_train)))
    ds.x_train, ds.y_train = ds.x_train[:n], ds.y_train[:n]
    x_train = make(ds.x_train[..., 0], args.kind, rng)
    x_test = make(ds.x_test[..., 0], args.kind, rng)
    for name, a in (("train-images-idx3-ubyte.gz", x_train), ("train-labels-idx1-ubyte.gz", ds.y_train),
                    ("t10k-images-idx3-ubyte.gz", x_test), ("t10k-labels-idx1-ubyte.gz", ds.y_test)):
        _write_idx(os.path.join(args.out, name), a.astype(np.uint8))
    if args.preview:
        from PIL import Image
        grid = x_train[:40].reshape(4, 10, 28, 28).transpose(0, 2, 1, 3).reshape(4 * 28, 10 * 28)
        Image.fromarray(grid).resize((10 * 28 * 3, 4 * 28 * 3), Image.NEAREST).save(args.preview)
    print(f"wrote the {args.kind} variant of MNIST to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
