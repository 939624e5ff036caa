"""Scores for detection and localisation: COCO's mean average precision, class accuracy and box IoU.

:func:`mean_average_precision` follows the COCO evaluation (the bbox protocol of the COCO API's
``COCOeval``, area range "all", at most 100 detections per image and category), so its ``mAP`` and
``mAP50`` are the two figures detection papers quote:

* for every category and IoU threshold, the detections of all images are ranked by score; a
  detection is a true positive when it is matched to a ground-truth box of its category with IoU at
  least the threshold, greedily in score order, each box matched at most once;
* crowd boxes (``iscrowd=1``) are regions that may hold many objects: a detection matched to one is
  ignored (neither true nor false positive), a crowd box never counts as a miss, and the IoU with a
  crowd box divides the overlap by the detection's own area;
* the precision-recall curve is made monotone and read at the 101 recalls 0, 0.01, ..., 1
  (interpolated precision); AP is their mean, and categories without any (non-crowd) ground truth
  are left out of the mean;
* equal scores keep the order they were given in: images in list order, detections in their order
  within an image (a stable sort, as COCO's mergesort).

Example::

    >>> gt = [{"boxes": [[0, 0, 10, 10]], "labels": [3]}]
    >>> pred = [{"boxes": [[0, 0, 10, 8]], "scores": [0.9], "labels": [3]}]   # IoU 0.8
    >>> r = mean_average_precision(pred, gt)
    >>> round(r["mAP50"], 6), round(r["mAP"], 6)   # found at IoU 0.5, ..., 0.8: 7 of 10 thresholds
    (1.0, 0.7)
"""
from __future__ import annotations

import numpy as np

from .boxes import as_boxes

__all__ = ["COCO_IOU_THRESHOLDS", "mean_average_precision", "crowd_box_iou", "localisation_scores",
           "paired_box_iou"]

