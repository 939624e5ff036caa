"""Reading a picture and preparing it for a model: the one path of ``striate predict``, ``striate
visualize``, ``striate serve`` and image-folder data sets, so that all of them see a file the same way.

Reading (:func:`open_image`, :func:`read_image`; Pillow decodes PNG, JPEG, GIF, BMP, WebP, ...):

* **Orientation.** A photo is turned upright as its camera recorded it (the EXIF orientation tag,
  applied with Pillow's ``ImageOps.exif_transpose``).
* **Transparency** is laid over a plain ground, white or black. A transparent pixel has no colour of
  its own, so the ground must not change what the picture shows:

  - a mostly transparent picture (visible pixels cover less than half of it) is a drawing: the ground
    is the shade its visible pixels are *not* -- white under dark strokes, black under light ones
    (their mean brightness, weighted by opacity, decides);
  - a mostly opaque picture has a ground of its own: its transparent parts (corners, margins) take
    that ground's shade -- white or black, whichever is nearer the median of its opaque pixels.

Preparing (:func:`prepare`), on top of reading:

* **Blank pictures are refused**: when every pixel lies within :data:`BLANK_LEVELS` grey levels of
  every other (of 255), nothing is drawn, and a model's answer would mean nothing.
* **Inversion** (``invert="auto"``, see :func:`should_invert`): a one-channel picture is inverted when
  its border is light and the model learnt light strokes on a dark ground -- or the other way round.
  ``invert=True`` / ``False`` force it (for any number of channels).
* **Framing** (``mode``): ``"resize"`` scales the whole picture to the model's size (Pillow, bilinear);
  ``"digit"`` frames a drawn digit like the data it was learnt from (LeCun's MNIST normalisation for
  28x28, the 8x8 optdigits one for 8x8; see :func:`mnist_style`, :func:`optdigits_style`);
  ``"none"`` takes a picture that already has the model's size.

Every mistake is an :class:`ImageError` (a ``ValueError``) whose one-line message names the picture.

Example:
    >>> x = prepare("digit.png", (28, 28, 1))        # doctest: +SKIP
    >>> x.shape, x.dtype                              # doctest: +SKIP
    ((28, 28, 1), dtype('float32'))
"""
from __future__ import annotations

import io
import os

import numpy as np

from ..optional import require

__all__ = ["ImageError", "BLANK_LEVELS", "MODES", "INVERT_RULE", "open_image", "read_image", "prepare",
           "should_invert", "is_blank", "trained_mean", "load_array", "mnist_style", "optdigits_style"]

MODES = ("resize", "digit", "none")
BLANK_LEVELS = 10          # of 255: a flat picture with JPEG noise or a faint smudge is still blank
INK_THRESHOLD = 0.1        # "digit" framing: a pixel is ink above this (0..1), ignoring noise and smudges
DARK_DATA, LIGHT_DATA = 1 / 3, 2 / 3   # mean pixel of strokes-on-a-ground training data (digits: 0.13-0.31)

# the rule of invert="auto" in one sentence, for the --help of the commands that read pictures
INVERT_RULE = ("by default a one-channel picture is inverted when its border is light (mean > 50%%) and the "
               "model learnt light strokes on a dark ground (its training images' mean pixel < 1/3, as in the "
               "digit sets), or the reverse; RGB pictures are not")


class ImageError(ValueError):
    """A picture that cannot be used (not an image, too large, blank, the wrong size, ...)."""


def _pil():
    return require("PIL.Image", "data", "reading images")


def _label(source, name) -> str:
    if name:
        return str(name)
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the image"


