"""Drawing the maps: colour maps, overlays, captions, PNG/GIF files. Pillow and matplotlib (the
``striate[viz]`` extra) are imported here, inside the functions that use them, never by the maps."""
from __future__ import annotations

import io
import math
import os

import numpy as np

from ..atomic import atomic_open
from ..optional import require
from .grid import normalize, resize_bilinear, upsample_nearest



def pil():
    """Pillow's ``Image``, ``ImageDraw`` and ``ImageFont`` modules, or one line naming the extra."""
    return tuple(require(f"PIL.{name}", "viz", "drawing images") for name in ("Image", "ImageDraw", "ImageFont"))


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    matplotlib = require("matplotlib", "viz", "plots")
    import sys

    # Agg only where pyplot is not loaded yet: a backend the user's session chose (a notebook's
    # inline plots, a window) is never switched, or their later plt.show() would show nothing
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def colormap(values, name: str = "jet") -> np.ndarray:
    """Values in [0, 1] ``(h, w)`` -> RGB ``(h, w, 3)`` in [0, 1] through a matplotlib colour map."""
    colormaps = require("matplotlib", "viz", "colour maps").colormaps  # no pyplot and no backend needed

    if name not in colormaps:
        raise ValueError(f"unknown colour map {name!r}; see matplotlib.colormaps (e.g. 'jet', 'viridis', 'magma').")
    return colormaps[name](np.clip(np.asarray(values, np.float64), 0, 1))[..., :3]


def as_rgb(image) -> np.ndarray:
    """An image ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` of any range -> RGB in [0, 1] (min-max scaled)."""
    a = np.asarray(image, np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(normalize(a)[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 3:
        a = normalize(a)
    else:
        raise ValueError(f"expected an image (h, w), (h, w, 1) or (h, w, 3). Received: shape {a.shape}.")
    return a


def heat(values) -> np.ndarray:
    """A map scaled for display: divided by its maximum when >= 0 (0 stays 'cold'), else min-max."""
    v = np.asarray(values, np.float64)
    top = v.max() if v.size else 0.0
    if v.min() >= 0:
        return v / top if top > 0 else np.zeros_like(v)
    return normalize(v)


def overlay(image, heatmap, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The heat map in colour over the image (in gray or its own colours), for Grad-CAM and saliency.

    Args:
        image: ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)``, any range (min-max scaled).
        heatmap: ``(h', w')``; resized bilinearly to the image when the sizes differ.
        alpha: weight of the colour map (0 = image only, 1 = map only).
        cmap: a matplotlib colour map name.

    Returns:
        RGB ``(h, w, 3)`` in [0, 1].

    Example::

        >>> overlay(x[..., 0], grad_cam(model, x)).shape
        (8, 8, 3)
    """
    rgb = as_rgb(image)
    hm = np.asarray(heatmap, np.float64)
    if hm.ndim != 2:
        raise ValueError(f"overlay: heatmap must be (h, w). Received: shape {hm.shape}.")
    if hm.shape != rgb.shape[:2]:
        hm = resize_bilinear(hm, rgb.shape[:2])
    if not 0 <= alpha <= 1:
        raise ValueError(f"overlay: alpha must be in [0, 1]. Received: alpha={alpha!r}.")
    return (1 - alpha) * rgb + alpha * colormap(heat(hm), cmap)


def to_uint8(a) -> np.ndarray:
    return (np.clip(np.asarray(a, np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)


def enlarge(a, min_size: int = 256, max_factor: int = 32) -> np.ndarray:
    """Crisp (nearest-neighbour) enlargement by the integer factor that brings the shorter side to
    at least ``min_size`` pixels: an 8x8 digit is unreadable at its own size."""
    a = np.asarray(a)
    factor = max(1, min(max_factor, math.ceil(min_size / max(1, min(a.shape[:2])))))
    return upsample_nearest(a, factor)


def _font(size: int):
    _, _, ImageFont = pil()
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def compose(panels, captions=None, title: str | None = None, gap: int = 8, font_size: int = 14):
    """Panels (float arrays in [0, 1], gray or RGB, same height) side by side with captions below
    and an optional title above, on white. Returns a Pillow RGB image."""
    Image, ImageDraw, _ = pil()
    panels = [p[..., 0] if p.ndim == 3 and p.shape[-1] == 1 else p for p in map(np.asarray, panels)]
    rgb = [to_uint8(p if p.ndim == 3 else np.repeat(p[..., None], 3, -1)) for p in panels]
    font = _font(font_size)
    line = font_size + 6
    height = max(p.shape[0] for p in rgb)
    width = sum(p.shape[1] for p in rgb) + gap * (len(rgb) + 1)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = [title or ""] + [c for c in (captions or []) if c]
    width = max(width, max(int(probe.textlength(t, font=font)) for t in texts) + 2 * gap)
    top = line + gap if title else gap
    bottom = line + gap if captions else gap
    canvas = Image.new("RGB", (width, top + height + bottom), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap, gap // 2), title, fill="black", font=font)
    x = gap
    for i, p in enumerate(rgb):
        canvas.paste(Image.fromarray(p), (x, top))
        if captions and i < len(captions) and captions[i]:
            draw.text((x, top + p.shape[0] + 3), captions[i], fill="black", font=font)
        x += p.shape[1] + gap
    return canvas


def save_pil(img, path) -> None:
    """Write a Pillow image atomically; the format follows the extension (.png, .gif, .jpg)."""
    fmt = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"unsupported image file extension in {path!r}: use .png (or .gif, .jpg).")
    with atomic_open(path, "wb") as f:
        img.save(f, format=fmt, **({"optimize": True} if fmt == "PNG" else {}))


def save_image(a, path, min_size: int = 0) -> None:
    """Save a float array in [0, 1] (gray or RGB) as an image file, enlarged to ``min_size`` if asked."""
    Image, _, _ = pil()
    a = np.asarray(a)
    if min_size:
        a = enlarge(a, min_size)
    save_pil(Image.fromarray(to_uint8(a)), path)


def png_bytes(img) -> bytes:
    """A Pillow image or a matplotlib figure as PNG bytes (for embedding in the HTML report)."""
    buf = io.BytesIO()
    if hasattr(img, "savefig"):
        img.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    else:
        img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def stack(images, gap: int = 8):
    """Pillow images one under another, left-aligned, on white."""
    Image, _, _ = pil()
    width = max(im.width for im in images)
    canvas = Image.new("RGB", (width, sum(im.height for im in images) + gap * (len(images) - 1)), "white")
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + gap
    return canvas


def diverging(values, cmap: str = "RdBu_r") -> np.ndarray:
    """A signed map in colour with 0 at the middle of the colour map (white for RdBu_r)."""
    v = np.asarray(values, np.float64)
    top = np.abs(v).max()
    return colormap(0.5 + 0.5 * v / top if top > 0 else np.full(v.shape, 0.5), cmap)


def save_array(a, path) -> None:
    """Write the raw map as .npy (one array) or .npz (a dict of arrays), atomically."""
    with atomic_open(path, "wb") as f:
        if isinstance(a, dict):
            np.savez(f, **a)
        else:
            np.save(f, np.asarray(a))
