"""Scores for semantic segmentation: the pixel confusion matrix, per-class IoU, mIoU, pixel accuracy.

Masks are ``(H, W)`` (or any shape, e.g. ``(N, H, W)``) integer class indices; pixels whose true
class is the ignore index (255) are not counted anywhere. Everything is read off one confusion
matrix, so scores over a whole data set are the scores of the summed matrices (accumulate
:func:`segmentation_confusion_matrix` over batches, then call :func:`segmentation_scores`).

A class that appears neither in the truth nor in the prediction has no IoU (0 / 0): it is NaN in
``per_class_iou`` and left out of ``mIoU``, the usual convention (PASCAL VOC, Cityscapes), so that a
test set without some class is not scored as if that class were missed. A class present in the truth
but never predicted, or predicted but absent, has IoU 0 and counts.

Example::

    >>> t = np.array([[0, 0], [1, 255]])
    >>> p = np.array([[0, 1], [1, 1]])
    >>> s = segmentation_scores(segmentation_confusion_matrix(t, p, num_classes=3))
    >>> s["mIoU"], s["pixel_accuracy"]
    (0.5, 0.6666666666666666)
"""
from __future__ import annotations

import numpy as np

__all__ = ["IGNORE_INDEX", "segmentation_confusion_matrix", "segmentation_scores"]

IGNORE_INDEX = 255  # the mask value of pixels that no loss or metric counts


def _mask(m, name: str) -> np.ndarray:
    m = np.asarray(getattr(m, "data", m))
    if m.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices (a mask). Received: dtype={m.dtype}. "
                        f"Take the argmax of per-pixel scores over the class axis first.")
    return m


def segmentation_confusion_matrix(y_true, y_pred, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel counts ``cm[i, j]`` of true class ``i`` predicted as ``j``, without ignored pixels.

    Args:
        y_true: true masks, integer class indices; ``ignore_index`` marks pixels not to count.
        y_pred: predicted masks of the same shape.
        num_classes: the number of classes (background included).
        ignore_index: the true-mask value that is skipped; ``None`` skips nothing.

    Shape: ``y_true``, ``y_pred`` any equal shape, e.g. ``(N, H, W)``; output
    ``(num_classes, num_classes)`` int64, rows true classes, columns predictions.
    """
    t, p = _mask(y_true, "y_true"), _mask(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be masks of the same shape. Received: {t.shape} and {p.shape}.")
    if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int. Received: num_classes={num_classes!r}.")
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    for name, m in (("y_true", t), ("y_pred", p)):
        if m.size and (m.min() < 0 or m.max() >= num_classes):
            bad = m[(m < 0) | (m >= num_classes)][0]
            raise ValueError(f"{name} holds class {bad}, outside 0..{num_classes - 1} (num_classes={num_classes})"
                             f"{' and not the ignore index ' + str(ignore_index) if ignore_index is not None else ''}.")
    # one bin per (true, predicted) pair: index true * K + predicted
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(cm) -> dict:
    """mIoU, pixel accuracy and per-class IoU from a confusion matrix.

    ``IoU_c = cm[c, c] / (sum of row c + sum of column c - cm[c, c])`` (true positives over true
    positives, false negatives and false positives); NaN for a class absent from truth and
    prediction, which ``mIoU`` leaves out. ``pixel_accuracy`` is the trace over the total.

    Returns:
        ``{"mIoU": float, "pixel_accuracy": float, "per_class_iou": [float per class],
        "num_pixels": int}``; the means are NaN for an empty matrix.
    """
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square confusion matrix. Received: shape {cm.shape}.")
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = cm.sum()
    present = ~np.isnan(iou)
    return {"mIoU": float(iou[present].mean()) if present.any() else float("nan"),
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "per_class_iou": [float(v) for v in iou], "num_pixels": int(total)}
