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
import operator
from collections.abc import Sequence
from dataclasses import dataclass

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
    """The frames of one conv / pooling arithmetic animation and the values behind them.

    ``frames`` is a sequence made on demand: each :class:`Frame` is computed when it is read, so an
    animation of many frames holds only its values, never all its frames at once.
    """

    kind: str                 # 'conv', 'transposed', 'max' or 'avg'
    input_size: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    output_size: tuple
    x: np.ndarray             # (ih, iw) input values
    w: np.ndarray | None      # (kh, kw) kernel values (None for pooling)
    y: np.ndarray | None      # (oh, ow) the op's result

    @property
    def frames(self) -> "Frames":
        return Frames(self)

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


class Frames(Sequence):
    """The frames of an :class:`Animation`, row-major over the cells that make them (output cells,
    or input cells for the transposed convolution), each computed when it is read."""

    def __init__(self, anim: Animation):
        self.anim = anim
        self.grid = anim.input_size if anim.kind == "transposed" else anim.output_size

    def __len__(self):
        return int(self.grid[0] * self.grid[1])

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        n, k = len(self), operator.index(k)
        if not -n <= k < n:
            raise IndexError(f"frame index out of range: {k} (the animation has {n} frames).")
        k %= n
        a, cell = self.anim, divmod(k, self.grid[1])
        origin = (cell[0] * a.stride[0] - a.padding[0], cell[1] * a.stride[1] - a.padding[1])
        taps = _taps(origin, a.kernel, a.dilation)
        done = (np.arange(n) <= k).reshape(self.grid)       # the cells of this frame and those before
        if a.kind != "transposed":
            return Frame(cell, origin, taps, np.where(done, a.y, np.nan))  # the output cells written so far
        # the input cells spread so far, shown where a window has written; output cells no input cell
        # reaches (the gaps of a stride larger than the dilated kernel) hold 0 from the start
        written = ~_reached(a, np.ones_like(done)) | _reached(a, done)
        return Frame(cell, origin, taps, np.where(written, _transposed_conv(a, a.x * done), np.nan))


def _reached(a: Animation, cells) -> np.ndarray:
    """(oh, ow) mask of the output cells that the windows of the input ``cells`` (a mask) write to."""
    oh, ow = a.output_size
    out = np.zeros((oh, ow), bool)
    for i, j in zip(*np.nonzero(cells)):
        for r, c in _taps((i * a.stride[0] - a.padding[0], j * a.stride[1] - a.padding[1]), a.kernel, a.dilation):
            if 0 <= r < oh and 0 <= c < ow:
                out[r, c] = True
    return out


def _transposed_conv(a: Animation, values) -> np.ndarray:
    """The transposed conv (ih, iw) -> (oh, ow) of ``values``: d conv2d(z) / d z contracted with
    ``values``, that is the input gradient of ``F.conv2d``, from striate's backward."""
    z = Tensor(np.zeros((1, *a.output_size, 1)), requires_grad=True)
    F.conv2d(z, a.w[:, :, None, None], stride=a.stride, padding=a.padding,
             dilation=a.dilation).backward(values[None, :, :, None])
    return z.grad[0, :, :, 0]


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
        return Animation("conv", (ih, iw), (kh, kw), (sh, sw), (ph, pw), (dh, dw), y.shape, x, w, y)

    oh, ow = (ih - 1) * sh - 2 * ph + dh * (kh - 1) + 1, (iw - 1) * sw - 2 * pw + dw * (kw - 1) + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"the transposed convolution's output would be empty ({oh}x{ow}): padding crops more than "
                         f"the output has. Use less padding. Received: padding=({ph}, {pw}).")
    anim = Animation("transposed", (ih, iw), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow), x, w, None)
    anim.y = _transposed_conv(anim, x)
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
    return Animation(mode, (ih, iw), (kh, kw), (sh, sw), (ph, pw), (1, 1), y.shape, x, None, y)


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


# A frame is drawn in RGB, then mapped to the GIF's palette, next to the frame before it: about this many
# bytes of memory per pixel of one frame while an animation is written (the three frames sampled for the
# palette side by side are the largest part).
BYTES_PER_PIXEL = 20


