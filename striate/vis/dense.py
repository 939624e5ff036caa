"""Pictures of where things are: boxes and masks drawn over the image they were found in.

:func:`draw_boxes` outlines a detector's or localiser's boxes in their class's colour with a label;
:func:`draw_mask` tints a segmentation mask's pixels by class, with a legend. Both enlarge small
pictures (nearest neighbour) so that a 64x64 canvas stays readable, and return a Pillow image
(the ``striate[viz]`` extra); ``striate predict --out`` saves them.

Example:
    >>> pred = {"boxes": np.array([[4., 6., 20., 30.]]), "scores": np.array([0.9]), "classes": np.array([3])}
    >>> draw_boxes(image, pred, class_names=[str(d) for d in range(10)]).save("boxes.png")
"""
from __future__ import annotations

import numpy as np

from ..detection import box_iou
from .draw import pil

__all__ = ["PALETTE", "draw_boxes", "draw_mask", "class_colour"]

# distinct colours for classes (background: none); cycles for more classes
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0)]


def class_colour(index: int) -> tuple:
    """The RGB colour of class ``index`` (a box's class, or a mask value minus one)."""
    return PALETTE[int(index) % len(PALETTE)]


def _canvas(image, min_side: int = 256):
    """``(picture, factor)``: the image as an RGB Pillow image enlarged ``factor`` times (nearest) so
    that its shorter side reaches ``min_side``."""
    Image = pil()[0]
    a = np.asarray(image, np.uint8)
    a = a[..., None] if a.ndim == 2 else a
    a = np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3]
    factor = max(1, int(np.ceil(min_side / max(1, min(a.shape[:2])))))
    img = Image.fromarray(a)
    return img.resize((a.shape[1] * factor, a.shape[0] * factor), Image.NEAREST), factor


def draw_boxes(image, prediction: dict, class_names, min_score: float = 0.3, same_object: float | None = 0.7):
    """The picture with each box scoring at least ``min_score`` outlined in its class's colour and
    labelled "class score".

    A detector scores every class on its own, so an object whose class is uncertain (a shirt or a
    pullover) gets one box per guessed class at almost the same place; their labels would cover one
    another. Only the best of such boxes is drawn: a box is left out when it overlaps a better one
    already drawn with an IoU above ``same_object`` (None draws them all).

    Args:
        image: uint8 ``(h, w, c)`` (gray or RGB) or ``(h, w)``.
        prediction: ``{"boxes": (k, 4) xyxy in the image's pixels, "scores": (k,), "classes": (k,)}``.
        class_names: the names that ``classes`` index.
        min_score: boxes below it are not drawn.
        same_object: the IoU above which a weaker box counts as another guess at a drawn box's object.

    Returns:
        A Pillow RGB image, enlarged so that its shorter side is at least 256 pixels.
    """
    ImageDraw = pil()[1]
    img, f = _canvas(image)
    draw = ImageDraw.Draw(img)
    boxes, scores = np.asarray(prediction["boxes"], np.float64).reshape(-1, 4), np.asarray(prediction["scores"])
    classes = np.asarray(prediction["classes"])
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")]      # best first
    if same_object is not None and len(keep):
        iou = box_iou(boxes[keep], boxes[keep])
        drawn = []
        for i in range(len(keep)):
            if not drawn or iou[i, drawn].max() <= same_object:
                drawn.append(i)
        keep = keep[drawn]
    for (x0, y0, x1, y1), s, c in zip(boxes[keep[::-1]], scores[keep[::-1]], classes[keep[::-1]]):  # best on top
        colour = class_colour(c)
        # xyxy edges: pixel columns x0 .. x1 - 1 are inside, so the outline's last column is x1 * f - 1
        draw.rectangle([x0 * f, y0 * f, max(x0 * f, x1 * f - 1), max(y0 * f, y1 * f - 1)], outline=colour, width=2)
        label = f"{class_names[int(c)]} {s:.2f}"
        ty = max(0, y0 * f - 12)
        draw.rectangle([x0 * f, ty, x0 * f + 6 * len(label) + 4, ty + 11], fill=colour)
        draw.text((x0 * f + 2, ty), label, fill=(0, 0, 0))
    return img


def draw_mask(image, mask, class_names, alpha: float = 0.55):
    """The picture with every pixel of a class other than background tinted by its class's colour,
    and a legend of the classes present.

    Args:
        image: uint8 ``(h, w, c)`` or ``(h, w)``.
        mask: ``(h, w)`` class indices; 0 is background and 255 "ignore" (neither is tinted).
        class_names: the names that mask values index (``class_names[0]`` the background).
        alpha: the weight of the class colour in a tinted pixel.

    Returns:
        A Pillow RGB image, enlarged so that its shorter side is at least 256 pixels.
    """
    Image, ImageDraw = pil()[:2]
    img, f = _canvas(image)
    base = np.asarray(img, np.float64)
    m = np.repeat(np.repeat(np.asarray(mask), f, axis=0), f, axis=1)
    if m.shape != base.shape[:2]:
        raise ValueError(f"the mask must have the image's height and width {base.shape[0] // f}x{base.shape[1] // f}. "
                         f"Received: mask of shape {np.shape(mask)}.")
    colours = np.zeros(base.shape)
    tint = (m > 0) & (m != 255)
    for c in np.unique(m[tint]):
        colours[m == c] = class_colour(int(c) - 1)
    tinted = np.where(tint[..., None], (1 - alpha) * base + alpha * colours, base)
    out = Image.fromarray(tinted.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    y = 2
    for c in np.unique(m[tint]):
        if c >= len(class_names):
            continue
        draw.rectangle([2, y, 12, y + 10], fill=class_colour(int(c) - 1))
        draw.text((16, y - 1), str(class_names[int(c)]), fill=(255, 255, 255))
        y += 13
    return out
