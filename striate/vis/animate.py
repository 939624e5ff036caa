"""Conv arithmetic, frame by frame: the window sliding over the (padded) input and the output cell
it fills, in the manner of Dumoulin & Visin's "A guide to convolution arithmetic" (2016) figures.

:func:`conv_animation` and :func:`pool_animation` compute the frames (pure NumPy + striate's own
ops: the values are those of ``F.conv2d``, ``F.max_pool2d`` and ``F.avg_pool2d``);
:func:`draw_frames` paints them with Pillow and :func:`save_gif` writes the GIF.

Geometry along each axis, with kernel k, stride s, padding p, dilation d:

* direct convolution / pooling: input i, output ``o = floor((i + 2p - d(k - 1) - 1) / s) + 1``; the
  window of output cell ``q`` starts at input coordinate ``q * s - p`` (negative = in the padding)
  and touches ``q * s - p + t * d`` for ``t < k``. One frame per output cell.
* transposed convolution (the adjoint of the direct one, i.e. the input gradient of ``F.conv2d``):
  input i, output ``o = (i - 1) s - 2p + d(k - 1) + 1``. Input cell ``q`` spreads ``x[q] * w`` onto
  output cells ``q * s - p + t * d``; cells that fall outside ``[0, o)`` are the cropped padding.
  One frame per input cell; the output accumulates.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from ..random import check_random_state
from ..tensor import Tensor


def _pair(v, name, minimum):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= minimum for i in v)):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair (height, width) of them. Received: {name}={v!r}.")
    return int(v[0]), int(v[1])


@dataclass
class Frame:
    """One step of an animation.

    Attributes:
        cell: the output cell computed (direct conv, pooling) or the input cell spread (transposed).
        origin: top-left ``(row, col)`` of the window: in padded-input coordinates relative to the
            unpadded input (direct; negative = padding) or in output coordinates (transposed).
        taps: the ``kh * kw`` cells the kernel touches, in the same coordinates as ``origin``.
        output: the output so far ``(oh, ow)``; NaN where nothing was written yet.
    """

    cell: tuple
    origin: tuple
    taps: list
    output: np.ndarray


@dataclass
class Animation:
    """The frames of one conv / pooling arithmetic animation and the values behind them."""

    kind: str                 # 'conv', 'transposed', 'max' or 'avg'
    input_size: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    output_size: tuple
    x: np.ndarray             # (ih, iw) input values
    w: np.ndarray | None      # (kh, kw) kernel values (None for pooling)
    y: np.ndarray             # (oh, ow) the op's result
    frames: list = field(default_factory=list)

    def describe(self) -> str:
        def fmt(p):
            return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
        name = {"conv": "convolution", "transposed": "transposed convolution",
                "max": "max pooling", "avg": "average pooling"}[self.kind]
        parts = [f"input {fmt(self.input_size)}", f"kernel {fmt(self.kernel)}", f"stride {fmt(self.stride)}",
                 f"padding {fmt(self.padding)}"]
        if self.dilation != (1, 1):
            parts.append(f"dilation {fmt(self.dilation)}")
        return f"{name}: " + ", ".join(parts) + f" -> output {fmt(self.output_size)}"


def _taps(origin, kernel, dilation):
    return [(origin[0] + a * dilation[0], origin[1] + b * dilation[1])
            for a in range(kernel[0]) for b in range(kernel[1])]


def conv_animation(input_size, kernel_size, stride=1, padding=0, dilation=1, transposed: bool = False,
                   rng=0) -> Animation:
    """Frames of a single-channel convolution (or its transpose) on small integer values.

    Args:
        input_size, kernel_size, stride, padding, dilation: ints or (height, width) pairs.
        transposed: animate the transposed convolution with these settings (stride inserts gaps,
            padding crops the output), one frame per input cell.
        rng: seed or Generator for the input values (0..3) and kernel values (0..2).

    Returns:
        :class:`Animation`; ``y`` is ``F.conv2d`` of ``x`` and ``w`` (direct) or the transposed
        convolution of ``x`` (the input gradient of ``F.conv2d``, computed by striate's backward).

    Example::

        >>> a = conv_animation(5, 3, stride=2, padding=1)
        >>> a.output_size, len(a.frames)
        ((3, 3), 9)
    """
    (ih, iw), (kh, kw) = _pair(input_size, "input", 1), _pair(kernel_size, "kernel", 1)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride", 1), _pair(padding, "padding", 0), _pair(dilation, "dilation", 1)
    gen = check_random_state(rng)
    x = gen.integers(0, 4, size=(ih, iw)).astype(np.float64)
    w = gen.integers(0, 3, size=(kh, kw)).astype(np.float64)
    w4 = w[:, :, None, None]                                                    # HWIO (kh, kw, 1, 1)
    if not transposed:
        span_h, span_w = ih + 2 * ph - dh * (kh - 1), iw + 2 * pw - dw * (kw - 1)
        if span_h < 1 or span_w < 1:
            raise ValueError(f"the dilated kernel ({dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}) is larger than the padded "
                             f"input ({ih + 2 * ph}x{iw + 2 * pw}): the output would be empty. Use a smaller kernel, "
                             "dilation or more padding.")
        if ph >= dh * (kh - 1) + 1 or pw >= dw * (kw - 1) + 1:
            raise ValueError(f"padding must be smaller than the dilated kernel, or some windows see only padding. "
                             f"Received: padding=({ph}, {pw}), kernel=({kh}, {kw}), dilation=({dh}, {dw}).")
        y = F.conv2d(x[None, :, :, None], w4, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw)).data[0, :, :, 0]
        oh, ow = y.shape
        anim = Animation("conv", (ih, iw), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow), x, w, y)
        out = np.full((oh, ow), np.nan)
        for p in range(oh):
            for q in range(ow):
                out[p, q] = y[p, q]
                origin = (p * sh - ph, q * sw - pw)
                anim.frames.append(Frame((p, q), origin, _taps(origin, (kh, kw), (dh, dw)), out.copy()))
        return anim

    oh, ow = (ih - 1) * sh - 2 * ph + dh * (kh - 1) + 1, (iw - 1) * sw - 2 * pw + dw * (kw - 1) + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"the transposed convolution's output would be empty ({oh}x{ow}): padding crops more than "
                         f"the output has. Use less padding. Received: padding=({ph}, {pw}).")

    def transpose_conv(values):
        # The transposed conv of `values` is d conv2d(z) / d z contracted with `values`: striate's backward.
        z = Tensor(np.zeros((1, oh, ow, 1)), requires_grad=True)
        F.conv2d(z, w4, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw)).backward(values[None, :, :, None])
        return z.grad[0, :, :, 0]

    y = transpose_conv(x)
    anim = Animation("transposed", (ih, iw), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow), x, w, y)
    # output cells no input cell reaches (the gaps of a stride larger than the dilated kernel)
    # hold 0 from the start; the others show a value once a window has written them
    written = np.ones((oh, ow), bool)
    for i in range(ih):
        for j in range(iw):
            for r, c in _taps((i * sh - ph, j * sw - pw), (kh, kw), (dh, dw)):
                if 0 <= r < oh and 0 <= c < ow:
                    written[r, c] = False
    mask = np.zeros_like(x)
    for i in range(ih):
        for j in range(iw):
            mask[i, j] = 1.0
            origin = (i * sh - ph, j * sw - pw)
            taps = _taps(origin, (kh, kw), (dh, dw))
            for r, c in taps:
                if 0 <= r < oh and 0 <= c < ow:
                    written[r, c] = True
            out = np.where(written, transpose_conv(x * mask), np.nan)  # the input cells spread so far
            anim.frames.append(Frame((i, j), origin, taps, out))
    return anim


def pool_animation(input_size, kernel_size, stride=None, padding=0, mode: str = "max", rng=0) -> Animation:
    """Frames of max or average pooling on small integer values (``y`` from F.max_pool2d / F.avg_pool2d).

    Example::

        >>> len(pool_animation(4, 2, 2).frames)
        4
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg'. Received: mode={mode!r}.")
    (ih, iw), (kh, kw) = _pair(input_size, "input", 1), _pair(kernel_size, "kernel", 1)
    (sh, sw) = _pair(kernel_size if stride is None else stride, "stride", 1)
    (ph, pw) = _pair(padding, "padding", 0)
    if ih + 2 * ph < kh or iw + 2 * pw < kw:
        raise ValueError(f"the pooling window ({kh}x{kw}) is larger than the padded input ({ih + 2 * ph}x{iw + 2 * pw}).")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding must be at most half the pooling window. Received: padding=({ph}, {pw}), "
                         f"kernel=({kh}, {kw}).")
    gen = check_random_state(rng)
    x = gen.integers(0, 10, size=(ih, iw)).astype(np.float64)
    op = F.max_pool2d if mode == "max" else F.avg_pool2d
    y = op(x[None, :, :, None], (kh, kw), stride=(sh, sw), padding=(ph, pw)).data[0, :, :, 0]
    oh, ow = y.shape
    anim = Animation(mode, (ih, iw), (kh, kw), (sh, sw), (ph, pw), (1, 1), (oh, ow), x, None, y)
    out = np.full((oh, ow), np.nan)
    for p in range(oh):
        for q in range(ow):
            out[p, q] = y[p, q]
            origin = (p * sh - ph, q * sw - pw)
            anim.frames.append(Frame((p, q), origin, _taps(origin, (kh, kw), (1, 1)), out.copy()))
    return anim