# ------------------------------------------------------------------------------------------- reading
def open_image(source, name: str | None = None, formats=None, max_side: int | None = None):
    """Open a picture as a decoded PIL image, turned upright by its EXIF orientation.

    Args:
        source: a file path, the file's bytes, or a PIL image.
        name: how messages name the picture (default: the path, or "the image").
        formats: accepted Pillow format names (``("PNG", "JPEG")``); None accepts any Pillow reads.
        max_side: refuse a picture wider or taller than this before decoding it (a server's guard);
            Pillow's own decompression-bomb limit applies in any case.

    Raises:
        ImageError: no such file, not an image, a refused format or size, truncated data.
    """
    Image = _pil()
    ImageOps = require("PIL.ImageOps", "data", "reading images")
    label = _label(source, name)
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if not data:
                raise ImageError(f"{label} is empty: no image bytes were given.")
            stream = io.BytesIO(data)
            what = f"{len(data)} bytes starting {data[:8]!r}"
        elif isinstance(source, (str, os.PathLike)):
            if not os.path.isfile(source):
                raise ImageError(f"no image file at {label!r}.")
            stream, what = source, "a file"
        else:
            raise ImageError(f"an image must be a file path, bytes or a PIL image. Received: {type(source).__name__}.")
        try:
            img = Image.open(stream)
        except Image.DecompressionBombError as e:
            raise ImageError(f"{label}: this image is too large to decode safely ({' '.join(str(e).split())}). "
                             "Shrink it first.") from None
        except (OSError, ValueError, SyntaxError):
            raise ImageError(f"{label}: cannot read it: not an image Pillow knows (PNG, JPEG, ...; got {what}).") from None
    if formats is not None and img.format not in formats:
        raise ImageError(f"{label}: image format {img.format} is not accepted. Send one of {', '.join(formats)}.")
    w, h = img.size
    if max_side is not None and not (1 <= w <= max_side and 1 <= h <= max_side):
        raise ImageError(f"{label}: the image must be 1 to {max_side} pixels on each side. Received: {w}x{h}.")
    try:
        img.load()
        return ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: this image is too large to decode safely ({' '.join(str(e).split())}). "
                         "Shrink it first.") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as e:   # truncated or corrupt data
        raise ImageError(f"{label}: the {img.format or ''} image is truncated or corrupt "
                         f"({' '.join(str(e).split()) or type(e).__name__}).") from None


def _has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def ground_shade(rgba: np.ndarray) -> int:
    """The shade (0 or 255) laid under a transparent picture; see the module's rule.

    Shape: ``rgba`` uint8 ``(h, w, 4)``.
    """
    alpha = rgba[..., 3].astype(np.float64) / 255
    # luma of each pixel's colour (ITU-R 601, what Pillow's "L" conversion uses), in [0, 1]
    luma = rgba[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    if alpha.mean() < 0.5:   # a drawing on a transparent sheet: contrast with its strokes
        strokes = float((luma * alpha).sum() / max(alpha.sum(), 1e-12))
        return 255 if strokes < 0.5 else 0
    opaque = luma[alpha >= 0.5]   # a picture with its own ground: continue that ground
    return 255 if float(np.median(opaque)) >= 0.5 else 0


def flatten_alpha(img):
    """A PIL image without transparency: laid over white or black (:func:`ground_shade`)."""
    Image = _pil()
    if not _has_alpha(img):
        return img
    rgba = img.convert("RGBA")
    shade = ground_shade(np.asarray(rgba))
    ground = Image.new("RGBA", rgba.size, (shade, shade, shade, 255))
    gray = img.mode in ("LA", "La")   # a gray picture stays gray
    return Image.alpha_composite(ground, rgba).convert("L" if gray else "RGB")


def _to_channels(img, channels: int | None):
    """PIL image in mode "L" (``channels=1``) or "RGB" (3); None keeps gray pictures gray."""
    if channels is None:
        channels = 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
    if channels not in (1, 3):
        raise ImageError(f"pictures become 1-channel (grayscale) or 3-channel (RGB) inputs. "
                         f"Received: channels={channels}.")
    return img.convert("L" if channels == 1 else "RGB")


def _resize_uint8(a: np.ndarray, size_hw) -> np.ndarray:
    """Bilinear (anti-aliased when shrinking) resize of a uint8 ``(h, w, c)`` array with Pillow."""
    Image = _pil()
    h, w = int(size_hw[0]), int(size_hw[1])
    if a.shape[:2] == (h, w):
        return a
    img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    out = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)   # Pillow sizes are (w, h)
    return out.reshape(h, w, a.shape[-1])


