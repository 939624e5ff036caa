"""Non-maximum suppression (greedy, as in every detector since Felzenszwalb et al. 2010, and
with torchvision's semantics): visit the boxes from the highest score down; keep a box unless its
IoU with a box already kept is greater than the threshold.
"""
from __future__ import annotations

import numpy as np

from ..validation import check_number
from .boxes import as_boxes, box_iou


def _scores(scores, n, owner):
    s = np.asarray(getattr(scores, "data", scores))
    if s.dtype.kind not in "iuf" or s.shape != (n,):
        raise ValueError(f"{owner}: scores must be a 1-D array of numbers, one per box ({n}). "
                         f"Received: scores.shape={s.shape}, dtype={s.dtype}.")
    return s


def nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes that survive non-maximum suppression, highest score first.

    A box is suppressed when its IoU with a higher-scoring kept box is greater than
    ``iou_threshold`` (equal is kept). Equal scores are visited in index order. The loop runs once
    per kept box, each pass one vectorised IoU against the boxes still in play.

    Args:
        boxes: ``(n, 4)`` xyxy.
        scores: ``(n,)``.
        iou_threshold: in [0, 1].

    Returns:
        int64 array ``(k,)`` of indices into ``boxes``, in decreasing order of score.

    Example::

        >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
        >>> st.detection.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)
        array([0, 2])
    """
    owner = "nms"
    boxes = as_boxes(boxes, "boxes", owner, matrix=True)
    scores = _scores(scores, len(boxes), owner)
    threshold = check_number(iou_threshold, "iou_threshold", 0.0, 1.0, owner=owner)
    order = np.argsort(-scores, kind="stable")  # stable: ties in index order
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best:best + 1], boxes[order])[0] <= threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes, scores, classes, iou_threshold: float) -> np.ndarray:
    """:func:`nms` within each class separately: boxes of different classes never suppress each
    other. Returns the kept indices of all classes together, highest score first (equal scores in
    index order).

    Shape:
        - boxes: ``(n, 4)`` xyxy; scores: ``(n,)``; classes: ``(n,)`` integers; output: ``(k,)`` int64.
    """
    owner = "batched_nms"
    boxes = as_boxes(boxes, "boxes", owner, matrix=True)
    scores = _scores(scores, len(boxes), owner)
    classes = np.asarray(getattr(classes, "data", classes))
    if classes.dtype.kind not in "iu" or classes.shape != (len(boxes),):
        raise ValueError(f"{owner}: classes must be a 1-D integer array, one class per box ({len(boxes)}). "
                         f"Received: classes.shape={classes.shape}, dtype={classes.dtype}.")
    kept = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
            for c in np.unique(classes)]
    keep = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    keep.sort()  # index order, so that the stable sort below breaks score ties by index
    return keep[np.argsort(-scores[keep], kind="stable")].astype(np.int64)
