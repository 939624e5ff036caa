"""Preprocessing and augmentation on whole batches (NumPy, no loop over images or pixels).

Every transform is a callable ``t(xb, rng) -> xb`` on a float batch, NHWC ``(N, H, W, C)``, as the
:class:`~striate.data.DataLoader` yields it (uint8 images scaled to [0, 1]). Random transforms draw
only from ``rng`` (a Generator or seed, see :func:`striate.random.check_random_state`), so the same
seed gives the same output. Transforms never modify their input in place.

Example:
    >>> from striate.data import load_dataset, DataLoader, transforms as T
    >>> ds = load_dataset("cifar10")                                   # doctest: +SKIP
    >>> train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),  # doctest: +SKIP
    ...                       T.Standardize().fit(ds.x_train)])
    >>> loader = DataLoader(ds.x_train, ds.y_train, batch_size=128, transform=train_tf, rng=0)  # doctest: +SKIP
"""
from __future__ import annotations

import numbers

import numpy as np

from ..random import check_random_state

__all__ = ["Transform", "Compose", "Standardize", "RandomCrop", "RandomHorizontalFlip", "PCALighting",
           "CenterCrop", "TenCrop", "Resize", "resize_images"]

_FIT_CHUNK = 4096  # images per chunk when fitting statistics: bounded float64 memory on big sets


def _batch(xb, name: str = "xb") -> np.ndarray:
    xb = np.asarray(xb)
    if xb.ndim != 4:
        hint = " If this is one image, add a batch axis with x[None]." if xb.ndim == 3 else ""
        raise ValueError(f"Expected 4D input (batch, height, width, channels), got shape {xb.shape}.{hint}")
    return xb


def _size(size, name: str = "size") -> tuple:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a (height, width) pair. Received: {name}={size!r}.") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive. Received: {name}={size!r}.")
    return h, w


def _crop_fits(h: int, w: int, ch: int, cw: int, what: str):
    if ch > h or cw > w:
        raise ValueError(f"Crop size ({ch}, {cw}) is larger than the {what} ({h}, {w}). Choose a smaller size "
                         f"or add padding.")


def _channel_moments(x: np.ndarray):
    """Per-channel mean ``(C,)`` and population covariance ``(C, C)`` of all pixels, in loader scale.

    One pass over chunks, each reduced by BLAS: ``S = 1^T d`` and ``M = d^T d`` with ``d`` the chunk's
    pixels ``(P, C)``. uint8 images are summed as integers 0..255 in float64, where every partial sum
    is exact (< 2**53 even for ImageNet-sized sets of moments), then scaled by 1/255; float images are
    shifted by the first chunk's mean first, so ``M/n - m m^T`` does not cancel catastrophically.
    """
    c = x.shape[-1]
    count = x[..., 0].size
    is_u8 = x.dtype == np.uint8
    shift = np.zeros(c) if is_u8 else x[:_FIT_CHUNK].reshape(-1, c).astype(np.float64).mean(axis=0)
    s, m = np.zeros(c), np.zeros((c, c))
    for i in range(0, len(x), _FIT_CHUNK):  # chunks bound the float64 copy (CIFAR: 50k images)
        d = x[i:i + _FIT_CHUNK].reshape(-1, c).astype(np.float64)         # (P, C)
        if not is_u8:
            d -= shift
        s += np.ones(len(d)) @ d                                           # (C,) = (P,) @ (P, C)
        m += d.T @ d                                                       # (C, C) = (C, P) @ (P, C)
    mean = s / count
    cov = m / count - np.outer(mean, mean)
    scale = 255.0 if is_u8 else 1.0
    return (mean + shift) / scale, cov / scale**2


