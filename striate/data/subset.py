"""Parts of a data set: some of its classes (renumbered), a few training images per class, a held-out
validation split. Fine-tuning trains on such parts, and evaluating a fine-tuned model must cut the test
set the same way."""
from __future__ import annotations

import numpy as np

from .datasets import Dataset, stratified_split


def select_classes(ds: Dataset, classes) -> Dataset:
    """The data set restricted to ``classes``, renumbered ``0 .. k-1`` in the order given.

    Args:
        ds: a :class:`Dataset`.
        classes: at least two distinct class indices of ``ds``, e.g. ``[5, 6, 7, 8, 9]``.

    Example:
        >>> fives_up = select_classes(load_dataset("digits"), [5, 6, 7, 8, 9])
        >>> fives_up.class_names, int(fives_up.y_train.max())
        (['5', '6', '7', '8', '9'], 4)
    """
    classes = [int(c) for c in classes]
    n = len(ds.class_names)
    bad = [c for c in classes if not 0 <= c < n]
    if bad:
        raise ValueError(f"classes must be class indices of {ds.name}, 0..{n - 1}. Received: classes={classes}.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must name each class once. Received: classes={classes}.")
    if len(classes) < 2:
        raise ValueError("classes must name at least two classes: a model of one class has nothing to tell apart "
                         f"(its accuracy is always 100%). Received: classes={classes}.")
    lut = np.full(n, -1)
    lut[classes] = np.arange(len(classes))
    keep_tr, keep_te = lut[ds.y_train] >= 0, lut[ds.y_test] >= 0
    return Dataset(ds.x_train[keep_tr], lut[ds.y_train[keep_tr]], ds.x_test[keep_te], lut[ds.y_test[keep_te]],
                   [ds.class_names[c] for c in classes], name=ds.name)


def sample_per_class(ds: Dataset, per_class: int, seed=0) -> Dataset:
    """The data set with ``per_class`` training images of each class, drawn at random (seeded); the test
    images are all kept.

    Example:
        >>> few = sample_per_class(load_dataset("digits"), 10, seed=0)
        >>> len(few.y_train)
        100
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer. Received: per_class={per_class!r}.")
    rng = np.random.default_rng(seed)
    idx = []
    for c, name in enumerate(ds.class_names):
        members = np.flatnonzero(ds.y_train == c)
        if len(members) < per_class:
            raise ValueError(f"per_class={per_class}: class {name!r} of {ds.name} has only {len(members)} "
                             "training images.")
        idx.append(rng.choice(members, per_class, replace=False))
    idx = np.sort(np.concatenate(idx))
    return Dataset(ds.x_train[idx], ds.y_train[idx], ds.x_test, ds.y_test, ds.class_names, name=ds.name)


def validation_split(ds: Dataset, fraction: float, seed=0):
    """``(x_train, y_train, x_val, y_val)``: a stratified ``fraction`` of the training images held out
    for validation (``x_val``, ``y_val`` are None when it rounds to no image).

    Example:
        >>> x_tr, y_tr, x_val, y_val = validation_split(load_dataset("digits"), 0.1, seed=0)
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must lie in [0, 1). Received: fraction={fraction!r}.")
    x, y = ds.x_train, ds.y_train
    n_val = int(round(fraction * len(y)))
    if n_val == 0:
        return x, y, None, None
    train_idx, val_idx = stratified_split(y, n_test=n_val, seed=seed)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]
