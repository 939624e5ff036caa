"""Arrays to small PNG images for the page: activation maps, filters, the model's input.

Maps are sent at their own resolution (an 8x8 map is an 8x8 PNG, ~100 bytes); the page enlarges
them with ``image-rendering: pixelated``, so every unit stays a crisp square the mouse can point at.

Colours: one scale per layer, so the maps of a layer can be compared with each other.
Non-negative layers (after a ReLU or a pooling of ReLUs) use a dark-to-bright sequential map;
layers with both signs a diverging map centred on zero (blue negative, white zero, red positive),
symmetric so that zero is always white. The scale ends at a robust maximum (see
:func:`colour_scale`); the page shows the layer's true min and max beside it.
"""
from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

# Anchor colours of the two maps, interpolated linearly to 256 entries.
# Sequential: near-black blue -> purple -> orange -> pale yellow (like matplotlib's "magma").
_SEQUENTIAL = [(0.0, (12, 8, 38)), (0.25, (80, 18, 123)), (0.5, (182, 54, 121)),
               (0.75, (251, 136, 97)), (1.0, (252, 253, 191))]
# Diverging: blue -> white -> red (like ColorBrewer's "RdBu", reversed).
_DIVERGING = [(0.0, (33, 102, 172)), (0.25, (146, 197, 222)), (0.5, (247, 247, 247)),
              (0.75, (244, 165, 130)), (1.0, (178, 24, 43))]


def _lut(anchors) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 256)
    pos = [a[0] for a in anchors]
    return np.stack([np.interp(t, pos, [a[1][k] for a in anchors]) for k in range(3)], axis=1).round().astype(np.uint8)


SEQUENTIAL = _lut(_SEQUENTIAL)   # (256, 3) uint8
DIVERGING = _lut(_DIVERGING)     # (256, 3) uint8


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode ``(h, w)`` gray, ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA uint8 as a PNG file.

    The PNG layout (W3C PNG spec, 2nd ed.): signature, IHDR (size, 8-bit depth, colour type), one
    IDAT holding the zlib stream of the rows, each led by filter byte 0 (none), IEND. A request renders
    hundreds of maps of a few dozen pixels, where a general image library's per-file set-up would
    cost several times the encoding itself. Pillow reads these files back in the tests.
    """
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = a.shape[:2]
    # PNG colour types: 0 gray, 2 RGB, 6 RGBA
    colour = 0 if a.ndim == 2 else {1: 0, 3: 2, 4: 6}[a.shape[2]]
    rows = np.zeros((h, 1 + a[0].size), np.uint8)           # (h, 1 + w * channels): filter byte 0
    rows[:, 1:] = a.reshape(h, -1)
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", _zlib(rows.tobytes())) + _chunk(b"IEND", b""))


def _zlib(raw: bytes) -> bytes:
    """A zlib stream of ``raw``: up to 1 KiB (a map of up to ~18x18) one *stored* deflate block
    (RFC 1950/1951: header, block flag, length and its complement, the bytes, Adler-32), since
    deflate saves nothing on a few hundred noisy bytes but costs a compressor set-up each time;
    larger images are compressed."""
    if len(raw) > 1024:
        return zlib.compress(raw, 1)
    n = len(raw)
    return (b"\x78\x01\x01" + struct.pack("<HH", n, n ^ 0xFFFF) + raw
            + struct.pack(">I", zlib.adler32(raw)))


def png_data_url(pixels: np.ndarray) -> str:
    """``(h, w)``, ``(h, w, 3)`` or ``(h, w, 4)`` uint8 -> ``data:image/png;base64,...``."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def colour_scale(y: np.ndarray):
    """``(lut, lo, hi)``: the colour map and the scale to colour the values ``y`` of one layer with.

    The scale ends at the 99th percentile of the magnitudes (for layers of 256 values or more),
    so that a handful of extreme units does not wash every other map out to one colour; the few
    values beyond it saturate. Smaller layers (a dense layer's units) use their full range.
    """
    signed = float(y.min()) < 0
    mag = np.abs(y) if signed else y
    top = float(np.percentile(mag, 99)) if y.size >= 256 else float(mag.max())
    if top <= 0:
        top = max(float(mag.max()), 1e-12)
    return (DIVERGING, -top, top) if signed else (SEQUENTIAL, 0.0, top)


def colourise(a: np.ndarray, lut: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values -> RGB through ``lut`` on the scale [lo, hi]. Shape: ``(...)`` -> ``(..., 3)`` uint8."""
    idx = np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return lut[idx]


def feature_maps(y: np.ndarray, limit: int):
    """One PNG per channel of a ``(h, w, c)`` activation, on the layer's common colour scale.

    Returns ``(urls, lo, hi, signed)``: the first ``min(c, limit)`` maps, the scale's ends and
    whether the diverging (signed) map was used.
    """
    lut, lo, hi = colour_scale(y)
    rgb = colourise(y[..., :limit], lut, lo, hi)            # (h, w, k, 3)
    return [png_data_url(rgb[:, :, k]) for k in range(rgb.shape[2])], lo, hi, lut is DIVERGING


def vector_grid(k: int) -> tuple[int, int]:
    """Rows and columns of the grid a vector of ``k`` units is drawn as (at most 32 per row)."""
    cols = min(k, 32)
    return -(-k // cols), cols


def vector_map(v: np.ndarray):
    """A ``(k,)`` vector (a dense layer's units) as one RGBA grid image; unused cells are transparent.

    Returns ``(url, lo, hi, signed, (rows, cols))``.
    """
    k = v.size
    rows, cols = vector_grid(k)
    lut, lo, hi = colour_scale(v)
    rgba = np.zeros((rows * cols, 4), np.uint8)
    rgba[:k, :3] = colourise(v.reshape(-1), lut, lo, hi)
    rgba[:k, 3] = 255
    return png_data_url(rgba.reshape(rows, cols, 4)), lo, hi, lut is DIVERGING, (rows, cols)


def filters(w: np.ndarray, limit: int = 64) -> list[str]:
    """First-layer kernels ``(kh, kw, cin, cout)`` (HWIO) as PNGs.

    RGB kernels (cin == 3) are shown in colour, each stretched to its own range; other kernels are
    averaged over their input channels and drawn on one diverging scale shared by all filters
    (blue negative, red positive weights).
    """
    w = np.asarray(w, np.float32)[..., :limit]
    if w.shape[2] == 3:
        lo = w.min(axis=(0, 1, 2), keepdims=True)
        span = np.maximum(w.max(axis=(0, 1, 2), keepdims=True) - lo, 1e-12)
        rgb = np.round((w - lo) / span * 255).astype(np.uint8)       # (kh, kw, 3, k)
        return [png_data_url(rgb[..., k]) for k in range(rgb.shape[3])]
    g = w.mean(axis=2)                                                # (kh, kw, k)
    m = max(float(np.abs(g).max()), 1e-12)
    rgb = colourise(g, DIVERGING, -m, m)                              # (kh, kw, k, 3)
    return [png_data_url(rgb[:, :, k]) for k in range(rgb.shape[2])]


def input_image(x: np.ndarray) -> str:
    """The model's input ``(h, w, c)`` in [0, 1] as a gray or RGB PNG."""
    a = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    return png_data_url(a[..., :3] if a.shape[2] == 3 else a[..., 0])