def frame_layout(kind: str, input_size, output_size, padding, cell: int = 36) -> dict:
    """Where the panels of an animation's frames go, from its geometry alone (no values needed).

    Returns a dict: ``width``, ``height`` of a frame in pixels (the grids and margins; the caption
    may widen it), ``left`` and ``right`` (top-left pixel of each panel) and their ``*_cells``
    (rows, cols): the padded input (direct) or the uncropped output canvas (transposed).
    """
    (ih, iw), (oh, ow), (ph, pw) = input_size, output_size, padding
    transposed = kind == "transposed"
    left_cells = (ih, iw) if transposed else (ih + 2 * ph, iw + 2 * pw)
    right_cells = (oh + 2 * ph, ow + 2 * pw) if transposed else (oh, ow)
    margin, gap, head = 16, 2 * cell, 48
    rows = max(left_cells[0], right_cells[0])
    return dict(width=margin * 2 + left_cells[1] * cell + gap + right_cells[1] * cell,
                height=head + rows * cell + margin + 22, margin=margin, left_cells=left_cells,
                right_cells=right_cells, left=(margin, head + (rows - left_cells[0]) * cell // 2),
                right=(margin + left_cells[1] * cell + gap, head + (rows - right_cells[0]) * cell // 2))


def frame_images(anim: Animation, numbers: bool = False, cell: int = 36, indices=None):
    """Paint the frames of ``anim`` one at a time: yields a Pillow RGB image per frame (input left,
    output right, caption above), so that only the frame being drawn is held. ``indices`` picks
    some frames (default: all, in order).

    Padding is drawn as pale gray cells around the input (direct) or as the cropped ring around
    the output (transposed; the window's cells that fall there are dark gray); the window's cells
    are dark blue (the light blue box around them spans a dilated kernel), the output cell being
    written dark green, the cell max pooling picks outlined in orange. With ``numbers`` the cells
    show the values (kernel weights small, in the corner of the cells they multiply); each frame
    is numbered in its caption.
    """
    from .draw import _font, pil

    Image, ImageDraw, _ = pil()
    transposed = anim.kind == "transposed"
    lay = frame_layout(anim.kind, anim.input_size, anim.output_size, anim.padding, cell)
    margin, left, right, (ph, pw) = lay["margin"], lay["left"], lay["right"], anim.padding
    font, small, caption = _font(max(10, int(cell * 0.42))), _font(max(8, int(cell * 0.28))), _font(14)
    # wide enough for the grids and for the caption lines
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest = max(probe.textlength(anim.describe(), font=caption),
                  probe.textlength("frame 999/999: output cell (99, 99), window at (-99, -99)", font=caption))
    width, height = max(lay["width"], int(longest) + 2 * margin), lay["height"]
    paint = _paint_transposed if transposed else _paint_direct
    what = "input cell" if transposed else "output cell"
    frames = anim.frames
    for n in range(len(frames)) if indices is None else indices:
        fr = frames[n]
        img = Image.new("RGB", (width, height), "white")
        d = ImageDraw.Draw(img)
        paint(_Painter(d, cell, font, small), anim, fr, numbers, left, right)
        d.text((margin, 6), anim.describe(), fill=_COLORS["text"], font=caption)
        d.text((margin, 26), f"frame {n + 1}/{len(frames)}: {what} ({fr.cell[0]}, {fr.cell[1]}), "
               f"window at ({fr.origin[0]}, {fr.origin[1]})", fill=_COLORS["text"], font=caption)
        d.text((left[0], height - 20), "input" + ("" if transposed or (ph, pw) == (0, 0) else " (padding shaded)"),
               fill=_COLORS["text"], font=caption)
        d.text((right[0], height - 20),
               "output" + (" (cropped padding shaded)" if transposed and (ph, pw) != (0, 0) else ""),
               fill=_COLORS["text"], font=caption)
        yield img


def draw_frames(anim: Animation, numbers: bool = False, cell: int = 36) -> list:
    """Every frame of ``anim`` as a list of Pillow RGB images (see :func:`frame_images`, which yields
    them one at a time, for long animations)."""
    return list(frame_images(anim, numbers=numbers, cell=cell))


def _palette(images):
    """One palette for every frame (flat colours and anti-aliased text need few), from a sample of
    frames side by side: Pillow then stores each frame after the first as the rectangle that changed."""
    from .draw import pil

    Image, _, _ = pil()
    images = list(images)
    sample = Image.new("RGB", (images[0].width * len(images), images[0].height))  # every colour used appears
    for k, im in enumerate(images):
        sample.paste(im, (k * images[0].width, 0))
    return sample.quantize(colors=48)  # 48 colours: a 64-entry table, its last entry free


def _write_gif(f, images, palette, duration: int) -> int:
    """Write the RGB ``images`` (any iterable) to the binary file ``f`` as a looping GIF, one frame at a
    time: each frame is mapped to ``palette`` and stored as the rectangle that changed since the frame
    before it, its unchanged pixels transparent (runs of one index, which LZW packs to almost
    nothing). Returns the number of frames."""
    from PIL import GifImagePlugin, ImageChops

    clear = 63  # the transparent index: the last of a 64-colour table, above the 48 colours of the palette
    previous, count = None, 0
    for im in images:
        frame = im.quantize(palette=palette)
        if previous is None:
            header, _ = GifImagePlugin.getheader(frame, info={"loop": 0, "duration": int(duration)})
            f.write(b"".join(header))
            f.write(b"".join(GifImagePlugin.getdata(frame, duration=int(duration), disposal=1)))
        else:
            changed = ImageChops.difference(previous, frame)  # one palette: indices differ where pixels do
            box = changed.getbbox() or (0, 0, 1, 1)
            part = frame.crop(box)
            part.paste(clear, mask=changed.crop(box).point([255] + [0] * 255, "1"))
            f.write(b"".join(GifImagePlugin.getdata(part, offset=box[:2], duration=int(duration), disposal=1,
                                                    transparency=clear)))
        previous, count = frame, count + 1
    if not count:
        raise ValueError("save_gif: no frames.")
    f.write(b";")  # the GIF trailer
    return count


def save_gif(images, path, duration: int = 700) -> None:
    """Write Pillow frames as a looping GIF, atomically (``duration`` ms per frame)."""
    from ..atomic import atomic_open

    images = list(images)
    if not images:
        raise ValueError("save_gif: no frames.")
    palette = _palette((images[0], images[len(images) // 2], images[-1]))
    with atomic_open(path, "wb") as f:
        _write_gif(f, images, palette, duration)


def save_animation(anim: Animation, path, numbers: bool = False, cell: int = 36, duration: int = 700) -> int:
    """Draw and write ``anim`` as a looping GIF at ``path``, atomically, one frame at a time: memory
    stays that of a few frames however many there are. Returns the number of frames.

    Example::

        >>> save_animation(conv_animation(5, 3, stride=2, padding=1), "conv.gif", numbers=True)
        9
    """
    from ..atomic import atomic_open

    n = len(anim.frames)
    palette = _palette(frame_images(anim, numbers=numbers, cell=cell, indices=sorted({0, n // 2, n - 1})))
    with atomic_open(path, "wb") as f:
        return _write_gif(f, frame_images(anim, numbers=numbers, cell=cell), palette, duration)
