"""Classification metrics on plain arrays: accuracy, top-k accuracy, confusion matrix, per-class accuracy."""
from __future__ import annotations

import numpy as np


def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer class indices. Received: shape={y.shape}, "
                         f"dtype={y.dtype}.")
    return y


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the labels, in [0, 1].

    Example::

        >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
        0.75
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length. Received: {len(y_true)} and {len(y_pred)}.")
    return float((y_true == y_pred).mean()) if y_true.size else float("nan")


def top_k_accuracy(y_true, scores, k: int = 5) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores (a tie with the label counts for it).

    Shape: ``y_true`` ``(n,)``, ``scores`` ``(n, num_classes)`` (logits or probabilities).
    """
    y_true = _labels(y_true, "y_true")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0]:
        raise ValueError(f"scores must have shape (n, num_classes) with n = len(y_true) = {len(y_true)}. "
                         f"Received: scores.shape={scores.shape}.")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must lie in [1, num_classes={scores.shape[1]}]. Received: k={k}.")
    # the label is in the top k iff fewer than k classes score strictly higher than it
    true_scores = scores[np.arange(len(y_true)), y_true][:, None]
    rank = (scores > true_scores).sum(axis=1)
    return float((rank < k).mean()) if y_true.size else float("nan")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of samples of class ``i`` predicted as class ``j``.

    Shape: ``(num_classes, num_classes)``, int64; rows are true classes, columns predictions.

    Example::

        >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2)
        array([[1, 0],
               [1, 1]])
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}). Received: min={y.min()}, max={y.max()}.")
    # one bincount over the flattened (true, pred) pairs
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Accuracy within each true class (recall): ``diag(cm) / row sums``; NaN for a class with no samples."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
