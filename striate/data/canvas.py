"""Digits anywhere: real digit images, scaled and placed at random on larger canvases.

The "where" tasks need images whose objects can be anywhere, with their boxes and masks. This
module makes them from any small-image classification set (the embedded 8x8 digits, MNIST, or any
data set in the IDX layout):

* each canvas gets 1-4 digits (``digits=(lo, hi)``), each drawn from the source images, scaled by a
  random factor (bilinear) and pasted at a random position; overlapping ink is combined with max
  (white strokes on black);
* a digit's box is the tight box of its stroke, the pixels at or above ``threshold`` (half of full
  ink by default), in canvas pixels (xyxy, edges: a stroke covering pixel columns 3..9 gives
  ``x0=3, x1=10``); a new digit whose box would overlap a placed one by more than ``max_overlap``
  of the smaller box is moved (up to 50 tries, then left out, so limited overlap is a promise);
* the mask holds 0 for background and ``label + 1`` on a digit's stroke pixels; a pixel on the
  strokes of two digits of different classes is ambiguous and marked 255 (ignored);
* everything is a function of ``seed``: the same call gives the same bytes.

With ``digits=(1, 1)`` and ``canvas=56`` the canvases are the single-object localisation task.

Example:
    >>> from striate.data import load_dataset
    >>> src = load_dataset("digits")
    >>> split = make_canvases(src.x_train, src.y_train, n=8, canvas=64, seed=0)
    >>> split.images.shape, split.masks.shape
    ((8, 64, 64, 1), (8, 64, 64))
"""
from __future__ import annotations

import numpy as np

from .annotated import AnnotatedDataset, AnnotatedSplit, fingerprint
from .transforms import resize_images

__all__ = ["make_canvases", "make_canvas_dataset", "write_canvas_folders", "CANVAS_SETS",
           "DEFAULT_DIGIT_SIDE"]

IGNORE = 255
# The pasted side, in canvas pixels, of the source image when no scale is given: big enough that an
# 8x8 digit is legible, small enough that four fit on a 64x64 canvas with room to move.
DEFAULT_DIGIT_SIDE = (16, 28)
_TRIES = 50  # random positions tried per digit before it is left out


def _source(images, labels):
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 grayscale digits (N, H, W) or (N, H, W, 1). Received: shape "
                         f"{x.shape}, dtype {x.dtype}.")
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(x) or (len(y) and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must hold one integer class per image ({len(x)}). Received: shape {y.shape}, "
                         f"dtype {y.dtype}.")
    if len(x) == 0:
        raise ValueError("images is empty: the canvases need at least one source digit.")
    if y.min() < 0 or y.max() >= IGNORE - 1:
        raise ValueError(f"labels must lie in 0..253 (mask value label + 1 below the ignore value 255). "
                         f"Received: {y.min()}..{y.max()}.")
    return x, y.astype(np.int64)


def _range(value, name, kind=float):
    try:
        lo, hi = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high). Received: {name}={value!r}.") from None
    if not 0 < lo <= hi:
        raise ValueError(f"{name} must satisfy 0 < low <= high. Received: {name}={value!r}.")
    return lo, hi


def _overlaps(box, placed, max_overlap):
    """Whether ``box`` covers more than ``max_overlap`` of the smaller of it and any placed box."""
    for other in placed:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw > 0 and ih > 0:
            smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
            if iw * ih > max_overlap * smaller:
                return True
    return False


