"""What a model's outputs mean for localisation, detection and segmentation: the loss, the target
encoding from ground truth, and the decoding into predictions.

A task is passed to :func:`~striate.training.fit` and :func:`~striate.training.evaluate` as their
``loss``: calling it, ``task(outputs, targets)``, is its loss. Layers never see labels; the task
turns the ground truth of a batch into the arrays its loss compares with the outputs, and turns
the outputs back into boxes or masks.

Ground truth of a batch, as a data loader gives it:

* boxes (localisation, detection): a list with one dict per image, ``{"boxes": (m, 4) xyxy in
  input pixels, "classes": (m,) int}`` (m may differ between images and be 0), or one dict of padded
  arrays ``{"boxes": (n, m, 4), "classes": (n, m)}`` where class -1 marks padding (an optional
  ``"count": (n,)`` gives the number of real boxes instead);
* masks (segmentation): ``(n, h, w)`` integer class indices, 255 = ignored.

Predictions: per image a dict ``{"boxes": (k, 4) xyxy in input pixels, "scores": (k,), "classes":
(k,)}``, or ``(n, h, w)`` int masks.

Example::

    >>> task = st.training.tasks.CenterNetDetection(num_classes=10)
    >>> st.training.fit(st.models.centernet(), loader, epochs=20, loss=task)
    >>> task.decode(model(images))[0]["boxes"]
"""
from __future__ import annotations


import numpy as np

from .. import functional as F
from ..detection import batched_nms, clip_boxes, cxcywh_to_xyxy, nms, xyxy_to_cxcywh
from ..tensor import Tensor
from ..validation import check_int, check_number


# --------------------------------------------------------------------------- ground truth
def box_targets(targets, n: int | None = None, owner: str = "task") -> list[dict]:
    """A batch's boxes as a list of ``{"boxes": (m, 4) float, "classes": (m,) int}``, one per image.

    Accepts the list-of-dicts and the padded-dict forms of the module docstring.
    """
    if isinstance(targets, dict):
        boxes = np.asarray(targets.get("boxes"), dtype=np.float64)
        classes = np.asarray(targets.get("classes", targets.get("labels")))
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:2]:
            raise ValueError(
                f"{owner}: padded targets need 'boxes' (n, m, 4) and 'classes' (n, m). "
                f"Received: boxes {boxes.shape}, classes {classes.shape}."
            )
        count = targets.get("count")
        items = []
        for i in range(len(boxes)):
            keep = classes[i] >= 0 if count is None else np.arange(boxes.shape[1]) < int(count[i])
            items.append({"boxes": boxes[i][keep], "classes": classes[i][keep]})
        targets = items
    if not isinstance(targets, (list, tuple)):
        raise TypeError(
            f"{owner}: targets must be a list of {{'boxes', 'classes'}} dicts (one per image) or a dict of "
            f"padded arrays. Received: {type(targets).__name__}."
        )
    out = []
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or not ("classes" in t or "labels" in t):
            raise ValueError(f"{owner}: targets[{i}] must be a dict with 'boxes' and 'classes'. Received: {t!r:.80}.")
        boxes = np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(t.get("classes", t.get("labels")), dtype=np.int64).reshape(-1)
        if len(boxes) != len(classes):
            raise ValueError(f"{owner}: targets[{i}] has {len(boxes)} boxes but {len(classes)} classes.")
        out.append({"boxes": boxes, "classes": classes})
    if n is not None and len(out) != n:
        raise ValueError(f"{owner}: the batch has {n} images but {len(out)} targets.")
    return out


def _const(array, like: Tensor) -> Tensor:
    """A constant of the outputs' dtype (striate never upcasts silently)."""
    return Tensor(np.asarray(array, dtype=like.dtype))


class Task:
    """Base of the tasks: ``task(outputs, targets)`` is ``task.loss(outputs, targets)``."""

    def __call__(self, outputs, targets) -> Tensor:
        return self.loss(outputs, targets)

    def loss(self, outputs, targets) -> Tensor:
        raise NotImplementedError

    def decode(self, outputs, **kwargs):
        raise NotImplementedError


