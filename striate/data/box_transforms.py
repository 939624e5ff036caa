"""Augmentations that move boxes and masks with the image: flip, crop or translate, scale.

A detection or segmentation sample is an image with a *target*: a dict with any of ``boxes``
(``(k, 4)`` xyxy in pixels), ``labels`` ``(k,)``, ``iscrowd`` ``(k,)`` and ``mask`` (``(H, W)``
class indices). Every transform maps ``(image, target) -> (image, target)`` with the geometry
applied to all of them alike, so a box drawn into the image covers the same pixels afterwards:

* :func:`hflip`: ``x -> W - x``, so a box ``(x0, x1)`` becomes ``(W - x1, W - x0)``;
* :func:`crop`: a window ``(top, left, height, width)`` that may reach past the edges (padding:
  image 0, mask 255 = ignore), so it also translates; boxes shift by ``(-left, -top)``, are clipped
  to the window and dropped when less than ``min_visible`` of their area stays in view;
* :func:`rescale`: size ``(H, W) -> (round(s H), round(s W))``; the image is resized bilinearly, the
  mask by nearest neighbour (class indices must not be blended), boxes scale by the exact ratios.

The random classes draw only from ``rng`` (a Generator or seed), like :mod:`striate.data.transforms`,
and never modify their input in place.

Example:
    >>> import numpy as np
    >>> image = np.zeros((10, 20, 1), np.uint8)
    >>> target = {"boxes": np.array([[2.0, 1.0, 6.0, 5.0]]), "labels": np.array([3])}
    >>> hflip(image, target)[1]["boxes"]
    array([[14.,  1., 18.,  5.]])
"""
from __future__ import annotations

import numpy as np

from ..random import check_random_state
from .transforms import _interp_axis

__all__ = ["hflip", "crop", "rescale", "JointTransform", "JointCompose", "RandomHorizontalFlip", "RandomTranslate",
           "RandomScale", "RandomCrop"]

IGNORE = 255


def _image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"Expected one image (height, width, channels), got shape {image.shape}.")
    return image


def _copy_target(target: dict) -> dict:
    return {k: (np.array(v) if v is not None else None) for k, v in (target or {}).items()}


def hflip(image, target: dict):
    """Mirror left-right. Shape: image ``(H, W, C)``; boxes ``(k, 4)``; mask ``(H, W)``."""
    image = _image(image)
    w = image.shape[1]
    out = _copy_target(target)
    if out.get("boxes") is not None and len(out["boxes"]):
        b = out["boxes"]
        out["boxes"] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1).astype(b.dtype)
    if out.get("mask") is not None:
        out["mask"] = out["mask"][:, ::-1].copy()
    return image[:, ::-1].copy(), out


def _window(a, top: int, left: int, h: int, w: int, fill):
    """``a[top:top + h, left:left + w]`` where the window may reach past the edges (filled with ``fill``)."""
    out = np.full((h, w) + a.shape[2:], fill, a.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, a.shape[0]), min(left + w, a.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = a[r0:r1, c0:c1]
    return out


def crop(image, target: dict, top: int, left: int, height: int, width: int, min_visible: float = 0.3):
    """The window at ``(top, left)`` of size ``(height, width)``; it may reach past the image (translate).

    Boxes are shifted into the window and clipped; those keeping less than ``min_visible`` of their
    area are dropped with their labels and crowd flags.
    """
    image = _image(image)
    top, left, height, width = int(top), int(left), int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"crop needs a positive window size. Received: height={height}, width={width}.")
    out = _copy_target(target)
    if out.get("boxes") is not None and len(out["boxes"]):
        b = out["boxes"].astype(np.float64) - np.array([left, top, left, top])
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        clipped = np.clip(b, 0, [width, height, width, height])
        kept_area = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
        keep = kept_area >= min_visible * area
        keep &= kept_area > 0
        out["boxes"] = clipped[keep].astype(target["boxes"].dtype if hasattr(target["boxes"], "dtype") else np.float64)
        for key in ("labels", "iscrowd"):
            if out.get(key) is not None:
                out[key] = out[key][keep]
    if out.get("mask") is not None:
        out["mask"] = _window(out["mask"], top, left, height, width, IGNORE)
    return _window(image, top, left, height, width, 0), out


