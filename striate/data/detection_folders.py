"""Detection and segmentation data a user already has: COCO JSON, YOLO and mask folders.

:func:`detect_layout` says what a folder holds; :func:`load_annotated_folder` reads it into an
:class:`~striate.data.annotated.AnnotatedDataset`. The layouts, with split folders (``train/``,
``val/`` or ``valid/``, ``test/``) or without them (then a seeded split is made here, stratified by
each image's first object class where possible):

COCO detection (``task="detection"``)::

    DIR/train/_annotations.coco.json   # or any single *.json with images, annotations, categories
    DIR/train/<images named by file_name>
    DIR/valid/..., DIR/test/...        # or the JSON and the images directly in DIR

  ``bbox`` is ``[x, y, w, h]`` in pixels; categories may have any ids (class ``i`` is the ``i``-th
  smallest id, ``category_ids`` keeps the ids; a category without boxes that is only the
  supercategory of others, as some exporters write, is not a class); crowd boxes (``iscrowd: 1``) are kept with
  ``iscrowd`` set, for training code to leave out and metrics to ignore; images without boxes are
  negatives.

YOLO (``task="detection"``)::

    DIR/data.yaml                      # names: [a, b, ...]  or  names: {0: a, 1: b, ...}
    DIR/images/{train,val,test}/*.jpg  and  DIR/labels/{train,val,test}/*.txt
    (or DIR/{train,valid,test}/images and .../labels, as Roboflow writes it; or DIR/images, DIR/labels)

  one ``class cx cy w h`` line per box, normalised by the image's width and height; a polygon line
  (``class x1 y1 x2 y2 ...``) counts as the box around it; an image without a label file is a negative.

Segmentation masks (``task="segmentation"``)::

    DIR/{train,val,test}/images/*      DIR/{train,val,test}/masks/<same stem>.png
    (or DIR/images and DIR/masks)      DIR/classes.txt (optional; one class name per line)

  the pixel value is the class index, 255 is ignored. An ``images/`` folder with ``masks/`` beside
  it is always this layout, never two classes named "images" and "masks".

Every file is checked on the way in: boxes inside their image and not empty, masks the size of their
image, class ids known; a broken file raises a ValueError of one line naming the file and the entry.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .annotated import AnnotatedDataset, AnnotatedSplit, fingerprint
from .download import sha256_file
from .image_folder import IMAGE_EXTENSIONS, _open_errors, _pillow

__all__ = ["DataLayout", "detect_layout", "load_annotated_folder", "write_coco_split", "write_mask_split",
           "COCO_FILE", "SPLIT_NAMES"]

COCO_FILE = "_annotations.coco.json"
# folder name -> split name; "valid" is what Roboflow writes
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_EDGE_TOLERANCE = 0.5  # pixels a box may stick out of its image (rounding in exporters); it is clipped


@dataclass
class DataLayout:
    """What :func:`detect_layout` found: the task, the layout and the split folders.

    ``splits`` maps ``"train"``/``"val"``/``"test"`` to the folders that hold them (for YOLO, the
    images folder); empty when the data are not split into folders.
    """

    task: str                    # "detection", "segmentation" or "classification"
    layout: str                  # "coco", "yolo", "masks" or "image_folder"
    root: str
    splits: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------- detection
def _split_dirs(root: str) -> dict:
    found = {}
    for name in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, name)) and name.lower() in SPLIT_NAMES:
            split = SPLIT_NAMES[name.lower()]
            if split in found:
                raise ValueError(f"{root}: both {os.path.basename(found[split])}/ and {name}/ look like the {split} "
                                 f"split. Keep one of them.")
            found[split] = os.path.join(root, name)
    return found


def _coco_file(folder: str):
    """The COCO file of a folder: ``_annotations.coco.json``, else its only ``*.json`` with the COCO keys."""
    if os.path.isfile(os.path.join(folder, COCO_FILE)):
        return os.path.join(folder, COCO_FILE)
    candidates = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.lower().endswith(".json") and os.path.isfile(path) and name != "manifest.json":
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue  # not a COCO file; a broken one named like the default is reported when read
            if isinstance(doc, dict) and {"images", "annotations", "categories"} <= set(doc):
                candidates.append(path)
    if len(candidates) > 1:
        raise ValueError(f"{folder}: {len(candidates)} COCO files ({', '.join(os.path.basename(c) for c in candidates)});"
                         f" keep one per split folder, or name the one to use {COCO_FILE}.")
    return candidates[0] if candidates else None


def _is_masks(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "images")) and os.path.isdir(os.path.join(folder, "masks"))


def _yaml_file(root: str):
    for name in ("data.yaml", "data.yml"):
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    return None


def _yaml_split_dirs(root: str, yaml_path: str) -> dict:
    """split -> images folder named by data.yaml's ``train``/``val``/``test`` keys, where they exist.

    Paths are tried relative to the yaml's ``path`` key, to the folder of data.yaml, and (for the
    ``../train/images`` that some exporters write) with the leading ``../`` dropped.
    """
    try:
        import yaml
        with open(yaml_path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except Exception:  # noqa: BLE001 -- unreadable here: reading the names later reports it in one line
        return {}
    if not isinstance(doc, dict):
        return {}
    base = doc.get("path") if isinstance(doc.get("path"), str) else ""
    base = base if os.path.isabs(base) else os.path.join(root, base)
    found = {}
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        value = doc.get(key)
        if not isinstance(value, str):
            continue
        for cand in (os.path.join(base, value), os.path.join(root, value),
                     os.path.join(root, value[3:] if value.startswith("../") else value)):
            if os.path.isdir(cand):
                found[split] = os.path.normpath(cand)
                break
    return found if "train" in found else {}


def _yolo_splits(root: str) -> dict:
    """split -> images folder of a YOLO data set (images/<split>, <split>/images, or images alone)."""
    found = _yaml_split_dirs(root, _yaml_file(root))
    if found:
        return found
    images = os.path.join(root, "images")
    if os.path.isdir(images):
        found = {SPLIT_NAMES[n.lower()]: os.path.join(images, n) for n in sorted(os.listdir(images))
                 if n.lower() in SPLIT_NAMES and os.path.isdir(os.path.join(images, n))}
    if not found:
        found = {s: os.path.join(d, "images") for s, d in _split_dirs(root).items()
                 if os.path.isdir(os.path.join(d, "images"))}
    return found


def detect_layout(data_dir) -> DataLayout:
    """Which task and layout a folder holds (see the module docstring for the layouts).

    The order of the checks: ``data.yaml`` means YOLO; ``images/`` beside ``masks/`` (in the folder
    or in its split folders) means segmentation; a COCO JSON means COCO detection; sub-folders of
    images mean classification (one folder per class, :mod:`striate.data.image_folder`).

    Example:
        >>> detect_layout("shapes")   # doctest: +SKIP
        DataLayout(task='detection', layout='coco', root='shapes', splits={'train': 'shapes/train', ...})
    """
    root = os.fspath(data_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data_dir {root!r} is not a folder.")
    if _yaml_file(root):
        return DataLayout("detection", "yolo", root, _yolo_splits(root))
    splits = _split_dirs(root)
    if _is_masks(root):
        return DataLayout("segmentation", "masks", root, {})
    if splits and all(_is_masks(d) for d in splits.values()):
        return DataLayout("segmentation", "masks", root, splits)
    if splits and any(_is_masks(d) for d in splits.values()):
        odd = [os.path.basename(d) for d in splits.values() if not _is_masks(d)]
        raise ValueError(f"{root}: some split folders hold images/ and masks/ but {', '.join(odd)} does not. "
                         "Give every split folder both.")
    if splits and all(_coco_file(d) for d in splits.values()):
        return DataLayout("detection", "coco", root, splits)
    if splits and any(_coco_file(d) for d in splits.values()):
        odd = [os.path.basename(d) for d in splits.values() if not _coco_file(d)]
        raise ValueError(f"{root}: split folder(s) {', '.join(odd)} hold no COCO file ({COCO_FILE} or one *.json "
                         "with images, annotations and categories), unlike the others. Add one to each.")
    if _coco_file(root):
        return DataLayout("detection", "coco", root, {})
    if os.path.isdir(os.path.join(root, "images")) and os.path.isdir(os.path.join(root, "labels")):
        raise ValueError(f"{root}: images/ and labels/ look like a YOLO data set, but data.yaml is missing. Add "
                         "data.yaml with the class names (names: [...]).")
    return DataLayout("classification", "image_folder", root, splits)


# ------------------------------------------------------------------------------------------ images
def _read_image(path: str, where: str) -> np.ndarray:
    """An image file as uint8 ``(H, W, C)``, C = 1 for grayscale files, else 3 (alpha dropped)."""
    Image = _pillow()
    if not os.path.isfile(path):
        raise ValueError(f"{where}: the image file {path} does not exist.")
    try:
        with Image.open(path) as im:
            gray = im.mode in ("1", "L", "I", "I;16", "F", "LA")
            a = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)
    except _open_errors(Image) as err:
        raise ValueError(f"{path}: cannot read this image ({err}). Remove it or replace it.") from None
    return a.reshape(a.shape[0], a.shape[1], -1)


def _same_channels(images: list) -> list:
    """Grayscale images repeated to RGB when any image of the data set is in colour."""
    if any(im.shape[-1] == 3 for im in images):
        return [np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im for im in images]
    return images


# -------------------------------------------------------------------------------------------- COCO
def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}).") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read this file ({err}).") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise ValueError(f"{path}: a COCO file needs the keys images, annotations and categories; "
                         f"{', '.join(missing)} missing.")
    return doc


def _coco_categories(path: str, doc: dict) -> dict:
    cats = {}
    for i, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise ValueError(f"{path}: categories[{i}] needs an integer 'id' (and a 'name'). Received: {c!r}.")
        if c["id"] in cats:
            raise ValueError(f"{path}: categories[{i}] repeats the id {c['id']}. Give every category its own id.")
        cats[c["id"]] = str(c.get("name", c["id"]))
    return cats


def _read_coco_split(folder: str, path: str, doc: dict, cat_index: dict, read: list) -> AnnotatedSplit:
    """One COCO split folder and its parsed file; ``cat_index`` maps category id -> class index;
    appends the files read to ``read``."""
    read.append(path)
    images, by_id = [], {}
    for i, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{path}: images[{i}] needs an 'id' and a 'file_name'. Received: {im!r}.")
        if im["id"] in by_id:
            raise ValueError(f"{path}: images[{i}] repeats the image id {im['id']!r}.")
        by_id[im["id"]] = len(images)
        images.append(im)
    boxes = [[] for _ in images]
    labels = [[] for _ in images]
    crowd = [[] for _ in images]
    pixels = []
    for i, im in enumerate(images):
        file = os.path.join(folder, im["file_name"])
        a = _read_image(file, f"{path}: images[{i}] (file_name {im['file_name']!r})")
        read.append(file)
        h, w = a.shape[:2]
        if ("width" in im and im["width"] != w) or ("height" in im and im["height"] != h):
            raise ValueError(f"{path}: images[{i}] ({im['file_name']}) says {im.get('width')}x{im.get('height')} "
                             f"(width x height) but the file is {w}x{h}. Fix the entry or the image.")
        pixels.append(a)
    for j, ann in enumerate(doc["annotations"]):
        where = f"{path}: annotations[{j}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: expected an object with image_id, category_id and bbox. Received: {ann!r}.")
        if ann.get("image_id") not in by_id:
            raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not among the file's images.")
        if ann.get("category_id") not in cat_index:
            raise ValueError(f"{where}: category_id {ann.get('category_id')!r} is not among the categories "
                             f"(ids {sorted(cat_index)}).")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
            raise ValueError(f"{where}: bbox must be [x, y, width, height], four numbers. Received: {bbox!r}.")
        k = by_id[ann["image_id"]]
        h, w = pixels[k].shape[:2]
        x, y, bw, bh = (float(v) for v in bbox)
        box = _checked_box((x, y, x + bw, y + bh), w, h, f"{where} on {images[k]['file_name']}", f"bbox {bbox}")
        boxes[k].append(box)
        labels[k].append(cat_index[ann["category_id"]])
        crowd[k].append(bool(ann.get("iscrowd", 0)))
    return AnnotatedSplit(_same_channels(pixels), boxes, labels, crowd,
                          file_names=[im["file_name"] for im in images])


def _checked_box(box, w: int, h: int, where: str, shown: str):
    """An xyxy box inside a (w, h) image (clipped within the edge tolerance) or one line's refusal."""
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{where}: {shown} is an empty box (width or height <= 0). Fix or remove the entry.")
    t = _EDGE_TOLERANCE
    if x0 < -t or y0 < -t or x1 > w + t or y1 > h + t:
        raise ValueError(f"{where}: {shown} reaches outside the {w}x{h} image (box x {x0:g}..{x1:g}, "
                         f"y {y0:g}..{y1:g}). Fix or remove the entry.")
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h)))


