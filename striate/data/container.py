"""The :class:`Dataset` container, the stratified split and image-size arguments: what every source of
data (the known data sets of :mod:`.datasets`, image folders of :mod:`.image_folder`) builds on."""
from __future__ import annotations

import numpy as np

__all__ = ["Dataset", "stratified_split"]


# ---------------------------------------------------------------------------------------- container
class Dataset:
    """Train and test images with integer labels, in memory.

    Args:
        x_train, x_test: images, NHWC ``(N, H, W, C)``; uint8 0..255 for every built-in data set.
        y_train, y_test: integer labels ``(N,)`` in ``0 .. num_classes - 1`` (stored as int64).
        class_names: one name per class; default ``["0", "1", ...]``.
        name: a short name for messages and checkpoints.

    Example:
        >>> ds = st.data.load_dataset("digits")
        >>> ds.x_train.shape, ds.input_shape, ds.num_classes
        ((1437, 8, 8, 1), (8, 8, 1), 10)
    """

    def __init__(self, x_train, y_train, x_test, y_test, class_names=None, name: str = "dataset"):
        x_train, x_test = np.asarray(x_train), np.asarray(x_test)
        for arg, x in (("x_train", x_train), ("x_test", x_test)):
            if x.ndim != 4:
                raise ValueError(
                    f"{arg} must be 4D (num_images, height, width, channels). Received: shape {x.shape}. "
                    f"Add a channel axis to grayscale images with {arg}[..., None]."
                )
        if x_train.shape[1:] != x_test.shape[1:] and len(x_test):
            raise ValueError(
                f"x_train and x_test must hold images of one shape. Received: {x_train.shape[1:]} and "
                f"{x_test.shape[1:]}."
            )
        y_train, y_test = self._labels(y_train, "y_train", len(x_train)), self._labels(y_test, "y_test", len(x_test))
        top = int(max(y_train.max(initial=-1), y_test.max(initial=-1)))
        if class_names is None:
            class_names = [str(i) for i in range(top + 1)]
        class_names = [str(n) for n in class_names]
        if top >= len(class_names):
            raise ValueError(
                f"Labels must lie in 0 .. len(class_names) - 1 = {len(class_names) - 1}. Received: a label {top}."
            )
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.class_names = class_names
        self.name = name

    @staticmethod
    def _labels(y, arg: str, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"{arg} must be 1D with one label per image ({n}). Received: shape {y.shape}.")
        if len(y) and not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{arg} must hold integer class labels. Received: dtype {y.dtype}.")
        if len(y) and y.min() < 0:
            raise ValueError(f"{arg} must be non-negative class indices. Received: min {y.min()}.")
        return y.astype(np.int64, copy=False)

    @property
    def input_shape(self) -> tuple:
        """``(H, W, C)`` of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self):
        return (f"Dataset({self.name!r}: train {len(self.x_train)}, test {len(self.x_test)}, "
                f"input_shape={self.input_shape}, dtype={self.x_train.dtype}, num_classes={self.num_classes})")


# ------------------------------------------------------------------------------------------ splits
def stratified_split(y, n_test: int, seed: int = 0):
    """Split indices so each class keeps its share in the test set; deterministic for a seed.

    Each class gets ``n_test * count / N`` test images rounded by largest remainder (so the total is
    exactly ``n_test``); which images is a seeded permutation within the class.

    Returns:
        ``(train_idx, test_idx)``, both sorted int64 arrays.
    """
    y = np.asarray(y)
    n = len(y)
    if not 0 <= n_test <= n:
        raise ValueError(f"n_test must lie in 0..{n} (the number of samples). Received: n_test={n_test}.")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    ideal = counts * (n_test / n) if n else counts * 0.0
    take = np.floor(ideal).astype(np.int64)
    short = n_test - int(take.sum())
    # Largest remainders first; a stable sort breaks ties by class order.
    take[np.argsort(-(ideal - take), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(n, bool)
    for k in range(len(classes)):  # a loop over classes, not samples
        members = np.flatnonzero(inverse == k)
        test_mask[rng.permutation(members)[: take[k]]] = True
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def _size_pair(size) -> tuple:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width). Received: {size!r}.") from None
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive. Received: {size!r}.")
    return h, w