def rescale(image, target: dict, factor: float):
    """Resize by ``factor``: ``(H, W) -> (round(factor H), round(factor W))``, boxes by the exact ratios."""
    image = _image(image)
    h, w = image.shape[:2]
    oh, ow = max(1, int(round(factor * h))), max(1, int(round(factor * w)))
    sy, sx = oh / h, ow / w
    # bilinear with half-pixel centres, as striate.data.transforms.resize_images
    r0, r1, ry = _interp_axis(h, oh)
    c0, c1, cx = _interp_axis(w, ow)
    x = image.astype(np.float32)
    rows = x[r0] * (1 - ry)[:, None, None] + x[r1] * ry[:, None, None]               # (oh, W, C)
    both = rows[:, c0] * (1 - cx)[None, :, None] + rows[:, c1] * cx[None, :, None]   # (oh, ow, C)
    new = np.clip(np.rint(both), 0, 255).astype(image.dtype) if image.dtype == np.uint8 else both.astype(image.dtype)
    out = _copy_target(target)
    if out.get("boxes") is not None and len(out["boxes"]):
        out["boxes"] = (out["boxes"] * np.array([sx, sy, sx, sy])).astype(out["boxes"].dtype)
    if out.get("mask") is not None:
        # nearest neighbour: output pixel i takes the input pixel under its centre, floor((i + 0.5) / s)
        ri = np.minimum(((np.arange(oh) + 0.5) / sy).astype(np.int64), h - 1)
        ci = np.minimum(((np.arange(ow) + 0.5) / sx).astype(np.int64), w - 1)
        out["mask"] = out["mask"][ri[:, None], ci[None, :]]
    return new, out


class JointTransform:
    """Base class: ``t(image, target, rng) -> (image, target)``."""

    def __call__(self, image, target, rng=None):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class JointCompose(JointTransform):
    """Apply transforms in order, each drawing from the same ``rng``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target, rng=None):
        rng = check_random_state(rng)
        for t in self.transforms:
            image, target = t(image, target, rng)
        return image, target


class RandomHorizontalFlip(JointTransform):
    """Mirror with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1]. Received: p={p!r}.")
        self.p = float(p)

    def __call__(self, image, target, rng=None):
        if check_random_state(rng).random() < self.p:
            return hflip(image, target)
        return np.array(image), _copy_target(target)


class RandomTranslate(JointTransform):
    """Shift by up to ``max_shift`` pixels in each direction; the size stays (a crop of the padded image)."""

    def __init__(self, max_shift: int = 4, min_visible: float = 0.3):
        if int(max_shift) < 0:
            raise ValueError(f"max_shift must be >= 0. Received: max_shift={max_shift!r}.")
        self.max_shift, self.min_visible = int(max_shift), float(min_visible)

    def __call__(self, image, target, rng=None):
        rng = check_random_state(rng)
        h, w = _image(image).shape[:2]
        dy, dx = rng.integers(-self.max_shift, self.max_shift + 1, 2)
        return crop(image, target, -int(dy), -int(dx), h, w, self.min_visible)


class RandomCrop(JointTransform):
    """A random ``size`` window inside the image (the image must be at least that large)."""

    def __init__(self, size, min_visible: float = 0.3):
        self.size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        self.min_visible = float(min_visible)

    def __call__(self, image, target, rng=None):
        rng = check_random_state(rng)
        h, w = _image(image).shape[:2]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop: the window {ch}x{cw} is larger than the image {h}x{w}. Use a smaller "
                             "size, or RandomTranslate to shift without cropping.")
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop(image, target, top, left, ch, cw, self.min_visible)


class RandomScale(JointTransform):
    """Rescale by a factor drawn uniformly from ``scale``; with ``keep_size`` the result is cropped or
    padded back to the input size (centred), so batches keep one shape."""

    def __init__(self, scale=(0.8, 1.2), keep_size: bool = True, min_visible: float = 0.3):
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high. Received: scale={scale!r}.")
        self.scale, self.keep_size, self.min_visible = (lo, hi), bool(keep_size), float(min_visible)

    def __call__(self, image, target, rng=None):
        rng = check_random_state(rng)
        h, w = _image(image).shape[:2]
        image, target = rescale(image, target, rng.uniform(*self.scale))
        if not self.keep_size:
            return image, target
        nh, nw = image.shape[:2]
        return crop(image, target, (nh - h) // 2, (nw - w) // 2, h, w, self.min_visible)