def read_image(source, channels: int | None = None, size=None, name: str | None = None) -> np.ndarray:
    """A picture as uint8 ``(h, w, c)``: upright, transparency laid over its ground, in the channels asked.

    Args:
        source: a file path, the file's bytes, or a PIL image.
        channels: 1 (grayscale) or 3 (RGB); None keeps a gray picture gray and makes others RGB.
        size: ``(height, width)`` to resize to (Pillow bilinear); None keeps the picture's size.
        name: how messages name the picture.

    Shape:
        returns ``(h, w, channels)``, uint8.
    """
    img = _to_channels(flatten_alpha(open_image(source, name)), channels)
    a = np.asarray(img, dtype=np.uint8)
    a = a.reshape(a.shape[0], a.shape[1], -1)
    return a if size is None else _resize_uint8(a, size)


# ----------------------------------------------------------------------------------------- the rules
def is_blank(a: np.ndarray) -> bool:
    """Whether a uint8 picture is (nearly) one flat shade: all pixels within :data:`BLANK_LEVELS`."""
    return int(a.max()) - int(a.min()) <= BLANK_LEVELS


def trained_mean(meta) -> float | None:
    """The mean pixel (0..1) of a model's training images, from the description ``striate train``
    stores with the weights (``meta["preprocess"]["mean"]``); None when it is not recorded."""
    pre = (meta or {}).get("preprocess") if isinstance(meta, dict) else None
    mean = (pre or {}).get("mean")
    if mean is None:
        return None
    return float(np.mean(np.asarray(mean, dtype=np.float64)))