def make_canvases(images, labels, n: int, canvas=64, digits=(1, 4), scale=None, max_overlap: float = 0.2,
                  threshold: float = 0.5, seed: int = 0) -> AnnotatedSplit:
    """``n`` canvases with 1-4 digits anywhere, their boxes and masks.

    Args:
        images: source digits, uint8 ``(N, h, w)`` or ``(N, h, w, 1)``, white on black.
        labels: ``(N,)`` their classes ``0 .. K-1``.
        n: number of canvases.
        canvas: the canvas side (or ``(height, width)``).
        digits: ``(lo, hi)``: each canvas gets a uniform number of digits in ``lo..hi``.
        scale: ``(lo, hi)``: each digit's source image is resized by a uniform factor in this range;
            default: the source side becomes 16..28 pixels (:data:`DEFAULT_DIGIT_SIDE`).
        max_overlap: the largest share of the smaller of two boxes that their overlap may cover.
        threshold: a pixel is stroke (in the box and the mask) at ``threshold * 255`` ink or more.
        seed: all randomness comes from it.

    Returns:
        An :class:`~striate.data.annotated.AnnotatedSplit`: images ``(n, H, W, 1)`` uint8, per image
        boxes ``(k, 4)`` xyxy and labels ``(k,)``, masks ``(n, H, W)`` uint8 (0 background, label + 1
        on strokes, 255 where strokes of two classes cross).
    """
    src, src_labels = _source(images, labels)
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ValueError(f"n must be a non-negative int (the number of canvases). Received: n={n!r}.")
    ch, cw = (int(canvas), int(canvas)) if np.isscalar(canvas) else (int(canvas[0]), int(canvas[1]))
    lo_k, hi_k = _range(digits, "digits", int)
    h, w = src.shape[1:]
    lo_s, hi_s = _range(scale if scale is not None else (DEFAULT_DIGIT_SIDE[0] / max(h, w),
                                                         DEFAULT_DIGIT_SIDE[1] / max(h, w)), "scale")
    if round(hi_s * h) > ch or round(hi_s * w) > cw:
        raise ValueError(f"A digit scaled by up to {hi_s:g} ({round(hi_s * h)}x{round(hi_s * w)} pixels) does not fit "
                         f"a {ch}x{cw} canvas. Received: scale={scale!r}, canvas={canvas!r}. Use a smaller scale "
                         f"or a larger canvas.")
    cut = threshold * 255.0
    rng = np.random.default_rng(seed)
    out_images = np.zeros((n, ch, cw), np.uint8)
    out_masks = np.zeros((n, ch, cw), np.uint8)
    out_boxes, out_labels = [], []
    for i in range(n):
        k = int(rng.integers(lo_k, hi_k + 1))
        ink, mask = out_images[i], out_masks[i]
        placed, classes = [], []
        for _ in range(k):
            j = int(rng.integers(len(src)))
            f = rng.uniform(lo_s, hi_s)
            sh, sw = max(1, round(f * h)), max(1, round(f * w))
            patch = resize_images(src[j][None, :, :, None], (sh, sw))[0, :, :, 0]  # (sh, sw) uint8
            stroke = patch >= cut
            if not stroke.any():
                continue  # a blank source image has nothing to find
            rows, cols = np.flatnonzero(stroke.any(axis=1)), np.flatnonzero(stroke.any(axis=0))
            for _ in range(_TRIES):
                top, left = int(rng.integers(0, ch - sh + 1)), int(rng.integers(0, cw - sw + 1))
                box = (left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1)
                if not _overlaps(box, placed, max_overlap):
                    break
            else:
                continue  # no room left for this digit on this canvas
            window = (slice(top, top + sh), slice(left, left + sw))
            np.maximum(ink[window], patch, out=ink[window])
            value = src_labels[j] + 1
            region = mask[window]  # a view: writes land in the canvas's mask
            free = stroke & (region == 0)
            clash = stroke & (region != 0) & (region != value)
            region[free] = value
            region[clash] = IGNORE
            placed.append(box)
            classes.append(src_labels[j])
        out_boxes.append(np.asarray(placed, np.float32).reshape(-1, 4))
        out_labels.append(np.asarray(classes, np.int64))
    return AnnotatedSplit(out_images[..., None], out_boxes, out_labels, masks=out_masks,
                          file_names=[f"{i:06d}.png" for i in range(n)])


def split_digest(split: AnnotatedSplit, prefix: str) -> list:
    """(name, bytes) items of a split's arrays, for :func:`~striate.data.annotated.fingerprint`."""
    items = [(f"{prefix}/images", np.ascontiguousarray(split.images).tobytes())]
    if split.masks is not None:
        items.append((f"{prefix}/masks", np.ascontiguousarray(split.masks).tobytes()))
    if split.boxes is not None:
        items.append((f"{prefix}/boxes", b"".join(b.tobytes() + b"|" + lab.tobytes() + b";"
                                                  for b, lab in zip(split.boxes, split.labels))))
    return items


def make_canvas_dataset(x_train, y_train, x_test, y_test, class_names, n_train: int, n_test: int, canvas=64,
                        digits=(1, 4), scale=None, seed: int = 0, name: str = "digits_anywhere",
                        **kwargs) -> AnnotatedDataset:
    """Training canvases from the source's training digits and test canvases from its test digits.

    The two splits use different seeds drawn from ``seed``, and never share a source digit. The task
    is ``"localisation"`` when ``digits == (1, 1)``, else ``"detection"``; masks are there either way
    (``mask_class_names``: ``"background"`` and the class names). ``category_ids`` are ``label + 1``,
    the mask values, as COCO files number categories from 1.

    Returns:
        An :class:`~striate.data.annotated.AnnotatedDataset` whose ``sha256`` is the digest of its
        arrays.
    """
    seeds = np.random.SeedSequence(seed).spawn(2)
    common = dict(canvas=canvas, digits=digits, scale=scale, **kwargs)
    train = make_canvases(x_train, y_train, n_train, seed=int(seeds[0].generate_state(1)[0]), **common)
    test = make_canvases(x_test, y_test, n_test, seed=int(seeds[1].generate_state(1)[0]), **common)
    names = [str(c) for c in class_names]
    task = "localisation" if tuple(int(d) for d in digits) == (1, 1) else "detection"
    sha = fingerprint(split_digest(train, "train") + split_digest(test, "test"))
    return AnnotatedDataset({"train": train, "test": test}, names, task, category_ids=range(1, len(names) + 1),
                            mask_class_names=["background"] + names, name=name, layout="generated", sha256=sha)


