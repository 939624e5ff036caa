"""Every number explained: one unit's arithmetic and the backward pass, for the image the page sent.

* ``GET /api/explain?input=KEY&layer=NAME&index=ROW,COL,CHANNEL`` (``index=UNIT`` for a vector
  layer; optional ``top_k``) — :func:`striate.vis.explain_unit` as JSON (:func:`striate.vis.to_json`),
  with ``animation`` for a convolution (one input channel's window sliding over the unit's
  neighbourhood, and the per-channel sums it leaves) and ``ms``. ``KEY`` is the ``input_key`` of
  ``POST /api/predict``: the prepared image is remembered, and its forward is recorded once
  (:func:`striate.vis.record_forward`, a small LRU of recent images), so later clicks on the same
  image cost only the unit's own arithmetic.
* ``GET /api/gradient?input=KEY&layer=NAME&index=...&target=CLASS`` (``maps``: gradient maps per layer,
  default 8) — :func:`striate.vis.explain_gradient` from one recorded backward pass per image and class
  (:func:`striate.vis.record_backward`): the unit's gradient and its weights' gradients, and
  ``layers``: every layer's gradient ``d score / d output`` drawn as maps (blue negative, red positive).

Arrays of more than :data:`MAX_ARRAY` numbers (a wide dense layer's inputs) are left out of the
answer and named in ``omitted``; everything else is explain_unit's own data.
"""
from __future__ import annotations

import time

import numpy as np
from flask import Blueprint, jsonify, request

from .. import render
from ..errors import api_errors
from ..state import current, serves
from .conv import int_arg

bp = api_errors(Blueprint("api_explain", __name__, url_prefix="/api"))

MAX_ARRAY = 8192       # numbers per array in an answer: a 3x3x512 kernel passes, a 25088-input dense row does not
ANIMATION_REACH = 2    # the animation covers output positions up to this far from the unit (a 5x5 neighbourhood)
MAX_TOP_K = 64
MAX_GRAD_MAPS = 64


def _input(state, args):
    key = args.get("input", "")
    x = state.inputs.get(key) if key else None
    if x is None:
        raise ValueError(f"no image is known under input={key!r}: send it with POST /api/predict first "
                         "and use the input_key of its answer (the server keeps the last few images).")
    return key, x


def _index(args):
    raw = args.get("index", "")
    try:
        index = tuple(int(v) for v in raw.split(","))
    except ValueError:
        raise ValueError("index must be comma-separated integers: ROW,COL,CHANNEL for a map, UNIT for a vector. "
                         f"Received: index={raw!r}.") from None
    return index


def _record(state, key, x):
    from ...vis import record_forward

    rec = state.records.get(key)
    if rec is None:
        served = state.served
        with served._lock:     # one forward of the model at a time
            rec = state.records.put(key, record_forward(served.model, served.standardize(x)))
    return rec


def _trim(doc, omitted, path=""):
    """``doc`` with arrays of more than MAX_ARRAY numbers left out (their paths listed in ``omitted``)."""
    if isinstance(doc, list):
        return [_trim(v, omitted, f"{path}[{i}]") for i, v in enumerate(doc)]
    if not isinstance(doc, dict):
        return doc
    kept = {}
    for k, v in doc.items():
        where = f"{path}.{k}" if path else str(k)
        if isinstance(v, np.ndarray) and v.size > MAX_ARRAY:
            omitted.append(where)
        else:
            kept[k] = _trim(v, omitted, where)
    return kept


def _conv_input(rec, layer):
    """The input Tensor and the Conv2dOp of a conv layer (through its own activation), or None."""
    from ...vis.explain import ACTIVATIONS

    made = rec.producer(rec.calls[layer].output)
    if made is not None and type(made[0]).__name__ in ACTIVATIONS:
        made = rec.producer(made[1][0])
    if made is None or type(made[0]).__name__ != "Conv2dOp":
        return None
    return made


def animation(rec, e, channel=None) -> dict | None:
    """The kernel of a conv unit sliding over one input channel around the unit.

    Returns ``{"channel", "rows", "cols"`` (output positions), ``"in_rows", "in_cols"`` (the input rows
    and columns they read, padding outside the input), ``"input"`` (those input values; None in the
    padding), ``"kernel"`` (kh, kw), ``"sums"`` (one per output position: the channel's part of that
    unit's sum), ``"unit"`` (the clicked unit's place in ``sums``)}; None for other layers.
    """
    made = _conv_input(rec, e["layer"]) if e.get("kind") == "conv" else None
    if made is None:
        return None
    op, inputs = made
    x = inputs[0].data[0]                                           # (h, w, c)
    oh, ow = rec.calls[e["layer"]].output.shape[1:3]
    r, c, _ = e["index"]
    channels = list(np.asarray(e["channels"]).tolist())
    channel = e["top"][0]["channel"] if channel is None else int(channel)
    if channel not in channels:
        raise ValueError(f"channel must be one of the input channels this unit reads ({channels[0]}..{channels[-1]}). "
                         f"Received: channel={channel}.")
    kernel = np.asarray(e["kernel"])[..., channels.index(channel)]  # (kh, kw)
    kh, kw = kernel.shape
    (sh, sw), (dh, dw), pads = op.stride, op.dilation, op.pads
    rows = list(range(max(0, r - ANIMATION_REACH), min(oh, r + ANIMATION_REACH + 1)))
    cols = list(range(max(0, c - ANIMATION_REACH), min(ow, c + ANIMATION_REACH + 1)))
    in_rows = np.arange(rows[0] * sh - pads[0], rows[-1] * sh - pads[0] + dh * (kh - 1) + 1)
    in_cols = np.arange(cols[0] * sw - pads[2], cols[-1] * sw - pads[2] + dw * (kw - 1) + 1)
    h, w = x.shape[:2]
    region = np.zeros((len(in_rows), len(in_cols)), np.float64)
    inside = ((in_rows >= 0) & (in_rows < h))[:, None] & ((in_cols >= 0) & (in_cols < w))[None, :]
    rr, cc = np.clip(in_rows, 0, h - 1), np.clip(in_cols, 0, w - 1)
    region[inside] = x[np.ix_(rr, cc)][..., channel][inside]
    sums = np.zeros((len(rows), len(cols)))
    for i, orow in enumerate(rows):
        for j, ocol in enumerate(cols):
            top, left = (orow - rows[0]) * sh, (ocol - cols[0]) * sw
            sums[i, j] = (region[top:top + dh * (kh - 1) + 1:dh, left:left + dw * (kw - 1) + 1:dw] * kernel).sum()
    shown = np.where(inside, region, np.nan)
    return {"channel": channel, "rows": rows, "cols": cols, "in_rows": in_rows.tolist(), "in_cols": in_cols.tolist(),
            "stride": [sh, sw], "dilation": [dh, dw], "input": [[None if np.isnan(v) else float(v) for v in row]
                                                                for row in shown],
            "kernel": kernel.tolist(), "sums": sums.tolist(), "unit": [rows.index(r), cols.index(c)]}