# --------------------------------------------------------------------------- localisation
class Localization(Task):
    """One object per image: outputs ``(n, num_classes + 4)``, the class logits then a box ``(cx,
    cy, w, h)`` in fractions of the image (as :func:`striate.models.localizer` outputs them; a pair
    ``(logits, box)`` is accepted too).

    Loss: ``cross_entropy(logits, class) + box_weight * smooth_l1(box, true box)`` on the
    normalised box (so the weight does not depend on the image size).

    Args:
        image_size: ``(height, width)`` of the inputs, to decode boxes into pixels.
        box_weight: weight of the box term.
        beta: smooth L1's switch from squared to absolute error, in fractions of the image.
    """

    def __init__(self, image_size, box_weight: float = 5.0, beta: float = 0.02):
        self.image_size = tuple(int(s) for s in image_size)
        self.box_weight = check_number(box_weight, "box_weight", low=0.0, owner="Localization")
        self.beta = check_number(beta, "beta", low=0.0, owner="Localization")

    def encode(self, targets, n=None):
        """Ground truth -> ``(classes (n,), boxes (n, 4) normalised cxcywh)``: each image's first box."""
        items = box_targets(targets, n, "Localization")
        empty = [i for i, t in enumerate(items) if len(t["boxes"]) == 0]
        if empty:
            raise ValueError(f"Localization: every image needs one box; image {empty[0]} of the batch has none.")
        h, w = self.image_size
        boxes = np.stack([xyxy_to_cxcywh(t["boxes"][:1])[0] for t in items]) / np.array([w, h, w, h])
        return np.array([t["classes"][0] for t in items]), boxes

    @staticmethod
    def split(outputs):
        """``(logits, box)`` from the one output ``(n, k + 4)`` (or from a pair, as it is)."""
        if isinstance(outputs, (tuple, list)):
            return tuple(outputs)
        if outputs.ndim != 2 or outputs.shape[1] < 5:
            raise ValueError(f"Localization: expected outputs (n, num_classes + 4). Received: {outputs.shape}.")
        return outputs[:, :-4], outputs[:, -4:]

    def loss(self, outputs, targets) -> Tensor:
        logits, box = self.split(outputs)
        classes, boxes = self.encode(targets, len(logits))
        return (F.cross_entropy(logits, classes)
                + self.box_weight * F.smooth_l1_loss(box, _const(boxes, box), beta=self.beta))

    def decode(self, outputs, **kwargs) -> list[dict]:
        """Per image ``{"boxes": (1, 4) xyxy pixels, "scores": (1,) softmax, "classes": (1,)}``."""
        if not isinstance(outputs, (tuple, list)):
            outputs = np.asarray(getattr(outputs, "data", outputs), dtype=np.float64)
        logits, box = (np.asarray(getattr(o, "data", o), dtype=np.float64) for o in self.split(outputs))
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        h, w = self.image_size
        xyxy = clip_boxes(cxcywh_to_xyxy(box * np.array([w, h, w, h])), (h, w))
        cls = probs.argmax(axis=1)
        return [{"boxes": xyxy[i:i + 1], "scores": probs[i, cls[i]:cls[i] + 1], "classes": cls[i:i + 1]}
                for i in range(len(cls))]