# ------------------------------------------------------------------------------ the named sets
# name -> (source data set, training canvases, test canvases, canvas side, digits per canvas)
CANVAS_SETS = {
    "digits_anywhere": ("digits", 6000, 1000, 64, (1, 4)),
    "mnist_anywhere": ("mnist", 20000, 2000, 64, (1, 4)),
    "digits_localisation": ("digits", 6000, 1000, 56, (1, 1)),
    "mnist_localisation": ("mnist", 20000, 2000, 56, (1, 1)),
}


# ------------------------------------------------------------------------------------ writing
def _merged(ds: AnnotatedDataset) -> dict:
    """All splits as one, ``{"": split}``; each file name keeps its split's name in front."""
    parts = list(ds.splits.items())
    return {"": AnnotatedSplit(np.concatenate([s.images for _, s in parts]),
                               [b for _, s in parts for b in s.boxes], [lab for _, s in parts for lab in s.labels],
                               masks=np.concatenate([s.masks for _, s in parts]),
                               file_names=[f"{n}_{f}" for n, s in parts for f in s.file_names])}


def write_canvas_folders(ds: AnnotatedDataset, out, layouts=("coco", "masks"), overwrite: bool = False,
                         params: dict | None = None, split_folders: bool = True) -> dict:
    """Write canvases as folders the readers load back, with a manifest of SHA-256 digests.

    ``out/detection/{train,test}/`` in the COCO layout (PNG images, ``_annotations.coco.json``) and
    ``out/segmentation/{train,test}/{images,masks}/`` in the mask layout with ``out/segmentation/
    classes.txt``; with ``split_folders=False`` all splits go together straight into
    ``out/detection/`` and ``out/segmentation/`` (the reader then holds out its own test part). ``out/manifest.json`` records each file's SHA-256, ``params`` (how the canvases
    were made) and, per layout folder, the digest that
    :func:`~striate.data.detection_folders.load_annotated_folder` computes for it (its ``sha256``),
    so a run that trained on the folder names exactly these files.

    Everything is written into a temporary folder beside ``out`` and moved into place at the end:
    ``out`` is complete or absent. An existing ``out`` is refused unless ``overwrite``.

    Returns:
        The manifest (a dict).
    """
    import json
    import os
    import shutil
    import tempfile

    from ..atomic import atomic_write_text
    from .detection_folders import write_coco_split, write_mask_split
    from .download import sha256_file

    out = os.path.abspath(os.fspath(out))
    bad = [lay for lay in layouts if lay not in ("coco", "masks")]
    if bad or not layouts:
        raise ValueError(f"layouts must be some of 'coco' and 'masks'. Received: layouts={layouts!r}.")
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} exists; not overwriting it. Choose another folder or pass overwrite=True "
                              "(--overwrite).")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-canvases-", dir=parent)
    try:
        folders = {}
        for layout in layouts:
            sub = "detection" if layout == "coco" else "segmentation"
            root = os.path.join(tmp, sub)
            written = []
            for split_name, split in (ds.splits if split_folders else _merged(ds)).items():
                folder = os.path.join(root, split_name) if split_name else root
                if layout == "coco":
                    written += write_coco_split(split, folder, ds.class_names, ds.category_ids)
                else:
                    written += write_mask_split(split, folder)
            if layout == "masks":
                atomic_write_text(os.path.join(root, "classes.txt"), "\n".join(ds.mask_class_names) + "\n")
                written.append(os.path.join(root, "classes.txt"))
            files = {os.path.relpath(p, root).replace(os.sep, "/"): sha256_file(p) for p in written}
            folders[sub] = {"layout": layout, "sha256": fingerprint(files.items()), "files": dict(sorted(files.items()))}
        manifest = {"name": ds.name, "task": ds.task, "class_names": ds.class_names,
                    "arrays_sha256": ds.sha256, "params": params or {}, "folders": folders}
        atomic_write_text(os.path.join(tmp, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