class Transform:
    """Base class: ``__call__(xb, rng=None)``; ``fit(x)`` for transforms with statistics."""

    def __call__(self, xb, rng=None):
        raise NotImplementedError

    def fit(self, x):
        """Compute statistics from training images (no-op unless overridden); returns ``self``."""
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_")
                         and not isinstance(v, np.ndarray))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, all drawing from the same ``rng``.

    Example:
        >>> t = Compose([RandomHorizontalFlip(), RandomCrop(28, padding=2)])
        >>> t(np.zeros((4, 28, 28, 1), np.float32), rng=0).shape
        (4, 28, 28, 1)
    """

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose takes callables t(xb, rng). Received: {t!r}.")
        self.transforms = transforms

    def __call__(self, xb, rng=None):
        rng = check_random_state(rng)
        for t in self.transforms:
            xb = t(xb, rng)
        return xb

    def fit(self, x):
        for t in self.transforms:
            if hasattr(t, "fit"):
                t.fit(x)
        return self

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Standardize(Transform):
    """Per-channel standardisation: ``(x - mean) / std``, statistics from the training set.

    Args:
        mean, std: per-channel values ``(C,)``; or leave ``None`` and call :meth:`fit`.
        eps: added to ``std`` so a constant channel does not divide by zero.

    ``fit(x_train)`` computes the population mean and std over all pixels of each channel, on the
    scale the loader feeds (uint8 input is divided by 255 first).

    Example:
        >>> t = Standardize().fit(np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1))
        >>> float(t.mean[0]), round(float(t.std[0]), 4)
        (3.5, 2.2913)
    """

    def __init__(self, mean=None, std=None, eps: float = 1e-7):
        self.mean = None if mean is None else np.asarray(mean, np.float64).reshape(-1)
        self.std = None if std is None else np.asarray(std, np.float64).reshape(-1)
        self.eps = float(eps)

    def fit(self, x):
        mean, cov = _channel_moments(_batch(x, "x"))
        self.mean, self.std = mean, np.sqrt(np.diag(cov))
        return self

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        if self.mean is None or self.std is None:
            raise ValueError("Standardize has no statistics: call .fit(x_train) first or pass mean= and std=.")
        if xb.shape[-1] != len(self.mean):
            raise ValueError(f"Standardize was fitted on {len(self.mean)} channels; the batch has {xb.shape[-1]}.")
        dtype = xb.dtype if np.issubdtype(xb.dtype, np.floating) else np.float32
        return ((xb - self.mean.astype(dtype)) / (self.std + self.eps).astype(dtype)).astype(dtype, copy=False)

    def __repr__(self):
        fmt = (lambda a: None if a is None else np.round(a, 4).tolist())
        return f"Standardize(mean={fmt(self.mean)}, std={fmt(self.std)})"


def _gather_windows(xb: np.ndarray, top: np.ndarray, left: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """Crop window i of size (ch, cw) at (top[i], left[i]) from image i, by fancy indexing.

    Shape: (N, H, W, C) -> (N, ch, cw, C).
    """
    n = len(xb)
    rows = top[:, None] + np.arange(ch)                                  # (N, ch)
    cols = left[:, None] + np.arange(cw)                                 # (N, cw)
    return xb[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]   # (N, ch, cw, C)


class RandomCrop(Transform):
    """Random ``size`` crop at an independent offset per image, after zero padding.

    Args:
        size: crop ``(height, width)`` or an int.
        padding: zeros added on every side first (int or ``(ph, pw)``); the ResNet CIFAR recipe is
            ``RandomCrop(32, padding=4)`` (He et al. 2016, sec. 4.2).

    Shape:
        ``(N, H, W, C) -> (N, size_h, size_w, C)``; offsets are uniform over ``0 .. H + 2*ph - size_h``.
    """

    def __init__(self, size, padding=0):
        self.size = _size(size)
        self.padding = (0, 0) if padding in (0, None) else tuple(int(p) for p in (
            (padding, padding) if isinstance(padding, numbers.Integral) else padding))
        if len(self.padding) != 2 or min(self.padding) < 0:
            raise ValueError(f"padding must be a non-negative int or (ph, pw). Received: padding={padding!r}.")

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        rng = check_random_state(rng)
        ph, pw = self.padding
        if ph or pw:
            xb = np.pad(xb, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        n, h, w, _ = xb.shape
        ch, cw = self.size
        _crop_fits(h, w, ch, cw, "padded image")
        top = rng.integers(0, h - ch + 1, size=n)
        left = rng.integers(0, w - cw + 1, size=n)
        return _gather_windows(xb, top, left, ch, cw)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (one Bernoulli draw per image)."""

    def __init__(self, p: float = 0.5):
        if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1]. Received: p={p!r}.")
        self.p = float(p)

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        rng = check_random_state(rng)
        flip = rng.random(len(xb)) < self.p                               # (N,)
        return np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)