# --------------------------------------------------------------------------- detection
class CenterNetDetection(Task):
    """Objects as points (Zhou, Wang & Krahenbuhl 2019) for :func:`striate.models.centernet`.

    Outputs ``(n, h, w, num_classes + 4)`` at ``stride``: heatmap logits, box size ``(w, h)`` and
    centre offset ``(dx, dy)`` in stride units.

    Targets: each box puts a Gaussian bump of peak 1 on its class's heatmap at the cell of its
    centre, with standard deviations ``alpha * size / 6`` along each axis (elliptical, as in
    TTFNet; Liu et al. 2020), the maximum where bumps overlap. Its size and sub-cell offset are
    regressed at that cell only.

    Loss: the penalty-reduced focal loss of CornerNet/CenterNet (positives
    ``-(1 - p)^2 log p``, negatives ``-(1 - y)^4 p^2 log(1 - p)``, y the Gaussian target), plus
    ``size_weight * L1(size)`` and ``offset_weight * L1(offset)`` at the centres, all divided by the
    number of objects.

    Decoding: sigmoid, the peaks that equal their 3x3 max-pool, the ``max_detections`` best above
    ``score_threshold``, boxes from size and offset (clipped to the image), then per-class NMS.

    Args:
        num_classes: heatmap channels.
        stride: input pixels per output cell (4 for :func:`~striate.models.centernet`).
        alpha: width of the Gaussians relative to the box.
        size_weight, offset_weight: weights of the regression terms.
    """

    def __init__(self, num_classes: int, stride: int = 4, alpha: float = 0.54, size_weight: float = 0.5,
                 offset_weight: float = 1.0):
        owner = "CenterNetDetection"
        self.num_classes = check_int(num_classes, "num_classes")
        self.stride = check_int(stride, "stride")
        self.alpha = check_number(alpha, "alpha", low=0.0, owner=owner)
        self.size_weight = check_number(size_weight, "size_weight", low=0.0, owner=owner)
        self.offset_weight = check_number(offset_weight, "offset_weight", low=0.0, owner=owner)

    def encode(self, targets, shape) -> dict:
        """Ground truth -> ``heatmap (n, h, w, k)``, ``size``, ``offset`` ``(n, h, w, 2)`` and
        ``mask (n, h, w, 1)`` (1 at the centres) for outputs of spatial ``shape = (n, h, w)``."""
        n, h, w = shape
        k, s = self.num_classes, self.stride
        heat = np.zeros((n, h, w, k))
        size, offset, mask = np.zeros((n, h, w, 2)), np.zeros((n, h, w, 2)), np.zeros((n, h, w, 1))
        ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
        for i, t in enumerate(box_targets(targets, n, "CenterNetDetection")):
            for (x0, y0, x1, y1), c in zip(t["boxes"], t["classes"]):
                if not 0 <= c < k:
                    raise ValueError(f"CenterNetDetection: class {c} of image {i} is outside [0, {k}).")
                cx, cy, bw, bh = (x0 + x1) / (2 * s), (y0 + y1) / (2 * s), (x1 - x0) / s, (y1 - y0) / s
                ix, iy = min(max(int(cx), 0), w - 1), min(max(int(cy), 0), h - 1)
                sx, sy = max(self.alpha * bw / 6, 0.3), max(self.alpha * bh / 6, 0.3)
                bump = np.exp(-((xs - ix) ** 2 / (2 * sx * sx) + (ys - iy) ** 2 / (2 * sy * sy)))
                heat[i, :, :, c] = np.maximum(heat[i, :, :, c], bump)
                size[i, iy, ix], offset[i, iy, ix], mask[i, iy, ix] = (bw, bh), (cx - ix, cy - iy), 1.0
        return {"heatmap": heat, "size": size, "offset": offset, "mask": mask}

    def loss(self, outputs, targets) -> Tensor:
        k = self.num_classes
        if outputs.ndim != 4 or outputs.shape[-1] != k + 4:
            raise ValueError(f"CenterNetDetection: expected outputs (n, h, w, {k + 4}) for {k} classes. "
                             f"Received: {outputs.shape}.")
        t = self.encode(targets, outputs.shape[:3])
        x = outputs[..., :k]                                   # (n, h, w, k) heatmap logits
        focal = F.heatmap_focal_loss(x, _const(t["heatmap"], x), alpha=2.0, beta=4.0)
        mask = _const(t["mask"], x)
        l1_size = ((outputs[..., k:k + 2] - _const(t["size"], x)).abs() * mask).sum()
        l1_offset = ((outputs[..., k + 2:] - _const(t["offset"], x)).abs() * mask).sum()
        objects = max(1.0, float(t["mask"].sum()))
        return (focal + self.size_weight * l1_size + self.offset_weight * l1_offset) * (1.0 / objects)

    def decode(self, outputs, score_threshold: float = 0.1, max_detections: int = 100, iou_threshold: float = 0.5,
               image_size=None, class_agnostic: bool = False) -> list[dict]:
        """Boxes (xyxy, input pixels), scores and classes per image (see the class docstring).

        ``class_agnostic``: one NMS over all classes, so that a weaker peak of another class on the
        same object is dropped (for drawing; mAP is computed per class, where it costs nothing).
        """
        out = np.asarray(getattr(outputs, "data", outputs), dtype=np.float64)
        n, h, w, _ = out.shape
        k, s = self.num_classes, self.stride
        heat = 1.0 / (1.0 + np.exp(-out[..., :k]))                       # (n, h, w, k)
        padded = np.pad(heat, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
        pooled = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2)).max(axis=(-2, -1))
        peaks = np.where(heat == pooled, heat, 0.0)                     # a peak equals its 3x3 maximum
        size = image_size or (h * s, w * s)
        results = []
        for i in range(n):
            flat = peaks[i].ravel()
            top = np.argsort(-flat, kind="stable")[:max_detections]
            top = top[flat[top] > score_threshold]
            iy, ix, c = np.unravel_index(top, (h, w, k))
            bw, bh, dx, dy = (out[i, iy, ix, k + j] for j in range(4))
            cx, cy = (ix + dx) * s, (iy + dy) * s
            bw, bh = np.maximum(bw, 0) * s, np.maximum(bh, 0) * s
            boxes = clip_boxes(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1), size)
            scores = flat[top]
            if not len(top):
                keep = np.zeros(0, np.int64)
            elif class_agnostic:
                keep = nms(boxes, scores, iou_threshold)
            else:
                keep = batched_nms(boxes, scores, c, iou_threshold)
            results.append({"boxes": boxes[keep], "scores": scores[keep], "classes": c[keep].astype(np.int64)})
        return results