def _umbrella_categories(docs) -> set:
    """Ids of categories that only group others: no box anywhere, and named as the supercategory of other
    categories (exporters such as Roboflow's add one, e.g. id 0 "cells" over "Platelets", "RBC", "WBC").
    They are not classes a model could ever be shown."""
    used, parents, by_id = set(), set(), {}
    for doc in docs:
        used |= {a.get("category_id") for a in doc["annotations"] if isinstance(a, dict)}
        for c in doc["categories"]:
            if isinstance(c, dict):
                by_id[c.get("id")] = c
                if c.get("supercategory") not in (None, "", "none", c.get("name")):
                    parents.add(c.get("supercategory"))
    return {cid for cid, c in by_id.items() if cid not in used and c.get("name") in parents}


def _load_coco(layout: DataLayout, read: list):
    folders = layout.splits or {"all": layout.root}
    paths = {s: _coco_file(f) for s, f in folders.items()}
    docs = {s: _load_json(p) for s, p in paths.items()}
    cats = {}
    for s, f in folders.items():
        for cid, name in _coco_categories(paths[s], docs[s]).items():
            if cats.setdefault(cid, name) != name:
                raise ValueError(f"{paths[s]}: category id {cid} is named {name!r} here but {cats[cid]!r} in "
                                 "another split. Use one list of categories for every split.")
    ids = [c for c in sorted(cats) if c not in _umbrella_categories(docs.values())]
    cat_index = {cid: i for i, cid in enumerate(ids)}
    splits = {s: _read_coco_split(f, paths[s], docs[s], cat_index, read) for s, f in folders.items()}
    return splits, [cats[c] for c in ids], ids, None