# ----------------------------------------------------------------------------------------- drawing
_COLORS = dict(
    input="#9ec5e8", pad="#f2f2f2", grid="#3a5f85", window="#2f6db3", window_box="#cfe0f1",
    output="#b9e4d6", filled="#7fcfb3", current="#1f8f6a", cropped="#e6e6e6", text="#111111",
)


def _fmt(v: float) -> str:
    if np.isnan(v):
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


class _Painter:
    """Cells of a grid on one frame: ``box`` fills a cell, ``text`` writes in its centre or corner."""

    def __init__(self, draw, cell, font, small):
        self.d, self.cell, self.font, self.small = draw, cell, font, small

    def box(self, x0, y0, r, c, fill, outline=_COLORS["grid"], width=1):
        k = self.cell
        self.d.rectangle([x0 + c * k, y0 + r * k, x0 + (c + 1) * k - 1, y0 + (r + 1) * k - 1],
                         fill=fill, outline=outline, width=width)

    def text(self, x0, y0, r, c, s, color=_COLORS["text"], corner=False):
        if not s:
            return
        k = self.cell
        cx, cy = (x0 + (c + 1) * k - k // 5, y0 + (r + 1) * k - k // 5) if corner else \
            (x0 + c * k + k // 2, y0 + r * k + k // 2)
        self.d.text((cx, cy), s, fill=color, font=self.small if corner else self.font, anchor="mm")


def _kernel_value(anim, fr, cell):
    """The kernel weight that multiplies (direct) or spreads onto (transposed) ``cell`` of this frame."""
    k = fr.taps.index(cell)
    return _fmt(anim.w[k // anim.kernel[1], k % anim.kernel[1]])


def _paint_direct(p, anim, fr, numbers, left, right):
    """Direct conv / pooling: the padded input with the window (left), the output so far (right)."""
    (ih, iw), (ph, pw), (kh, kw), (dh, dw) = anim.input_size, anim.padding, anim.kernel, anim.dilation
    taps, (oy, ox) = set(fr.taps), fr.origin
    best = None
    if anim.kind == "max":  # the cell max pooling picks (first maximum, row-major, as the op)
        inside = [(r, c) for r, c in fr.taps if 0 <= r < ih and 0 <= c < iw]
        best = max(inside, key=lambda rc: (anim.x[rc], -inside.index(rc)))
    for r in range(ih + 2 * ph):
        for c in range(iw + 2 * pw):
            cell = (r - ph, c - pw)                        # input coordinates; outside = padding
            inside = 0 <= cell[0] < ih and 0 <= cell[1] < iw
            in_box = oy <= cell[0] <= oy + dh * (kh - 1) and ox <= cell[1] <= ox + dw * (kw - 1)
            fill = _COLORS["window"] if cell in taps else (
                _COLORS["window_box"] if in_box else (_COLORS["input"] if inside else _COLORS["pad"]))
            p.box(*left, r, c, fill, outline=_COLORS["grid"] if inside else "#b0b0b0")
            if cell == best:
                p.box(*left, r, c, None, outline="#ff9900", width=3)
            if numbers:
                v = anim.x[cell] if inside else (None if anim.kind == "max" else 0)   # max pads with -inf
                color = "white" if cell in taps else (_COLORS["text"] if inside else "#999999")
                p.text(*left, r, c, "" if v is None else _fmt(v), color=color)
                if anim.w is not None and cell in taps:
                    p.text(*left, r, c, _kernel_value(anim, fr, cell), color="#ffd0d0", corner=True)
    for r in range(anim.output_size[0]):
        for c in range(anim.output_size[1]):
            current = (r, c) == fr.cell
            fill = _COLORS["current"] if current else (
                _COLORS["output"] if np.isnan(fr.output[r, c]) else _COLORS["filled"])
            p.box(*right, r, c, fill, outline="#2a7a60")
            if numbers:
                p.text(*right, r, c, _fmt(fr.output[r, c]), color="white" if current else _COLORS["text"])


def _paint_transposed(p, anim, fr, numbers, left, right):
    """Transposed conv: the input cell spread (left), its window on the uncropped output (right)."""
    (ih, iw), (oh, ow), (ph, pw) = anim.input_size, anim.output_size, anim.padding
    taps = set(fr.taps)
    for r in range(ih):
        for c in range(iw):
            current = (r, c) == fr.cell
            p.box(*left, r, c, _COLORS["window"] if current else _COLORS["input"])
            if numbers:
                p.text(*left, r, c, _fmt(anim.x[r, c]), color="white" if current else _COLORS["text"])
    for r in range(oh + 2 * ph):
        for c in range(ow + 2 * pw):
            cell = (r - ph, c - pw)                        # output coordinates; outside = cropped
            inside = 0 <= cell[0] < oh and 0 <= cell[1] < ow
            if cell in taps:  # written by this input cell; dark gray where cropped away
                fill = _COLORS["current"] if inside else "#8c8c8c"
            elif inside:
                fill = _COLORS["output"] if np.isnan(fr.output[cell]) else _COLORS["filled"]
            else:
                fill = _COLORS["cropped"]
            p.box(*right, r, c, fill, outline="#2a7a60" if inside else "#b0b0b0")
            if numbers and inside:
                p.text(*right, r, c, _fmt(fr.output[cell]), color="white" if cell in taps else _COLORS["text"])
            if numbers and cell in taps:
                p.text(*right, r, c, _kernel_value(anim, fr, cell), color="#ffd0d0", corner=True)


def draw_frames(anim: Animation, numbers: bool = False, cell: int = 36):
    """Paint each frame of ``anim`` as a Pillow RGB image (input left, output right, caption above).

    Padding is drawn as pale gray cells around the input (direct) or as the cropped ring around
    the output (transposed; the window's cells that fall there are dark gray); the window's cells
    are dark blue (the light blue box around them spans a dilated kernel), the output cell being
    written dark green, the cell max pooling picks outlined in orange. With ``numbers`` the cells
    show the values (kernel weights small, in the corner of the cells they multiply); each frame
    is numbered in its caption.
    """
    from .draw import _font, pil

    Image, ImageDraw, _ = pil()
    (ih, iw), (oh, ow), (ph, pw) = anim.input_size, anim.output_size, anim.padding
    transposed = anim.kind == "transposed"
    # panel sizes in cells: the padded input (direct) / the uncropped output canvas (transposed)
    left_rows, left_cols = (ih, iw) if transposed else (ih + 2 * ph, iw + 2 * pw)
    right_rows, right_cols = (oh + 2 * ph, ow + 2 * pw) if transposed else (oh, ow)
    margin, gap, head = 16, 2 * cell, 48
    font, small, caption = _font(max(10, int(cell * 0.42))), _font(max(8, int(cell * 0.28))), _font(14)
    # wide enough for the grids and for the caption lines
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest = max(probe.textlength(anim.describe(), font=caption),
                  probe.textlength("frame 999/999: output cell (99, 99), window at (-99, -99)", font=caption))
    width = max(margin * 2 + left_cols * cell + gap + right_cols * cell, int(longest) + 2 * margin)
    rows = max(left_rows, right_rows)
    height = head + rows * cell + margin + 22
    left = (margin, head + (rows - left_rows) * cell // 2)
    right = (margin + left_cols * cell + gap, head + (rows - right_rows) * cell // 2)
    paint = _paint_transposed if transposed else _paint_direct
    what = "input cell" if transposed else "output cell"
    images = []
    for n, fr in enumerate(anim.frames):
        img = Image.new("RGB", (width, height), "white")
        d = ImageDraw.Draw(img)
        paint(_Painter(d, cell, font, small), anim, fr, numbers, left, right)
        d.text((margin, 6), anim.describe(), fill=_COLORS["text"], font=caption)
        d.text((margin, 26), f"frame {n + 1}/{len(anim.frames)}: {what} ({fr.cell[0]}, {fr.cell[1]}), "
               f"window at ({fr.origin[0]}, {fr.origin[1]})", fill=_COLORS["text"], font=caption)
        d.text((left[0], height - 20), "input" + ("" if transposed or (ph, pw) == (0, 0) else " (padding shaded)"),
               fill=_COLORS["text"], font=caption)
        d.text((right[0], height - 20),
               "output" + (" (cropped padding shaded)" if transposed and (ph, pw) != (0, 0) else ""),
               fill=_COLORS["text"], font=caption)
        images.append(img)
    return images


def save_gif(images, path, duration: int = 700) -> None:
    """Write Pillow frames as a looping GIF, atomically (``duration`` ms per frame)."""
    from ..atomic import atomic_open

    if not images:
        raise ValueError("save_gif: no frames.")
    # one palette for every frame (flat colours and anti-aliased text need few): Pillow then stores
    # each frame after the first as the rectangle that changed
    from .draw import pil

    Image, _, _ = pil()
    sample = Image.new("RGB", (images[0].width * 3, images[0].height))       # every colour used appears
    for k, im in enumerate((images[0], images[len(images) // 2], images[-1])):
        sample.paste(im, (k * images[0].width, 0))
    palette = sample.quantize(colors=48)
    frames = [im.quantize(palette=palette) for im in images]
    with atomic_open(path, "wb") as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=int(duration), loop=0,
                       disposal=1)
