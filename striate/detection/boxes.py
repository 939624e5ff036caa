"""Box geometry: areas, intersection over union, format conversions and the anchor coding.

All boxes are float arrays whose last axis holds 4 numbers; xyxy ``(x0, y0, x1, y1)`` unless a
name says otherwise. A box with ``x1 <= x0`` or ``y1 <= y0`` is empty (area 0).
"""
from __future__ import annotations

import math

import numpy as np

from ..validation import check_number

# The largest log-scale a decoded box may take (Faster R-CNN's and torchvision's clip): exp(4.135)
# = 62.5 times the anchor. Keeps an untrained head's wild outputs from overflowing exp.
SCALE_CLIP = math.log(1000.0 / 16)


def as_boxes(boxes, name: str = "boxes", owner: str = "", matrix: bool = False) -> np.ndarray:
    """Boxes as a float array whose last axis has 4 entries (``(n, 4)`` with ``matrix``); ints
    become float64, floats keep their dtype."""
    a = np.asarray(getattr(boxes, "data", boxes))
    where = f"{owner}: " if owner else ""
    if a.dtype.kind in "iub":
        a = a.astype(np.float64)
    if a.dtype.kind != "f":
        raise TypeError(f"{where}{name} must be a float array of boxes. Received: dtype={a.dtype}.")
    if matrix and a.ndim == 1 and a.size == 0:
        a = a.reshape(0, 4)  # an empty list of boxes
    if (matrix and a.ndim != 2) or a.ndim < 1 or a.shape[-1] != 4:
        shape = "(n, 4)" if matrix else "(..., 4)"
        raise ValueError(f"{where}{name} must have shape {shape}: one (x0, y0, x1, y1) per row. "
                         f"Received: {name}.shape={a.shape}.")
    return a


def box_area(boxes) -> np.ndarray:
    """Area of xyxy boxes, 0 for empty ones. Shape: ``(..., 4)`` -> ``(...)``."""
    b = as_boxes(boxes, owner="box_area")
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b`` (Jaccard index).

    ``IoU = area(a & b) / (area(a) + area(b) - area(a & b))``; 0 where the union is empty (two
    empty boxes).

    Shape:
        - a: ``(n, 4)``, b: ``(m, 4)``, xyxy; output: ``(n, m)``.

    Example::

        >>> st.detection.box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2]])
        array([[0.14285714, 1.        ]])
    """
    a = as_boxes(a, "a", "box_iou", matrix=True)
    b = as_boxes(b, "b", "box_iou", matrix=True)
    dtype = np.result_type(a, b)
    # the overlap rectangle of every pair, (n, m): max of the left/top edges, min of the right/bottom
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    iou = np.zeros(inter.shape, dtype)
    np.divide(inter, union, out=iou, where=union > 0)
    return iou


# --------------------------------------------------------------------------- formats
def xyxy_to_xywh(boxes) -> np.ndarray:
    """``(x0, y0, x1, y1)`` -> COCO's ``(x, y, w, h)`` (top-left corner and size). Shape kept."""
    b = as_boxes(boxes, owner="xyxy_to_xywh")
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_xyxy(boxes) -> np.ndarray:
    """COCO's ``(x, y, w, h)`` -> ``(x0, y0, x1, y1)``. Shape kept."""
    b = as_boxes(boxes, owner="xywh_to_xyxy")
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_cxcywh(boxes) -> np.ndarray:
    """``(x0, y0, x1, y1)`` -> centre and size ``(cx, cy, w, h)``. Shape kept."""
    b = as_boxes(boxes, owner="xyxy_to_cxcywh")
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def cxcywh_to_xyxy(boxes) -> np.ndarray:
    """Centre and size ``(cx, cy, w, h)`` -> ``(x0, y0, x1, y1)``. Shape kept."""
    b = as_boxes(boxes, owner="cxcywh_to_xyxy")
    return np.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], axis=-1)