# -------------------------------------------------------------------------------------------- YOLO
def _yolo_names(path: str) -> list:
    from ..optional import require

    yaml = require("yaml", "data", "reading a YOLO data set's data.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())}).") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        try:
            index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{path}: names as a map must map class indices 0, 1, ... to names. "
                             f"Received keys: {list(names)}.") from None
        if sorted(index) != list(range(len(index))):
            raise ValueError(f"{path}: names must cover the class indices 0..{len(index) - 1} without gaps. "
                             f"Received indices: {sorted(index)}.")
        return [index[i] for i in range(len(index))]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise ValueError(f"{path}: needs 'names', a list of class names or a map from class index to name. "
                     f"Received: names={names!r}.")


def _labels_dir(images_dir: str) -> str:
    """The labels folder of an images folder: the last 'images' path component becomes 'labels'."""
    head, tail = os.path.split(os.path.normpath(images_dir))
    if tail == "images":
        return os.path.join(head, "labels")
    head2, tail2 = os.path.split(head)
    return os.path.join(head2, "labels", tail) if tail2 == "images" else os.path.join(head, "labels")


def _image_files(folder: str) -> list:
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def _read_yolo_split(images_dir: str, n_classes: int, read: list) -> AnnotatedSplit:
    labels_dir = _labels_dir(images_dir)
    pixels, boxes, labels, names = [], [], [], []
    for name in _image_files(images_dir):
        a = _read_image(os.path.join(images_dir, name), name)
        read.append(os.path.join(images_dir, name))
        h, w = a.shape[:2]
        label_path = os.path.join(labels_dir, os.path.splitext(name)[0] + ".txt")
        bs, ls = [], []
        if os.path.isfile(label_path):  # no label file: an image without objects
            read.append(label_path)
            with open(label_path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            for ln, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{label_path}: line {ln}"
                try:
                    vals = [float(v) for v in line.split()]
                except ValueError:
                    raise ValueError(f"{where}: expected 'class cx cy w h' (numbers). Received: {line.strip()!r}.") from None
                if len(vals) < 5 or (len(vals) > 5 and len(vals) % 2 == 0):
                    raise ValueError(f"{where}: expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...' for a polygon). "
                                     f"Received: {line.strip()!r}.")
                c = vals[0]
                if c != int(c) or not 0 <= c < n_classes:
                    raise ValueError(f"{where}: class {line.split()[0]} is not one of the {n_classes} classes of "
                                     f"data.yaml (0..{n_classes - 1}).")
                if len(vals) == 5:
                    cx, cy, bw, bh = vals[1:]
                    box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
                else:  # a polygon: its bounding box
                    xs, ys = vals[1::2], vals[2::2]
                    box = (min(xs), min(ys), max(xs), max(ys))
                box = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
                bs.append(_checked_box(box, w, h, where, "the box"))
                ls.append(int(c))
        pixels.append(a)
        boxes.append(bs)
        labels.append(ls)
        names.append(name)
    return AnnotatedSplit(_same_channels(pixels), boxes, labels, file_names=names)


def _load_yolo(layout: DataLayout, read: list):
    yaml_path = _yaml_file(layout.root)
    names = _yolo_names(yaml_path)
    read.append(yaml_path)
    folders = layout.splits or {"all": os.path.join(layout.root, "images")}
    for f in folders.values():
        if not os.path.isdir(f):
            raise ValueError(f"{layout.root}: no images folder {f} (expected images/{{train,val,test}}/ or "
                             f"{{train,valid,test}}/images/ beside data.yaml).")
    splits = {s: _read_yolo_split(f, len(names), read) for s, f in folders.items()}
    return splits, names, list(range(len(names))), None


# ------------------------------------------------------------------------------------------- masks
def _read_classes_txt(layout: DataLayout, read: list):
    for folder in [layout.root] + list(layout.splits.values()):
        path = os.path.join(folder, "classes.txt")
        if os.path.isfile(path):
            read.append(path)
            with open(path, encoding="utf-8") as f:
                names = [line.strip() for line in f.read().splitlines() if line.strip()]
            if not names:
                raise ValueError(f"{path}: no class names (expected one name per line, class 0 first).")
            return names
    return None


def _read_mask_split(folder: str, n_classes, read: list) -> AnnotatedSplit:
    Image = _pillow()
    image_dir, mask_dir = os.path.join(folder, "images"), os.path.join(folder, "masks")
    masks_by_stem = {os.path.splitext(f)[0]: f for f in os.listdir(mask_dir) if f.lower().endswith(".png")}
    pixels, masks, names = [], [], []
    for name in _image_files(image_dir):
        stem = os.path.splitext(name)[0]
        a = _read_image(os.path.join(image_dir, name), name)
        read.append(os.path.join(image_dir, name))
        if stem not in masks_by_stem:
            raise ValueError(f"{os.path.join(image_dir, name)}: no mask masks/{stem}.png for this image. Add it "
                             "(pixel value = class index, 255 = ignore) or remove the image.")
        mask_path = os.path.join(mask_dir, masks_by_stem.pop(stem))
        try:
            with Image.open(mask_path) as im:
                mode = im.mode
                m = np.asarray(im)
        except _open_errors(Image) as err:
            raise ValueError(f"{mask_path}: cannot read this mask ({err}).") from None
        read.append(mask_path)
        if m.ndim != 2 or mode not in ("L", "P", "I", "I;16", "1"):
            raise ValueError(f"{mask_path}: a mask must be a single-channel PNG of class indices; this one is {mode}. "
                             "Save the class index of each pixel as a grayscale or palette PNG.")
        if m.shape != a.shape[:2]:
            raise ValueError(f"{mask_path}: the mask is {m.shape[1]}x{m.shape[0]} but its image {name} is "
                             f"{a.shape[1]}x{a.shape[0]} (width x height). Masks must match their images.")
        values = np.unique(m)
        bad = values[(values != 255) & ((values < 0) | (values >= (n_classes if n_classes else 255)))]
        if len(bad):
            raise ValueError(f"{mask_path}: pixel value {int(bad[0])} is not a class index (classes.txt names "
                             f"{n_classes} classes, 0..{n_classes - 1}; 255 = ignore).")
        pixels.append(a)
        masks.append(m.astype(np.uint8))
        names.append(name)
    if masks_by_stem:
        orphan = sorted(masks_by_stem.values())[0]
        raise ValueError(f"{os.path.join(mask_dir, orphan)}: no image images/{os.path.splitext(orphan)[0]}.* for this "
                         f"mask ({len(masks_by_stem)} such masks). Add the image or remove the mask.")
    return AnnotatedSplit(_same_channels(pixels), masks=masks, file_names=names)


def _load_masks(layout: DataLayout, read: list):
    names = _read_classes_txt(layout, read)
    folders = layout.splits or {"all": layout.root}
    splits = {s: _read_mask_split(f, len(names) if names else None, read) for s, f in folders.items()}
    if names is None:
        top = max((int(np.max(np.where(m == 255, 0, m))) for sp in splits.values() for m in sp.masks), default=0)
        names = [str(i) for i in range(top + 1)]
    return splits, names, list(range(len(names))), names


# ----------------------------------------------------------------------------------------- the door
def load_annotated_folder(data_dir, test_fraction: float = 0.2, seed: int = 0) -> AnnotatedDataset:
    """Read a COCO, YOLO or mask folder (see :func:`detect_layout`) into an AnnotatedDataset.

    Args:
        data_dir: the folder.
        test_fraction: share of the images held out for test when the folder has no test or val split.
        seed: seed of that split (deterministic; stratified by each image's first object class).

    Returns:
        An :class:`~striate.data.annotated.AnnotatedDataset` with splits ``train``, ``test`` and ``val``
        where the folder has one (a folder with ``val`` but no ``test`` folder keeps ``val`` as both);
        ``sha256`` is the digest of the files read, by their paths relative to ``data_dir``.

    Example:
        >>> ds = load_annotated_folder("shapes")   # doctest: +SKIP
        >>> ds.task, ds.class_names, len(ds.train)  # doctest: +SKIP
        ('detection', ['circle', 'square'], 800)
    """
    layout = detect_layout(data_dir)
    if layout.task == "classification":
        raise ValueError(f"{layout.root}: no detection or segmentation data found (no data.yaml, no COCO JSON, no "
                         "images/ beside masks/). For classification, load it with load_dataset or "
                         "load_image_folder.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1). Received: test_fraction={test_fraction!r}.")
    read = []
    loader = {"coco": _load_coco, "yolo": _load_yolo, "masks": _load_masks}[layout.layout]
    splits, names, ids, mask_names = loader(layout, read)
    if "all" in splits or "train" not in splits:
        pool = splits.pop("all", None) or splits.pop("train")
        from .datasets import stratified_split
        if len(pool) < 2:
            raise ValueError(f"{layout.root}: {len(pool)} image(s); a train/test split needs at least 2.")
        train_idx, test_idx = stratified_split(pool.object_labels(), max(1, int(round(test_fraction * len(pool)))), seed)
        splits.setdefault("test", pool.subset(test_idx))
        splits["train"] = pool.subset(train_idx)
    elif "test" not in splits:
        if "val" in splits:
            splits["test"] = splits["val"]
        else:
            from .datasets import stratified_split
            pool = splits["train"]
            train_idx, test_idx = stratified_split(pool.object_labels(), max(1, int(round(test_fraction * len(pool)))), seed)
            splits["train"], splits["test"] = pool.subset(train_idx), pool.subset(test_idx)
    root = os.path.abspath(layout.root)
    sha = fingerprint((os.path.relpath(os.path.abspath(p), root).replace(os.sep, "/"), sha256_file(p)) for p in read)
    return AnnotatedDataset(splits, names, layout.task, category_ids=ids, mask_class_names=mask_names,
                            name=os.path.basename(os.path.normpath(layout.root)), layout=layout.layout,
                            source=layout.root, sha256=sha)


# ----------------------------------------------------------------------------------------- writers
def _save_png(array: np.ndarray, path: str) -> None:
    Image = _pillow()
    a = np.asarray(array, np.uint8)
    Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a).save(path, format="PNG")


