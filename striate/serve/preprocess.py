"""From an uploaded or drawn picture to the array a model takes: what the page adds to striate's
one image path (:mod:`striate.data.images`, shared with ``striate predict`` and ``striate visualize``).

The page adds only what a web request needs: the picture arrives as the body's bytes or as a
``data:image/png;base64,...`` URL (what a canvas's ``toDataURL`` gives), only common formats are
accepted (:data:`FORMATS`), and its size is checked before it is decoded (:data:`MAX_SIDE`). The
rest -- EXIF orientation, transparency, refusing blank pictures, the ``invert="auto"`` rule and the
framing modes ``"digit"``, ``"resize"`` and ``"none"`` -- is :func:`striate.data.images.prepare`.
The page's default framing is ``"digit"`` (LeCun's MNIST normalisation for a drawn digit).

Every error here is an :class:`ImageError` (a ``ValueError``) whose message names what was wrong
with the picture and how to fix it; the web app turns it into an HTTP 400 with a JSON body.
"""
from __future__ import annotations

import base64
import binascii

from ..data import images
from ..data.images import ImageError, mnist_style, optdigits_style, should_invert  # noqa: F401  (the page's API)

MODES = ("digit", "resize", "none")          # the page's choices, its default first
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")   # what the API accepts (Pillow decodes them)
MAX_SIDE = 4096           # pixels per side: a larger picture is refused before it is decoded


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
    """Open ``data`` as an upright PIL image (PNG, JPEG, GIF, BMP or WebP), its size checked before decoding."""
    if not data:
        raise ImageError("the request holds no image: send the PNG or JPEG bytes as the body, "
                         "or JSON {\"image\": \"data:image/png;base64,...\"}.")
    return images.open_image(data, name="the body", formats=FORMATS, max_side=MAX_SIDE)


def prepare(img, input_shape, mode: str = "digit", invert="auto", meta=None, mean=None):
    """A picture as the model sees it, before standardisation: float32 ``(h, w, c)`` in [0, 1].

    :func:`striate.data.images.prepare` with the page's default framing (``"digit"``).

    Args:
        img: a PIL image (see :func:`decode_image`), or the picture's bytes.
        input_shape: the model's ``(height, width, channels)``.
        mode: ``"digit"`` (one-channel models), ``"resize"`` or ``"none"``.
        invert: ``True``, ``False`` or ``"auto"``.
        meta: the model's description (its training images' mean pixel decides ``"auto"``).
        mean: or that mean pixel itself, per channel in [0, 1] (:attr:`ServedModel.mean`).

    Shape:
        returns ``input_shape``.
    """
    if meta is None and mean is not None:
        meta = {"preprocess": {"mean": list(mean)}}
    return images.prepare(img, input_shape, meta=meta, invert=invert, mode=mode, name="the image")
