"""One convolution or pooling layer's arithmetic, for the explorer.

* ``GET /api/conv?input=7&kernel=3&stride=1&padding=0&dilation=1`` — output size, pads, receptive
  field and notes (:func:`striate.summary.calc.conv_arithmetic`); impossible settings answer
  ``ok: false`` with the rule they break.
* ``GET /api/conv/frames?...&kind=conv|transposed|max|avg`` — the same layer frame by frame with
  the numbers, drawn by :mod:`striate.vis.animate` (PNG data URLs).
"""
from __future__ import annotations

import base64
import functools
import io

from flask import Blueprint, jsonify, request

from ..errors import api_errors

bp = api_errors(Blueprint("api_conv", __name__, url_prefix="/api/conv"))

MAX_CONV_SIZE = 64     # explorer inputs: large enough for any lesson, small enough to draw
MAX_FRAME_INPUT = 16   # the numbers view: small inputs, where every value can be read
MAX_FRAMES = 64        # one frame per output cell, each drawn and encoded by Pillow (~20 ms): ~1 s at most
KINDS = ("conv", "transposed", "max", "avg")


def int_arg(args, name, default, low, high):
    """Query parameter ``name`` as an int in ``[low, high]``; ValueError naming it otherwise."""
    raw = args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer. Received: {name}={raw!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}. Received: {name}={value}.")
    return value


@bp.get("")
def conv():
    from ...summary.calc import conv_arithmetic

    args = request.args
    size = int_arg(args, "input", 7, 1, MAX_CONV_SIZE)
    kernel = int_arg(args, "kernel", 3, 1, MAX_CONV_SIZE)
    stride = int_arg(args, "stride", 1, 1, MAX_CONV_SIZE)
    dilation = int_arg(args, "dilation", 1, 1, MAX_CONV_SIZE)
    raw_pad = args.get("padding", "0")
    padding = raw_pad if raw_pad in ("same", "valid") else int_arg(args, "padding", 0, 0, MAX_CONV_SIZE)
    r = conv_arithmetic(size, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation)
    out = {"ok": r.ok, "error": r.error, "input": size, "kernel": kernel, "stride": stride,
           "padding": padding, "dilation": dilation, "notes": r.notes()}
    if r.ok:
        g = r.layers[-1]
        out.update(output=g.output_size[0], pads=list(g.pads), rf=g.rf[0], jump=g.jump[0],
                   start=g.start[0], unused=g.unused[0], effective_kernel=g.effective_kernel[0])
    return jsonify(out)


@bp.get("/frames")
def conv_frames():
    args = request.args
    spec = (int_arg(args, "input", 5, 1, MAX_FRAME_INPUT), int_arg(args, "kernel", 3, 1, MAX_FRAME_INPUT),
            int_arg(args, "stride", 1, 1, MAX_FRAME_INPUT), args.get("padding", "0"),
            int_arg(args, "dilation", 1, 1, MAX_FRAME_INPUT), args.get("kind", "conv"))
    frames, describe = frames_of(*spec)
    return jsonify(frames=frames, describe=describe, count=len(frames))


@functools.lru_cache(maxsize=64)
def frames_of(size: int, kernel: int, stride: int, padding: str, dilation: int, kind: str):
    """The conv-arithmetic frames of :mod:`striate.vis.animate` as PNG data URLs, and their description.

    The values in them are computed by ``F.conv2d`` / ``F.max_pool2d`` / ``F.avg_pool2d`` (the
    transposed convolution by the backward of ``F.conv2d``). Raises ValueError for settings the
    animation cannot show.
    """
    from ...summary.calc import conv_arithmetic
    from ...vis import conv_animation, draw_frames, pool_animation

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}.")
    if padding == "same":
        r = conv_arithmetic(size, kernel_size=kernel, stride=stride, padding="same", dilation=dilation)
        if not r.ok:
            raise ValueError(r.error)
        top, bottom = r.layers[0].pads[:2]
        if top != bottom:
            raise ValueError(f"'same' pads this layer unevenly ({top} before, {bottom} after); the frames show "
                             "even padding only. Choose a padding number.")
        pad = top
    else:
        try:
            pad = int(padding)
        except ValueError:
            raise ValueError(f"padding must be an integer or 'same'. Received: padding={padding!r}.") from None
        if not 0 <= pad <= MAX_FRAME_INPUT:
            raise ValueError(f"padding must be between 0 and {MAX_FRAME_INPUT}. Received: padding={pad}.")
    if kind in ("max", "avg"):
        if dilation != 1:
            raise ValueError("pooling windows are not dilated here: set dilation to 1 for max or avg pooling.")
        anim = pool_animation(size, kernel, stride, pad, mode=kind)
    else:
        anim = conv_animation(size, kernel, stride, pad, dilation, transposed=kind == "transposed")
    if len(anim.frames) > MAX_FRAMES:
        raise ValueError(f"these settings make {len(anim.frames)} frames; the numbers view draws at most "
                         f"{MAX_FRAMES}. Use a smaller input or a larger stride.")
    urls = []
    for img in draw_frames(anim, numbers=True, cell=30):
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)   # fast; the frames are flat colours and text
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return urls, anim.describe()