@bp.get("/explain")
@serves("classification")
def explain():
    from ...vis import explain_unit, to_json

    t0 = time.perf_counter()
    state = current()
    key, x = _input(state, request.args)
    index = _index(request.args)
    top_k = int_arg(request.args, "top_k", 8, 1, MAX_TOP_K)
    layer = request.args.get("layer", "")
    first = state.records.get(key) is None
    rec = _record(state, key, x)
    e = explain_unit(state.served.model, None, layer, index, top_k=top_k, record=rec)
    anim_channel = request.args.get("channel")
    e["animation"] = animation(rec, e, None if anim_channel in (None, "") else int_arg(request.args, "channel", 0, 0, 1 << 20))
    omitted = []
    out = to_json(_trim(e, omitted))
    out.update(omitted=omitted, input_key=key, recorded_now=first, ms=round(1000 * (time.perf_counter() - t0), 3))
    return jsonify(out)


def _target(state, args):
    raw = args.get("target")
    classes = state.served.class_names
    if raw in (None, ""):
        return None
    if raw in classes and not raw.isdigit():
        return classes.index(raw)
    try:
        t = int(raw)
    except ValueError:
        raise ValueError(f"target must be a class index (0..{len(classes) - 1}) or a class name. "
                         f"Received: target={raw!r}.") from None
    if not 0 <= t < len(classes):
        raise ValueError(f"target must be between 0 and {len(classes) - 1}. Received: target={t}.")
    return t


def _gradient_maps(state, brec, limit):
    """Every layer's gradient drawn like its activations (PNG data URLs), once per record and limit."""
    cache = getattr(brec, "_maps", None)
    if cache is None:
        cache = brec._maps = {}
    if limit not in cache:
        layers = []
        for layer in state.served.layers:
            g = brec.gradients.get(layer["name"])
            if g is None:
                continue
            g = np.asarray(g, np.float32)
            entry = {"name": layer["name"], "shape": list(g.shape), "min": float(g.min()), "max": float(g.max())}
            if g.ndim == 3:
                lut, lo, hi = render.colour_scale(g)
                rgb = render.colourise(g[..., :limit], render.DIVERGING, -max(abs(lo), hi), max(abs(lo), hi))
                entry.update(maps=[render.png_data_url(rgb[:, :, k]) for k in range(rgb.shape[2])],
                             channels=int(g.shape[2]), scale=[-max(abs(lo), hi), max(abs(lo), hi)], grid=None)
            else:
                v = g.reshape(-1)
                m = max(float(np.abs(v).max()), 1e-12)
                rows, cols = render.vector_grid(v.size)
                rgba = np.zeros((rows * cols, 4), np.uint8)
                rgba[:v.size, :3] = render.colourise(v, render.DIVERGING, -m, m)
                rgba[:v.size, 3] = 255
                entry.update(maps=[render.png_data_url(rgba.reshape(rows, cols, 4))], channels=int(v.size),
                             scale=[-m, m], grid=[rows, cols])
            layers.append(entry)
        cache[limit] = layers
    return cache[limit]


@bp.get("/gradient")
@serves("classification")
def gradient():
    from ...vis import explain_gradient, record_backward, to_json

    t0 = time.perf_counter()
    state = current()
    key, x = _input(state, request.args)
    index = _index(request.args)
    layer = request.args.get("layer", "")
    limit = int_arg(request.args, "maps", 8, 0, MAX_GRAD_MAPS)
    target = _target(state, request.args)
    served = state.served
    brec = state.backwards.get((key, target))
    first = brec is None
    if brec is None:
        with served._lock:
            brec = record_backward(served.model, served.standardize(x), target=target)
        state.backwards.put((key, target), brec)
        state.backwards.put((key, brec.target), brec)
    g = explain_gradient(served.model, None, layer, index, target=brec.target, record=brec)
    g.pop("gradients")
    g.pop("unit")                      # the forward explanation: GET /api/explain
    omitted = []
    out = to_json(_trim(g, omitted))
    out.update(target_name=served.class_names[brec.target], layers=_gradient_maps(state, brec, limit), omitted=omitted,
               input_key=key, recorded_now=first, ms=round(1000 * (time.perf_counter() - t0), 3))
    return jsonify(out)