# --------------------------------------------------------------------------- segmentation
class Segmentation(Task):
    """Per-pixel classes for :func:`striate.models.fcn` / :func:`~striate.models.unet`: outputs
    ``(n, h, w, num_classes)``, masks ``(n, h, w)`` with ``ignore_index`` (255) counted nowhere.

    Loss: per-pixel cross-entropy (optionally class-weighted), plus ``dice_weight`` times the Dice
    loss, which weighs small objects as much as the background.

    Args:
        weight: optional ``(num_classes,)`` class weights of the cross-entropy.
        dice_weight: weight of the Dice term (0: none).
        ignore_index: the mask value that is not counted.
    """

    def __init__(self, weight=None, dice_weight: float = 0.0, ignore_index: int = 255):
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64)
        self.dice_weight = check_number(dice_weight, "dice_weight", low=0.0, owner="Segmentation")
        self.ignore_index = int(ignore_index)

    def encode(self, targets) -> np.ndarray:
        masks = np.asarray(targets)
        if masks.ndim != 3 or not np.issubdtype(masks.dtype, np.integer):
            raise ValueError(f"Segmentation: masks must be (n, h, w) integer class indices. "
                             f"Received: {masks.dtype} array of shape {masks.shape}.")
        return masks.astype(np.int64)

    def loss(self, outputs, targets) -> Tensor:
        masks = self.encode(targets)
        weight = None if self.weight is None else self.weight.astype(outputs.dtype)
        loss = F.cross_entropy(outputs, masks, weight=weight, ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * F.dice_loss(outputs, masks, ignore_index=self.ignore_index)
        return loss

    def decode(self, outputs, **kwargs) -> np.ndarray:
        """``(n, h, w)`` int64 masks: the most likely class of every pixel."""
        return np.asarray(getattr(outputs, "data", outputs)).argmax(axis=-1)