def write_coco_split(split: AnnotatedSplit, folder, class_names, category_ids=None) -> list:
    """Write a split as a COCO folder: its images as PNGs and ``_annotations.coco.json``.

    Boxes are written as ``[x, y, w, h]``; category ``category_ids[i]`` (default ``i + 1``) is class
    ``i``. Returns the paths written. The folder must not hold a COCO file yet.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
    target = os.path.join(folder, COCO_FILE)
    if os.path.exists(target):
        raise FileExistsError(f"{target} exists; not overwriting it.")
    doc = {"info": {"description": "written by striate"}, "licenses": [],
           "categories": [{"id": int(c), "name": str(n), "supercategory": "none"} for c, n in zip(ids, class_names)],
           "images": [], "annotations": []}
    written = []
    for i, name in enumerate(split.file_names):
        image = split.images[i]
        _save_png(image, os.path.join(folder, name))
        written.append(os.path.join(folder, name))
        doc["images"].append({"id": i + 1, "file_name": name, "height": int(image.shape[0]), "width": int(image.shape[1])})
        crowd = split.iscrowd[i] if split.iscrowd is not None else np.zeros(len(split.boxes[i]), bool)
        for box, label, c in zip(split.boxes[i], split.labels[i], crowd):
            x0, y0, x1, y1 = (float(v) for v in box)
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1,
                                       "category_id": int(ids[int(label)]), "bbox": [x0, y0, x1 - x0, y1 - y0],
                                       "area": (x1 - x0) * (y1 - y0), "iscrowd": int(c)})
    from ..atomic import atomic_write_text
    atomic_write_text(target, json.dumps(doc, indent=1) + "\n")
    return written + [target]


def write_mask_split(split: AnnotatedSplit, folder) -> list:
    """Write a split as a mask folder: ``images/<name>.png`` and ``masks/<name>.png``. Returns the paths."""
    folder = os.fspath(folder)
    written = []
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for i, name in enumerate(split.file_names):
        stem = os.path.splitext(name)[0]
        for sub, array in (("images", split.images[i]), ("masks", split.masks[i])):
            path = os.path.join(folder, sub, stem + ".png")
            _save_png(array, path)
            written.append(path)
    return written
