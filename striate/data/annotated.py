"""Images with boxes or masks: the containers of the localisation, detection and segmentation data.

A :class:`AnnotatedDataset` holds named splits (``train``, ``val``, ``test``), each an
:class:`AnnotatedSplit` of images with, per image, its boxes and their labels (detection and
localisation) and/or its mask (segmentation). The conventions:

* boxes are ``(k, 4)`` float32 ``(x0, y0, x1, y1)`` in the image's pixels (xyxy); ``labels`` are
  ``(k,)`` int64 class indices ``0 .. K-1`` into ``class_names``; ``category_ids[i]`` is class
  ``i``'s id in the data set's own files (a COCO ``category_id``, a YOLO class index);
* ``iscrowd`` ``(k,)`` bool marks COCO crowd regions: left out of training targets, and ignored
  (neither found nor missed) by :func:`striate.detection.mean_average_precision`;
* masks are ``(H, W)`` uint8 class indices, value ``v`` naming ``mask_class_names[v]``; 255 is
  "ignore" (not counted by losses or metrics);
* images are uint8 ``(H, W, C)``; a split whose images share one size holds them as one
  ``(N, H, W, C)`` array, otherwise as a list.

``sha256`` names exactly what was loaded (see :func:`fingerprint`), so that a run can record the data
it trained on.
"""
from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["AnnotatedSplit", "AnnotatedDataset", "fingerprint", "TASKS"]

TASKS = ("localisation", "detection", "segmentation")


def _stack_if_uniform(images):
    """One ``(N, H, W, C)`` array when every image has the same shape, else the list."""
    images = list(images)
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images


class AnnotatedSplit:
    """One split: images and their boxes and/or masks (see the module docstring for conventions).

    Args:
        images: uint8 images ``(H, W, C)``, a list or an ``(N, H, W, C)`` array.
        boxes: per image a ``(k, 4)`` xyxy array, or None when the split has no boxes.
        labels: per image a ``(k,)`` array of class indices (with ``boxes``).
        iscrowd: per image a ``(k,)`` bool array; default all False.
        masks: per image an ``(H, W)`` uint8 mask, or None.
        file_names: per image the file it came from (relative to its split folder), for messages.
    """

    def __init__(self, images, boxes=None, labels=None, iscrowd=None, masks=None, file_names=None):
        self.images = _stack_if_uniform(images) if not isinstance(images, np.ndarray) else images
        n = len(self.images)
        if boxes is not None:
            boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
            labels = [np.asarray(lab, np.int64).reshape(-1) for lab in labels]
            iscrowd = ([np.zeros(len(b), bool) for b in boxes] if iscrowd is None
                       else [np.asarray(c, bool).reshape(-1) for c in iscrowd])
            for what, seq in (("boxes", boxes), ("labels", labels), ("iscrowd", iscrowd)):
                if len(seq) != n:
                    raise ValueError(f"AnnotatedSplit needs one entry of {what} per image ({n}). Received: {len(seq)}.")
            for i, (b, lab, c) in enumerate(zip(boxes, labels, iscrowd)):
                if not len(b) == len(lab) == len(c):
                    raise ValueError(f"Image {i}: {len(b)} boxes but {len(lab)} labels and {len(c)} crowd flags.")
        if masks is not None:
            masks = masks if isinstance(masks, np.ndarray) else _stack_if_uniform(
                [np.asarray(m, np.uint8) for m in masks])
            if len(masks) != n:
                raise ValueError(f"AnnotatedSplit needs one mask per image ({n}). Received: {len(masks)}.")
        self.boxes, self.labels, self.iscrowd, self.masks = boxes, labels, iscrowd, masks
        self.file_names = list(file_names) if file_names is not None else [f"{i:06d}.png" for i in range(n)]

    def __len__(self):
        return len(self.images)

    def subset(self, index) -> "AnnotatedSplit":
        """The images at ``index`` (a sequence of ints), with their annotations."""
        index = [int(i) for i in index]
        pick = (lambda seq: None if seq is None else
                (seq[index] if isinstance(seq, np.ndarray) else [seq[i] for i in index]))
        return AnnotatedSplit(pick(self.images), pick(self.boxes), pick(self.labels), pick(self.iscrowd),
                              pick(self.masks), [self.file_names[i] for i in index])

    def targets(self, i: int, drop_crowd: bool = True):
        """``(boxes (k, 4), labels (k,))`` of image ``i`` for training: crowd regions left out, since
        they are no single object to find (metrics ignore detections on them instead)."""
        keep = ~self.iscrowd[i] if drop_crowd else np.ones(len(self.boxes[i]), bool)
        return self.boxes[i][keep], self.labels[i][keep]

    def one_box_per_image(self):
        """``(boxes (N, 4), labels (N,))`` of a localisation split (exactly one box in every image)."""
        counts = [len(b) for b in self.boxes]
        bad = [i for i, c in enumerate(counts) if c != 1]
        if bad:
            raise ValueError(f"Localisation needs exactly one box per image; {self.file_names[bad[0]]} has "
                             f"{counts[bad[0]]} ({len(bad)} such images). Use a detection recipe for these data.")
        return np.concatenate(self.boxes), np.concatenate(self.labels)

    def object_labels(self) -> np.ndarray:
        """One label per image for stratified splitting: its first box's class, or its mask's most common
        non-background class; -1 for an image without objects."""
        out = np.full(len(self), -1, np.int64)
        for i in range(len(self)):
            if self.labels is not None and len(self.labels[i]):
                out[i] = self.labels[i][0]
            elif self.masks is not None:
                m = np.asarray(self.masks[i])
                counts = np.bincount(m[(m != 0) & (m != 255)].ravel(), minlength=1)
                out[i] = int(counts.argmax()) if counts.sum() else -1
        return out

    def __repr__(self):
        parts = [f"{len(self)} images"]
        if self.boxes is not None:
            parts.append(f"{sum(len(b) for b in self.boxes)} boxes")
        if self.masks is not None:
            parts.append("masks")
        return f"AnnotatedSplit({', '.join(parts)})"


