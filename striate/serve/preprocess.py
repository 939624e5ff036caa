"""From an uploaded or drawn picture to the array a model takes: decoding and digit normalisation.

Every error here is a :class:`ImageError` (a ``ValueError``) whose message names what was wrong
with the picture and how to fix it; the web app turns it into an HTTP 400 with a JSON body.

Three ways to bring a picture to the model's ``(height, width, channels)``:

* ``"digit"`` — what a drawn digit needs to look like the data the model learnt from
  (one-channel models only). For a 28x28 model, LeCun's MNIST normalisation: the ink's bounding box
  is scaled, keeping its aspect ratio, to fit a 20x20 box (anti-aliased), which is then placed in
  the 28x28 frame so that its centre of mass lies at the centre (LeCun, Cortes & Burges, the MNIST
  page). Other square sizes use the same proportions (box = 20/28 of the frame). For the 8x8
  digits of scikit-learn (UCI "optdigits", Alpaydin & Kaynak 1998): the bounding box fills a 32x32
  bitmap — full height, width by the aspect ratio but at least half the frame, as the data set's
  narrow "1"s show — centred, and each 4x4 block is averaged into one of the 8x8 pixels (the data
  set counted the set pixels of each 4x4 block).
* ``"resize"`` — the whole picture resized to the model's size (bilinear), as ``striate predict``
  does; the choice for RGB models and for pictures already framed like the training data.
* ``"none"`` — the picture must already have the model's size.

Grayscale pictures may be inverted first: the digit data sets are light ink on a dark ground, a
scan is dark ink on white. ``invert="auto"`` inverts when the picture's border is mostly light.
"""
from __future__ import annotations

import base64
import binascii
import io

import numpy as np

MODES = ("digit", "resize", "none")
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")   # what the API accepts (Pillow decodes them)
MAX_SIDE = 4096           # pixels per side: a larger picture is refused before it is decoded
INK_THRESHOLD = 0.1       # a pixel is ink above this (0..1): ignores JPEG noise and faint smudges


class ImageError(ValueError):
    """A picture that cannot be used (not an image, wrong size, blank, ...)."""


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("striate serve reads images with Pillow: pip install striate[serve].") from None
    return Image


def decode_data_url(url) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL (what a canvas's ``toDataURL`` gives)."""
    if not isinstance(url, str):
        raise ImageError(f"'image' must be a data URL string like 'data:image/png;base64,...'. "
                         f"Received: a {type(url).__name__}.")
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ImageError(f"'image' must be a base64 data URL of an image ('data:image/png;base64,...'). "
                         f"Received: a string starting {url[:30]!r}.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data URL's payload is not valid base64.") from None


def decode_image(data: bytes):
    """Open ``data`` as a PIL image (PNG, JPEG, GIF, BMP or WebP), checking its size before decoding it."""
    Image = _pillow()
    from PIL import UnidentifiedImageError

    if not data:
        raise ImageError("the request holds no image: send the PNG or JPEG bytes as the body, "
                         "or JSON {\"image\": \"data:image/png;base64,...\"}.")
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageError(f"the body is not an image Pillow can read (expected PNG or JPEG; "
                         f"{len(data)} bytes starting {data[:8]!r}).") from None
    if img.format not in FORMATS:
        raise ImageError(f"image format {img.format} is not accepted. Send one of {', '.join(FORMATS)}.")
    w, h = img.size
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ImageError(f"the image must be 1 to {MAX_SIDE} pixels on each side. Received: {w}x{h}.")
    try:
        img.load()
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise ImageError(f"the {img.format} image is truncated or corrupt ({e}).") from None
    return img


def to_array(img, channels: int) -> np.ndarray:
    """PIL image -> float32 ``(h, w, channels)`` in [0, 1]; transparency is laid over white."""
    Image = _pillow()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        ground = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(ground, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a.reshape(a.shape[0], a.shape[1], -1)


def should_invert(gray: np.ndarray) -> bool:
    """Whether a grayscale ``(h, w)`` picture is dark ink on a light ground (its border is light)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean()) > 0.5


def _ink_box(gray: np.ndarray):
    rows = np.flatnonzero((gray > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((gray > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        raise ImageError("the image is blank: no ink was found (pixels above "
                         f"{INK_THRESHOLD:g} after inversion). Draw a digit, or use preprocess=resize.")
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _resize(gray: np.ndarray, size_hw) -> np.ndarray:
    """Anti-aliased resize of a float [0, 1] ``(h, w)`` array to ``(height, width)``."""
    Image = _pillow()
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

    Shape: ``(h, w)`` float [0, 1] -> ``(size, size)`` float32 [0, 1].
    """
    r0, r1, c0, c1 = _ink_box(gray)
    crop = gray[r0:r1, c0:c1]
    box = max(1, int(round(size * 20 / 28)))           # 20 of 28
    scale = box / max(crop.shape)
    patch = _resize(crop, (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))))
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
    patch = _resize(crop, (th, tw))
    frame = np.zeros((big, big), np.float32)
    _place(frame, patch, (big - th) // 2, (big - tw) // 2)
    # (32, 32) -> (8, 4, 8, 4) -> mean over each 4x4 block -> (8, 8)
    return frame.reshape(size, 4, size, 4).mean(axis=(1, 3))


def prepare(img, input_shape, mode: str = "digit", invert="auto") -> np.ndarray:
    """A PIL image as the model sees it, before standardisation: float32 ``(h, w, c)`` in [0, 1].

    Args:
        img: a PIL image (see :func:`decode_image`).
        input_shape: the model's ``(height, width, channels)``.
        mode: ``"digit"`` (one-channel models), ``"resize"`` or ``"none"`` (see the module docstring).
        invert: ``True``, ``False`` or ``"auto"`` (grayscale only; ignored for RGB models).

    Shape:
        returns ``input_shape``.
    """
    h, w, c = (int(s) for s in input_shape)
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
    if mode == "none" and img.size != (w, h):
        raise ImageError(f"with preprocess=none the image must have the model's size {w}x{h} (width x height). "
                         f"Received: {img.size[0]}x{img.size[1]}. Use preprocess=resize or digit.")
    a = to_array(img, c)
    if c == 1 and (invert is True or (invert == "auto" and should_invert(a[..., 0]))):
        a = 1.0 - a
    if mode == "digit":
        g = a[..., 0]
        out = optdigits_style(g, h) if h == 8 else mnist_style(g, h)
        return out[..., None].astype(np.float32)
    if mode == "resize" and (a.shape[0], a.shape[1]) != (h, w):
        Image = _pillow()
        chans = [Image.fromarray(np.round(a[..., k] * 255).astype(np.uint8), mode="L")
                 .resize((w, h), Image.BILINEAR) for k in range(c)]
        a = np.stack([np.asarray(ch, np.float32) / 255.0 for ch in chans], axis=-1)
    return a.astype(np.float32)