class PCALighting(Transform):
    """AlexNet's colour augmentation (Krizhevsky et al. 2012, sec. 4.1).

    ``fit`` eigen-decomposes the 3x3 covariance of the RGB values of all training pixels,
    ``C = sum_i lambda_i p_i p_i^T``. Each call adds to every pixel of image ``n`` the same vector
    ``sum_i alpha_ni * lambda_i * p_i`` with ``alpha_ni ~ N(0, alphastd)`` drawn once per image:
    intensity and colour of the illumination change, object identity does not.

    Args:
        alphastd: standard deviation of ``alpha`` (0.1 in the paper); 0 makes the transform the identity.
        eigval, eigvec: known eigenvalues ``(3,)`` and eigenvectors (columns of a ``(3, 3)``), instead of fit.

    Shape:
        ``(N, H, W, 3) -> (N, H, W, 3)``.
    """

    def __init__(self, alphastd: float = 0.1, eigval=None, eigvec=None):
        if not isinstance(alphastd, numbers.Real) or alphastd < 0:
            raise ValueError(f"alphastd must be a non-negative number. Received: alphastd={alphastd!r}.")
        self.alphastd = float(alphastd)
        self.eigval = None if eigval is None else np.asarray(eigval, np.float64).reshape(3)
        self.eigvec = None if eigvec is None else np.asarray(eigvec, np.float64).reshape(3, 3)

    def fit(self, x):
        x = _batch(x, "x")
        if x.shape[-1] != 3:
            raise ValueError(f"PCALighting needs RGB images (3 channels). Received: {x.shape[-1]} channels.")
        _, cov = _channel_moments(x)
        self.eigval, self.eigvec = np.linalg.eigh(cov)               # columns of eigvec are p_i
        return self

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        if xb.shape[-1] != 3:
            raise ValueError(f"PCALighting needs RGB images (3 channels). Received: {xb.shape[-1]} channels.")
        if self.alphastd == 0:
            return xb
        if self.eigval is None:
            raise ValueError("PCALighting has no eigen-decomposition: call .fit(x_train) first or pass eigval= "
                             "and eigvec=.")
        rng = check_random_state(rng)
        alpha = rng.normal(0.0, self.alphastd, size=(len(xb), 3))           # (N, 3), one draw per image
        shift = (alpha * self.eigval) @ self.eigvec.T                        # (N, 3) = (N, 3) @ (3, 3)
        return (xb + shift[:, None, None, :].astype(xb.dtype)).astype(xb.dtype, copy=False)


class CenterCrop(Transform):
    """The central ``size`` window (the extra pixel of an odd margin goes bottom/right)."""

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        _, h, w, _ = xb.shape
        ch, cw = self.size
        _crop_fits(h, w, ch, cw, "image")
        top, left = (h - ch) // 2, (w - cw) // 2
        return xb[:, top:top + ch, left:left + cw]


class TenCrop(Transform):
    """The ten test-time crops of AlexNet (sec. 4.1): four corners, centre, and their mirrors.

    Average a model's predictions over the ten to evaluate (``probs = mean_k softmax(model(crops[k]))``).
    Not for use inside a training :class:`Compose`: it adds an axis.

    Shape:
        ``(N, H, W, C) -> (10, N, size_h, size_w, C)``, in the order top-left, top-right, bottom-left,
        bottom-right, centre, then the same five mirrored left-right.
    """

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, xb, rng=None):
        xb = _batch(xb)
        _, h, w, _ = xb.shape
        ch, cw = self.size
        _crop_fits(h, w, ch, cw, "image")
        offsets = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
        crops = np.stack([xb[:, t:t + ch, l:l + cw] for t, l in offsets])   # (5, N, ch, cw, C)
        return np.concatenate([crops, crops[:, :, :, ::-1]])               # (10, N, ch, cw, C)


# ----------------------------------------------------------------------------------------- resizing
def _interp_axis(n_in: int, n_out: int):
    """Bilinear sampling along one axis with half-pixel centres (as Pillow/OpenCV, edge-clamped).

    Returns the lower indices, upper indices and upper weights, each (n_out,).
    """
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def resize_images(x, size, chunk: int = 1024) -> np.ndarray:
    """Bilinear resize of a batch to ``size``, vectorised over images (separable: rows, then columns).

    Intended for upsampling (e.g. CIFAR to AlexNet sizes); it does not low-pass before downsampling.
    uint8 input gives uint8 output (rounded); float input keeps its dtype.

    Shape:
        ``(N, H, W, C) -> (N, size_h, size_w, C)``.

    Example:
        >>> resize_images(np.zeros((2, 8, 8, 1), np.uint8), 16).shape
        (2, 16, 16, 1)
    """
    x = _batch(x, "x")
    oh, ow = _size(size, "size")
    n, h, w, c = x.shape
    if (oh, ow) == (h, w):
        return x.copy()
    r0, r1, ry = _interp_axis(h, oh)
    c0, c1, cx = _interp_axis(w, ow)
    ry, cx = ry[None, :, None, None], cx[None, None, :, None]
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(0, n, chunk):  # chunks bound the float32 temporaries
        part = x[i:i + chunk].astype(np.float32)
        rows = part[:, r0] * (1 - ry) + part[:, r1] * ry                   # (n, oh, W, C)
        both = rows[:, :, c0] * (1 - cx) + rows[:, :, c1] * cx             # (n, oh, ow, C)
        out[i:i + chunk] = np.clip(np.rint(both), 0, 255) if x.dtype == np.uint8 else both
    return out


class Resize(Transform):
    """Bilinear resize of every image to ``size`` (see :func:`resize_images`)."""

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, xb, rng=None):
        return resize_images(xb, self.size)