class AnnotatedDataset:
    """Named splits of annotated images, with their classes.

    Args:
        splits: ``{"train": AnnotatedSplit, "val": ..., "test": ...}`` (``val`` optional).
        class_names: names of the classes that ``labels`` (or, for segmentation, mask values) index.
        task: ``"localisation"``, ``"detection"`` or ``"segmentation"``.
        category_ids: each class's id in the data set's own files; default ``0 .. K-1``.
        mask_class_names: names of mask values (background first), where the splits have masks;
            default ``class_names`` for segmentation.
        name, layout, source: for messages and run records (``layout``: "coco", "yolo", "masks",
            "generated").
        sha256: a digest that names exactly these data (see :func:`fingerprint`).
    """

    def __init__(self, splits: dict, class_names, task: str, category_ids=None, mask_class_names=None,
                 name: str = "dataset", layout: str = "", source: str = "", sha256: str = ""):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}.")
        self.splits = dict(splits)
        self.class_names = [str(c) for c in class_names]
        self.task = task
        self.category_ids = list(range(len(self.class_names))) if category_ids is None else [int(c) for c in category_ids]
        if mask_class_names is None and task == "segmentation":
            mask_class_names = self.class_names
        self.mask_class_names = None if mask_class_names is None else [str(c) for c in mask_class_names]
        self.name, self.layout, self.source, self.sha256 = name, layout, source, sha256

    @property
    def train(self) -> AnnotatedSplit:
        return self.splits["train"]

    @property
    def val(self):
        return self.splits.get("val")

    @property
    def test(self) -> AnnotatedSplit:
        return self.splits["test"]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self):
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return (f"AnnotatedDataset({self.name!r}: {self.task}, {sizes}, {self.num_classes} classes, "
                f"layout={self.layout!r}, sha256={self.sha256[:12]}...)")


def fingerprint(items) -> str:
    """SHA-256 over named byte strings: ``items`` is an iterable of ``(name, bytes or hex digest)``.

    The digest of the sorted lines ``"<sha256 of the bytes>  <name>"`` (what ``sha256sum`` prints for a
    folder's files): two data sets with the same files under the same names get the same digest.
    """
    lines = []
    for name, blob in items:
        digest = blob if isinstance(blob, str) else hashlib.sha256(blob).hexdigest()
        lines.append(f"{digest}  {name}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