def clip_boxes(boxes, size) -> np.ndarray:
    """Clip xyxy boxes to an image of ``size = (height, width)``: x into [0, width], y into
    [0, height]. Shape kept."""
    b = as_boxes(boxes, owner="clip_boxes").copy()
    height, width = size
    b[..., 0::2] = np.clip(b[..., 0::2], 0, width)
    b[..., 1::2] = np.clip(b[..., 1::2], 0, height)
    return b


# --------------------------------------------------------------------------- anchor coding
def _check_weights(weights, owner):
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise ValueError(f"{owner}: weights must be 4 numbers (wx, wy, ww, wh). Received: weights={weights!r}.")
    return tuple(check_number(v, "weights", low=0, low_open=True, owner=owner) for v in weights)


def encode_boxes(boxes, anchors, weights=(10.0, 10.0, 5.0, 5.0)) -> np.ndarray:
    """Offsets ``(dx, dy, dw, dh)`` that move each anchor onto its box: the parameterisation of
    R-CNN, Faster R-CNN and SSD (Girshick et al. 2014, appendix C; Ren et al. 2015, eq. 2)::

        dx = wx * (cx - cxa) / wa      dy = wy * (cy - cya) / ha
        dw = ww * log(w / wa)          dh = wh * log(h / ha)

    with (cx, cy, w, h) the box's centre and size and (cxa, cya, wa, ha) the anchor's. The weights
    scale the offsets to about unit variance (torchvision's Faster R-CNN default (10, 10, 5, 5);
    SSD's variances 0.1, 0.2 are the same weights as 1 / variance). Boxes and anchors must be
    non-empty.

    Shape:
        - boxes: ``(..., 4)`` xyxy; anchors: ``(..., 4)`` xyxy, broadcastable to boxes;
          output: the broadcast shape, ``(..., 4)``.
    """
    owner = "encode_boxes"
    wx, wy, ww, wh = _check_weights(weights, owner)
    b = xyxy_to_cxcywh(as_boxes(boxes, "boxes", owner))
    a = xyxy_to_cxcywh(as_boxes(anchors, "anchors", owner))
    if (b[..., 2:] <= 0).any() or (a[..., 2:] <= 0).any():
        raise ValueError(f"{owner}: every box and anchor must have a positive width and height "
                         "(x1 > x0 and y1 > y0); drop empty boxes before encoding.")
    dx = wx * (b[..., 0] - a[..., 0]) / a[..., 2]
    dy = wy * (b[..., 1] - a[..., 1]) / a[..., 3]
    dw = ww * np.log(b[..., 2] / a[..., 2])
    dh = wh * np.log(b[..., 3] / a[..., 3])
    return np.stack([dx, dy, dw, dh], axis=-1)


def decode_boxes(offsets, anchors, weights=(10.0, 10.0, 5.0, 5.0), scale_clip: float = SCALE_CLIP) -> np.ndarray:
    """The inverse of :func:`encode_boxes`: anchors moved by ``(dx, dy, dw, dh)``, as xyxy boxes.

    ``dw / ww`` and ``dh / wh`` are clipped at ``scale_clip`` (default log(1000 / 16), as
    torchvision) before ``exp``, so no decoded box is more than 62.5 times its anchor.

    Shape:
        - offsets: ``(..., 4)``; anchors: ``(..., 4)`` xyxy, broadcastable; output: ``(..., 4)`` xyxy.
    """
    owner = "decode_boxes"
    wx, wy, ww, wh = _check_weights(weights, owner)
    d = as_boxes(offsets, "offsets", owner)
    a = xyxy_to_cxcywh(as_boxes(anchors, "anchors", owner))
    cx = d[..., 0] / wx * a[..., 2] + a[..., 0]
    cy = d[..., 1] / wy * a[..., 3] + a[..., 1]
    w = np.exp(np.minimum(d[..., 2] / ww, scale_clip)) * a[..., 2]
    h = np.exp(np.minimum(d[..., 3] / wh, scale_clip)) * a[..., 3]
    return cxcywh_to_xyxy(np.stack([cx, cy, w, h], axis=-1))