# COCO's thresholds 0.5, 0.55, ..., 0.95, made as the COCO API makes them (linspace, not arange), so
# that a threshold compares equal to its value there; the 101 recall points of interpolated precision.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def crowd_box_iou(det, gt, iscrowd) -> np.ndarray:
    """IoU of detections with ground-truth boxes, where a crowd box's IoU is overlap / area(detection).

    Shape: ``det`` ``(n, 4)``, ``gt`` ``(m, 4)`` xyxy, ``iscrowd`` ``(m,)``; output ``(n, m)``.
    """
    det = as_boxes(det, "det", "crowd_box_iou", matrix=True).astype(np.float64)
    gt = as_boxes(gt, "gt", "crowd_box_iou", matrix=True).astype(np.float64)
    # overlap width and height of every pair, (n, m); non-overlapping pairs give 0
    iw = np.minimum(det[:, None, 2], gt[None, :, 2]) - np.maximum(det[:, None, 0], gt[None, :, 0])
    ih = np.minimum(det[:, None, 3], gt[None, :, 3]) - np.maximum(det[:, None, 1], gt[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_d = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])  # (n,)
    area_g = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])      # (m,)
    union = np.where(np.asarray(iscrowd, bool)[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _image_entry(entry, i: int, what: str, need_scores: bool):
    """(boxes (n, 4) float64, labels (n,) int64, scores or crowd flags (n,)) of one image's dict."""
    if not isinstance(entry, dict):
        raise TypeError(f"{what}[{i}] must be a dict with 'boxes' and 'labels'"
                        f"{' and scores' if need_scores else ''}. Received: {type(entry).__name__}.")
    missing = [k for k in ("boxes", "labels") + (("scores",) if need_scores else ()) if k not in entry]
    if missing:
        raise ValueError(f"{what}[{i}] lacks {', '.join(repr(k) for k in missing)}. Received keys: {sorted(entry)}.")
    boxes = as_boxes(entry["boxes"], f"{what}[{i}]['boxes']", "mean_average_precision", matrix=True)
    n = len(boxes)
    labels = np.asarray(entry["labels"]).reshape(-1)
    if len(labels) and labels.dtype.kind not in "iu":
        raise TypeError(f"{what}[{i}]['labels'] must hold integer category ids. Received: dtype={labels.dtype}.")
    key, default = ("scores", None) if need_scores else ("iscrowd", np.zeros(n))
    extra = np.asarray(entry.get(key, default), np.float64).reshape(-1)
    for name, a in (("labels", labels), (key, extra)):
        if len(a) != n:
            raise ValueError(f"{what}[{i}]['{name}'] must have one entry per box ({n}). Received: {len(a)}.")
    return boxes.astype(np.float64), labels.astype(np.int64), extra


def _match(ious, crowd, thresholds):
    """Greedy COCO matching of score-sorted detections to one image's boxes of one category.

    Args:
        ious: ``(D, G)``, detections sorted by score, boxes ordered non-crowd first.
        crowd: ``(G,)`` bool.
        thresholds: ``(T,)``.

    Returns:
        ``matched`` and ``ignored``, ``(T, D)`` bool: a detection matched to a non-crowd box is a
        true positive, one matched to a crowd box is ignored, an unmatched one is a false positive.
    """
    n_t, (n_d, n_g) = len(thresholds), ious.shape
    matched, ignored = np.zeros((n_t, n_d), bool), np.zeros((n_t, n_d), bool)
    if n_d == 0 or n_g == 0:
        return matched, ignored
    floors = np.minimum(thresholds, 1 - 1e-10).tolist()  # COCO's cap: an IoU of 1 still matches at 1.0
    is_crowd = [bool(c) for c in crowd]
    taken = [[False] * n_g for _ in range(n_t)]
    # a detection below the lowest threshold with every box matches nothing: skip it (most do). Plain
    # Python lists: an image holds a handful of boxes, too few for NumPy to pay off.
    for d in np.flatnonzero(ious.max(axis=1) >= min(floors)).tolist():
        row = ious[d].tolist()
        for t in range(n_t):
            best, best_iou = -1, floors[t]
            for g in range(n_g):  # non-crowd boxes first, then crowd ones
                if taken[t][g] and not is_crowd[g]:
                    continue  # a box is found once; a crowd region can absorb any number of detections
                if best >= 0 and not is_crowd[best] and is_crowd[g]:
                    break  # a real box beats any crowd region
                if row[g] >= best_iou:  # >=: among equal IoUs the later box wins, as in COCO
                    best, best_iou = g, row[g]
            if best >= 0:
                matched[t, d], ignored[t, d] = True, is_crowd[best]
                taken[t][best] = True
    return matched, ignored


def _average_precision(scores, matched, ignored, n_positives):
    """COCO's 101-point interpolated AP for each threshold, from the detections of all images.

    Shapes: scores ``(D,)`` in image order; matched, ignored ``(T, D)``. Returns ``(T,)``.
    """
    order = np.argsort(-scores, kind="mergesort")  # stable: equal scores keep image order
    tp = np.cumsum(matched[:, order] & ~ignored[:, order], axis=1, dtype=np.float64)   # (T, D)
    fp = np.cumsum(~matched[:, order] & ~ignored[:, order], axis=1, dtype=np.float64)  # (T, D)
    ap = np.zeros(len(matched))
    for t in range(len(matched)):
        recall = tp[t] / n_positives
        precision = tp[t] / (tp[t] + fp[t] + np.spacing(1))
        # the envelope: precision at recall r is the best precision at any recall >= r
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, _RECALL_POINTS, side="left")  # first detection reaching each recall
        q = np.zeros(len(_RECALL_POINTS))
        reached = at < len(precision)
        q[reached] = precision[at[reached]]
        ap[t] = q.mean()
    return ap


def mean_average_precision(predictions, ground_truth, iou_thresholds=None, max_detections: int = 100) -> dict:
    """COCO mean average precision of detections (bbox, area "all").

    Args:
        predictions: one dict per image: ``boxes`` ``(n, 4)`` xyxy in pixels, ``scores`` ``(n,)``,
            ``labels`` ``(n,)`` integer category ids (any ids, e.g. a COCO file's own).
        ground_truth: one dict per image, in the same order: ``boxes`` ``(m, 4)`` xyxy, ``labels``
            ``(m,)``, optional ``iscrowd`` ``(m,)`` (0/1). An image without boxes is a negative:
            every detection on it is a false positive.
        iou_thresholds: the thresholds that ``mAP`` averages over; default COCO's 0.5:0.95 in steps
            of 0.05 (:data:`COCO_IOU_THRESHOLDS`).
        max_detections: detections kept per image and category, the highest scores (COCO's maxDets).

    Returns:
        A dict: ``mAP`` (mean over categories and ``iou_thresholds``), ``mAP50`` (IoU 0.5),
        ``mAP75`` (IoU 0.75), ``per_class`` and ``per_class_AP50`` (``{category id: AP}``, for the
        categories with at least one non-crowd box), ``num_classes`` (how many categories the means
        cover). The means are NaN when no image has a non-crowd box.

    Categories are those of the ground truth; detections of other categories cannot be true and
    cannot change a category's AP, so they are left out (as COCO does).
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"predictions and ground_truth must hold one entry per image. Received: "
                         f"{len(predictions)} and {len(ground_truth)} images.")
    if not (isinstance(max_detections, (int, np.integer)) and max_detections >= 1):
        raise ValueError(f"max_detections must be a positive int. Received: max_detections={max_detections!r}.")
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, np.float64).reshape(-1)
    if not len(thresholds) or np.any((thresholds <= 0) | (thresholds > 1)):
        raise ValueError(f"iou_thresholds must be numbers in (0, 1]. Received: iou_thresholds={iou_thresholds!r}.")
    # 0.5 and 0.75 are always evaluated, for mAP50 and mAP75
    all_thr = np.concatenate([thresholds, [0.5, 0.75]])
    preds = [_image_entry(p, i, "predictions", True) for i, p in enumerate(predictions)]
    gts = [_image_entry(g, i, "ground_truth", False) for i, g in enumerate(ground_truth)]
    categories = np.unique(np.concatenate([g[1] for g in gts])) if gts else np.zeros(0, np.int64)

    # per category: each image's score-sorted detections, their (T, D) match flags, the non-crowd box count
    found = {int(c): ([], [], [], [0]) for c in categories}
    for (pb, pl, ps), (gb, gl, gc) in zip(preds, gts):
        for c in np.intersect1d(np.union1d(pl, gl), categories):
            d, g = pl == c, gl == c
            # detections by score (stable), at most max_detections; boxes non-crowd first (stable)
            d_order = np.flatnonzero(d)[np.argsort(-ps[d], kind="mergesort")][:max_detections]
            g_order = np.flatnonzero(g)[np.argsort(gc[g] != 0, kind="mergesort")]
            crowd = gc[g_order] != 0
            m, ig = _match(crowd_box_iou(pb[d_order], gb[g_order], crowd), crowd, all_thr)
            scores, matched, ignored, n_positives = found[int(c)]
            scores.append(ps[d_order])
            matched.append(m)
            ignored.append(ig)
            n_positives[0] += int((~crowd).sum())

    per_class, per_class50, per_class75 = {}, {}, {}
    for c, (scores, matched, ignored, n_positives) in found.items():
        if n_positives[0] == 0:
            continue  # no box to find: the category has no AP (COCO's -1)
        ap = _average_precision(np.concatenate(scores), np.concatenate(matched, axis=1),
                                np.concatenate(ignored, axis=1), n_positives[0])
        per_class[c], per_class50[c], per_class75[c] = float(ap[:-2].mean()), float(ap[-2]), float(ap[-1])

    def mean(d):
        return float(np.mean(list(d.values()))) if d else float("nan")

    return {"mAP": mean(per_class), "mAP50": mean(per_class50), "mAP75": mean(per_class75),
            "per_class": per_class, "per_class_AP50": per_class50, "num_classes": len(per_class)}


# ------------------------------------------------------------------------------------ localisation
def paired_box_iou(a, b) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` for each ``i`` (the diagonal of :func:`box_iou`, without the rest).

    Shape: ``a``, ``b`` ``(n, 4)`` xyxy; output ``(n,)``.
    """
    a = as_boxes(a, "a", "paired_box_iou", matrix=True).astype(np.float64)
    b = as_boxes(b, "b", "paired_box_iou", matrix=True).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_box_iou: a and b must hold the same number of boxes. Received: "
                         f"{len(a)} and {len(b)}.")
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def localisation_scores(pred_boxes, pred_labels, true_boxes, true_labels, iou_threshold: float = 0.5) -> dict:
    """Scores of one predicted box and class per image against the one true object.

    Returns:
        ``accuracy`` (class right), ``mean_iou`` (IoU of the predicted with the true box, averaged
        over images), ``correct`` (class right and IoU >= ``iou_threshold``: the ILSVRC localisation
        criterion), each in [0, 1].

    Shape: boxes ``(n, 4)`` xyxy, labels ``(n,)``.

    Example::

        >>> localisation_scores([[0, 0, 4, 4]], [1], [[0, 0, 4, 2]], [1])
        {'accuracy': 1.0, 'mean_iou': 0.5, 'correct': 1.0}
    """
    iou = paired_box_iou(pred_boxes, true_boxes)
    pl, tl = np.asarray(pred_labels).reshape(-1), np.asarray(true_labels).reshape(-1)
    if not len(pl) == len(tl) == len(iou):
        raise ValueError(f"localisation_scores needs one box and one label per image. Received: {len(iou)} boxes, "
                         f"{len(pl)} predicted and {len(tl)} true labels.")
    if not len(iou):
        return {"accuracy": float("nan"), "mean_iou": float("nan"), "correct": float("nan")}
    right = pl == tl
    return {"accuracy": float(right.mean()), "mean_iou": float(iou.mean()),
            "correct": float((right & (iou >= iou_threshold)).mean())}