def should_invert(gray: np.ndarray, trained: float | None = None) -> bool:
    """Whether ``invert="auto"`` inverts a grayscale picture for a model.

    The picture's ground is judged by its border (the outermost rows and columns): light when their
    mean is above half. The model's ground by ``trained``, the mean pixel of its training images:
    strokes on a dark ground below 1/3, on a light ground above 2/3 (photos in between: never
    inverted). None (not recorded) is taken as a dark ground, as in the digit data sets.

    Args:
        gray: the picture ``(h, w)``, uint8 or float in [0, 1].
        trained: the training images' mean pixel in [0, 1], or None.
    """
    g = np.asarray(gray)
    g = g.astype(np.float64) / 255 if g.dtype == np.uint8 else g.astype(np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    light = float(border.mean()) > 0.5
    trained = 0.0 if trained is None else trained
    if trained < DARK_DATA:
        return light
    if trained > LIGHT_DATA:
        return not light
    return False


# ------------------------------------------------------------------------------------ digit framing
def _ink_box(gray: np.ndarray):
    rows = np.flatnonzero((gray > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((gray > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        raise ImageError("the image is blank: no ink was found (pixels above "
                         f"{INK_THRESHOLD:g} after inversion). Draw a digit, or use preprocess=resize.")
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _resize_float(gray: np.ndarray, size_hw) -> np.ndarray:
    """Anti-aliased (Lanczos) resize of a float [0, 1] ``(h, w)`` array to ``(height, width)``."""
    Image = _pil()
    img = Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L")
    out = img.resize((int(size_hw[1]), int(size_hw[0])), Image.LANCZOS)
    return np.asarray(out, dtype=np.float32) / 255.0


def _place(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Paste ``patch`` into ``canvas`` at (top, left), cropping whatever falls outside."""
    h, w = canvas.shape
    ph, pw = patch.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + ph, h), min(left + pw, w)
    if t1 > t0 and l1 > l0:
        canvas[t0:t1, l0:l1] = patch[t0 - top:t1 - top, l0 - left:l1 - left]


def mnist_style(gray: np.ndarray, size: int = 28) -> np.ndarray:
    """LeCun's MNIST normalisation of a light-on-dark ``(h, w)`` digit into a ``size x size`` frame.

    The ink's bounding box is scaled, keeping its aspect ratio, to fit a 20x20 box (anti-aliased) and
    placed in the 28x28 frame so that its centre of mass lies at the centre (LeCun, Cortes & Burges,
    the MNIST page). Other square sizes keep the proportions (box = 20/28 of the frame).

    Shape: ``(h, w)`` float [0, 1] -> ``(size, size)`` float32 [0, 1].
    """
    r0, r1, c0, c1 = _ink_box(gray)
    crop = gray[r0:r1, c0:c1]
    box = max(1, int(round(size * 20 / 28)))           # 20 of 28
    scale = box / max(crop.shape)
    patch = _resize_float(crop, (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))))
    mass = patch.sum()
    if mass <= 0:  # the ink vanished in the resize (a one-pixel speck): centre the box instead
        cy, cx = (patch.shape[0] - 1) / 2, (patch.shape[1] - 1) / 2
    else:
        ys, xs = np.indices(patch.shape)
        cy, cx = (ys * patch).sum() / mass, (xs * patch).sum() / mass
    out = np.zeros((size, size), np.float32)
    # MNIST's own digits have their centre of mass at row/column index 14.0 of 28 (measured on the
    # test set: 13.98, 14.01), i.e. at size / 2, not at the middle pixel's index 13.5
    centre = size / 2
    _place(out, patch, int(round(centre - cy)), int(round(centre - cx)))
    return out


def optdigits_style(gray: np.ndarray, size: int = 8) -> np.ndarray:
    """The normalisation of scikit-learn's 8x8 digits: fill a 32x32 bitmap, average 4x4 blocks.

    For the UCI "optdigits" set (Alpaydin & Kaynak 1998): the bounding box fills a 32x32 bitmap --
    full height, width by the aspect ratio but at least half the frame, as the set's narrow "1"s
    show -- centred, and each 4x4 block is averaged into one pixel (the set counted the set pixels
    of each 4x4 block).

    Shape: ``(h, w)`` float [0, 1] -> ``(size, size)`` float32 [0, 1].
    """
    r0, r1, c0, c1 = _ink_box(gray)
    crop = gray[r0:r1, c0:c1]
    big = 4 * size                                       # the 32x32 bitmap of the data set
    h, w = crop.shape
    if h >= w:   # the long side fills the frame, the short one keeps the aspect but >= half
        th, tw = big, min(big, max(big // 2, round(big * w / h)))
    else:
        th, tw = min(big, max(big // 2, round(big * h / w))), big
    patch = _resize_float(crop, (th, tw))
    frame = np.zeros((big, big), np.float32)
    _place(frame, patch, (big - th) // 2, (big - tw) // 2)
    # (32, 32) -> (8, 4, 8, 4) -> mean over each 4x4 block -> (8, 8)
    return frame.reshape(size, 4, size, 4).mean(axis=(1, 3))


# ----------------------------------------------------------------------------------------- preparing
def prepare(image, input_shape, meta=None, invert="auto", mode: str = "resize", name: str | None = None) -> np.ndarray:
    """A picture as a model takes it, before standardisation: float32 ``(h, w, c)`` in [0, 1].

    Args:
        image: a file path, the file's bytes, or a PIL image (see :func:`open_image`).
        input_shape: the model's ``(height, width, channels)``; channels 1 or 3.
        meta: the model's description as ``striate train`` stores it (for the ``invert="auto"`` rule:
            the training images' mean pixel); None assumes light strokes on a dark ground.
        invert: ``"auto"`` (:func:`should_invert`), ``True`` or ``False``.
        mode: ``"resize"``, ``"digit"`` or ``"none"`` (see the module docstring).
        name: how messages name the picture.

    Shape:
        returns ``input_shape``, float32.

    Raises:
        ImageError: an unreadable or blank picture, a bad option, a size ``"none"`` cannot take.
    """
    h, w, c = (int(s) for s in input_shape)
    label = _label(image, name)
    if c not in (1, 3):
        raise ImageError(f"pictures become 1-channel (grayscale) or 3-channel (RGB) inputs; this model takes {c} "
                         "channels. Call the model from Python with your own arrays.")
    if mode not in MODES:
        raise ImageError(f"preprocess must be one of {', '.join(MODES)}. Received: preprocess={mode!r}.")
    if invert not in (True, False, "auto"):
        raise ImageError(f"invert must be true, false or 'auto'. Received: invert={invert!r}.")
    if mode == "digit" and c != 1:
        raise ImageError(f"preprocess=digit centres a drawn digit for one-channel models; this model takes "
                         f"{c} channels. Use preprocess=resize.")
    if mode == "digit" and h != w:
        raise ImageError(f"preprocess=digit needs a square model input; this one is {h}x{w}. "
                         "Use preprocess=resize.")
    a = read_image(image, c, name=label)                                   # uint8 (H, W, c)
    if mode == "none" and a.shape[:2] != (h, w):
        raise ImageError(f"with preprocess=none the image must have the model's size {w}x{h} (width x height). "
                         f"Received: {a.shape[1]}x{a.shape[0]}. Use preprocess=resize or digit.")
    if is_blank(a):
        lo, hi = int(a.min()), int(a.max())
        raise ImageError(f"{label} is blank: every pixel lies between {lo} and {hi} (of 255), so nothing is drawn "
                         "and no answer would mean anything. Give a picture with something on it.")
    if invert == "auto":
        invert = c == 1 and should_invert(a[..., 0], trained_mean(meta))
    if invert:
        a = 255 - a
    if mode == "digit":
        g = a[..., 0].astype(np.float32) / 255
        out = optdigits_style(g, h) if h == 8 else mnist_style(g, h)
        return out[..., None].astype(np.float32)
    return _resize_uint8(a, (h, w)).astype(np.float32) / np.float32(255)


def load_array(path, input_shape, name: str = "the array") -> np.ndarray:
    """An image stored as a ``.npy`` array, already preprocessed: float32 ``(h, w, c)``.

    ``(h, w)`` and a batch of one ``(1, h, w, c)`` are accepted. Pickled (object) arrays are never
    loaded: no code runs from a file.

    Raises:
        ImageError: no such file, not a ``.npy`` file, pickled data, a non-numeric dtype, non-finite
            values, or a shape other than ``input_shape``.
    """
    shape = tuple(int(s) for s in input_shape)
    label = os.fspath(path)
    if not os.path.isfile(label):
        raise ImageError(f"no file at {label!r}.")
    with open(label, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":   # np.load would take anything else for a pickle
        raise ImageError(f"{label} is not a readable .npy array (it does not start with NumPy's .npy header). "
                         "Save the image with np.save(path, array), or give a PNG or JPEG file.")
    try:
        a = np.load(label, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):   # an object array: its items are pickles
            raise ImageError(f"{label} holds pickled Python objects, not a numeric array; striate does not load "
                             "pickles. Save the image with np.save(path, array) from a float or uint8 array.") from None
        raise ImageError(f"{label} is not a readable .npy array ({' '.join(str(e).split())}).") from None
    except (OSError, EOFError) as e:
        raise ImageError(f"{label} is not a readable .npy array ({' '.join(str(e).split()) or type(e).__name__}).") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        what = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ImageError(f"{label} must hold a numeric image array. Received: {what}.")
    found = a.shape
    a = a[..., None] if a.ndim == 2 else (a[0] if a.ndim == 4 and len(a) == 1 else a)
    if a.shape != shape:
        raise ImageError(f"{label}: the model takes images of shape {shape} (h, w, c); the array has shape "
                         f"{found}.")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ImageError(f"{label} holds NaN or infinite values; an image must be finite.")
    return a
