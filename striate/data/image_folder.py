"""A data set from a folder of images: one sub-folder per class (Pillow decodes JPEG, PNG, ...).

Layout, either::

    root/cat/001.jpg, root/cat/002.png, root/dog/abc.jpg, ...          (split here, stratified)

or, with a split of your own::

    root/train/cat/..., root/train/dog/..., root/test/cat/..., root/test/dog/...   ("val" works for "test")

Class names are the sub-folder names in sorted order (label ``i`` is the ``i``-th name).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..optional import require
from .images import ImageError, read_image
from .container import Dataset, _size_pair, stratified_split

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_GRAY_MODES = {"1", "L", "I", "I;16", "F", "LA"}


def _pillow():
    return require("PIL.Image", "data", "reading image folders")


def _class_dirs(root: str) -> list:
    return sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def _list_images(root: str, class_names: list):
    """(paths, labels) for every image under root/<class>/ (files sorted, hidden files skipped)."""
    paths, labels = [], []
    for label, cls in enumerate(class_names):
        folder = os.path.join(root, cls)
        if not os.path.isdir(folder):
            continue
        for f in sorted(os.listdir(folder)):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(folder, f))
                labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64)


def _open_errors(Image) -> tuple:
    """What Pillow raises for a file it cannot or will not decode: OSError, and DecompressionBombError
    (an image of more than twice ``Image.MAX_IMAGE_PIXELS`` pixels, a guard against memory bombs)."""
    return (OSError, Image.DecompressionBombError)


def _unreadable(path: str, err, Image) -> ValueError:
    if isinstance(err, Image.DecompressionBombError):
        return ValueError(f"{path}: this image is too large to decode safely ({' '.join(str(err).split())}). "
                          "Shrink it or remove it from the folder.")
    return ValueError(f"{path}: cannot read this image ({err}). Remove it or replace it.")


def _read(path: str, channels=None, size=None) -> np.ndarray:
    """One image as every command reads a picture (:func:`striate.data.images.read_image`: upright by
    EXIF, transparency laid over its ground), uint8 (H, W, C); a ValueError naming an unusable file."""
    try:
        return read_image(path, channels, size=size)
    except ImageError as err:
        raise ValueError(f"{err} Remove it from the folder or replace it.") from None


def _decode(paths: list, size, gray: bool) -> np.ndarray:
    """Read and resize every image into one uint8 array (N, H, W, C)."""
    h, w = size
    out = np.empty((len(paths), h, w, 1 if gray else 3), np.uint8)
    for i, path in enumerate(paths):  # one file per iteration: decoding is inherently per file
        out[i] = _read(path, 1 if gray else 3, (h, w))
    return out


def _check_classes(root: str, class_names: list, y_train, y_test, own_split: bool) -> None:
    """Refuse folders a classifier cannot learn from or be tested on: one class, an empty class,
    a class too small to appear in both splits."""
    if len(class_names) < 2:
        raise ValueError(f"Image folder {root!r} has {len(class_names)} class sub-folder(s) "
                         f"({', '.join(class_names) or 'none'}); a classifier needs at least 2 classes, one "
                         "sub-folder of images per class.")
    n_train = np.bincount(y_train, minlength=len(class_names))
    n_test = np.bincount(y_test, minlength=len(class_names))
    empty = [c for c, a, b in zip(class_names, n_train, n_test) if a + b == 0]
    if empty:
        raise ValueError(f"Image folder {root!r}: the class folder(s) {', '.join(map(repr, empty))} hold no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder(s).")
    no_train = [c for c, a in zip(class_names, n_train) if a == 0]
    if no_train:
        raise ValueError(f"Image folder {root!r}: class(es) {', '.join(map(repr, no_train))} have no training "
                         "images" + (" in train/" if own_split else " after the split (too few images)")
                         + ". Add images so every class has some for training.")
    no_test = [c for c, b in zip(class_names, n_test) if b == 0]
    if no_test and len(y_test):
        where = "in the test folder" if own_split else "after the split: too few images to appear in both splits"
        warnings.warn(f"Image folder {root!r}: class(es) {', '.join(map(repr, no_test))} have no test images "
                      f"({where}); their test accuracy cannot be measured. Give each class more images "
                      "(about 1 / test_fraction at least).", UserWarning, stacklevel=3)


def load_image_folder(root: str, image_size=None, test_fraction: float = 0.2, seed: int = 0):
    """Load ``root/<class>/<image>`` files into a :class:`~striate.data.Dataset`.

    Args:
        root: the folder. With ``train/`` and ``test/`` (or ``val/``) sub-folders those are the split;
            otherwise a stratified split keeps ``test_fraction`` of each class for test.
        image_size: ``(height, width)`` or an int; every image is resized to it (Pillow bilinear).
            Default: the size of the first image (in sorted order) -- fine for folders of equally sized
            images; pass a size for photos of mixed sizes.
        test_fraction: share of the images held out when the folder has no split of its own.
        seed: seed of that split (the split is deterministic).

    The images are grayscale ``C = 1`` when every file is grayscale, else RGB ``C = 3``; photos are turned
    upright by their EXIF orientation and transparency is laid over a plain ground (see :mod:`striate.data.images`).

    Example:
        >>> ds = load_image_folder("flowers", image_size=64)  # doctest: +SKIP
        >>> ds.input_shape  # doctest: +SKIP
        (64, 64, 3)
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder {root!r} does not exist or is not a folder.")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1). Received: test_fraction={test_fraction!r}.")
    subdirs = _class_dirs(root)
    test_dir = next((d for d in ("test", "val") if d in subdirs), None)
    if "train" in subdirs and test_dir is not None:
        train_root, test_root = os.path.join(root, "train"), os.path.join(root, test_dir)
        class_names = sorted(set(_class_dirs(train_root)) | set(_class_dirs(test_root)))
        train_paths, y_train = _list_images(train_root, class_names)
        test_paths, y_test = _list_images(test_root, class_names)
    else:
        class_names = subdirs
        paths, labels = _list_images(root, class_names)
        n_test = int(round(test_fraction * len(paths)))
        train_idx, test_idx = stratified_split(labels, n_test, seed)
        train_paths, y_train = [paths[i] for i in train_idx], labels[train_idx]
        test_paths, y_test = [paths[i] for i in test_idx], labels[test_idx]
    if not train_paths:
        raise ValueError(
            f"No images found in {root!r}. Expected one sub-folder per class holding image files "
            f"({', '.join(IMAGE_EXTENSIONS)}). Found sub-folders: {subdirs or 'none'}."
        )
    _check_classes(root, class_names, y_train, y_test, own_split=test_dir is not None and "train" in subdirs)

    Image = _pillow()
    gray = True
    for path in train_paths + test_paths:  # headers only: Pillow opens lazily
        try:
            with Image.open(path) as im:
                if im.mode not in _GRAY_MODES:
                    gray = False
                    break
        except _open_errors(Image) as err:
            raise _unreadable(path, err, Image) from None
    if image_size is None:
        size = _read(train_paths[0]).shape[:2]   # as shown: EXIF orientation applied
    else:
        size = _size_pair(image_size)
    return Dataset(_decode(train_paths, size, gray), y_train, _decode(test_paths, size, gray), y_test,
                   class_names, os.path.basename(os.path.normpath(root)))
