"""Every number explained: how one unit of one layer got its value, with the real numbers.

:func:`explain_unit` takes a model, one image, a layer name of ``st.summary`` and a unit, and returns
the arithmetic that produced that unit's value in the forward pass: for a convolution the input patch
beside the kernel slice, their products and each input channel's sum, then the sum over channels plus
the bias (the walk-through of CNN Explainer, Wang et al. 2020, for any striate model); for batch norm
``(x - mean) / sqrt(var + eps) * gamma + beta``; for pooling the window and its maximum or mean; for
a residual add or a concatenation the operands; for a dense layer the largest ``w_i * x_i``; for the
class scores their softmax.

The numbers come from one recorded forward pass (:func:`record_forward`): every layer's input and
output, and the op that made each output with its own geometry (resolved padding, stride, dilation,
groups). A unit is explained from the op that computed it, so the explanation is exact whatever
padding rule or grouping the layer used. Keep the record to explain many units of one image: the
forward then runs once.

Layers run one by one while recorded (a layer watched by a hook is never fused with its neighbours,
:mod:`striate.nn.fusion`), so a fused conv + batch norm + ReLU is explained as the three layers the
user wrote, and ``value`` is what :func:`striate.vis.activations` gives. The arithmetic is redone in
float64; ``result`` is its answer, equal to ``value`` within float32 rounding.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..names import did_you_mean
from ..summary.receptive_field import IDENTITY
from ..summary.summary import rows_of
from ..summary.trace import Trace
from ..tensor import Tensor, no_grad, observe_ops
from ._model import as_image, check_model, inspecting

OWNER = "explain_unit"
ACTIVATIONS = {"ReLUOp": "relu", "LeakyReLUOp": "leaky_relu", "SigmoidOp": "sigmoid", "TanhOp": "tanh"}


def _array(t) -> np.ndarray:
    return t.data if isinstance(t, Tensor) else np.asarray(t)


class ForwardRecord:
    """One image's forward pass, kept to explain any of its units (see :func:`record_forward`).

    Attributes:
        x: the image ``(1, h, w, c)`` in the model's dtype.
        rows: the rows of ``st.summary`` (names, types, output shapes, receptive fields).
        output: the model's output Tensor.
    """

    def __init__(self, model, x, trace, ops, output):
        self.model, self.x, self.output = model, x, output
        rows, listed = rows_of(trace)
        self.rows = rows
        self.calls = {}
        for call in trace.calls:
            if id(call) in listed:
                self.calls.setdefault(call.name or type(call.module).__name__, call)
        self._ops = ops                       # id(tensor) -> (op, inputs, tensor)
        self._names = {}                      # id(tensor) -> the layer whose output it is
        for name, call in self.calls.items():
            if isinstance(call.output, Tensor):
                self._names.setdefault(id(call.output), name)

    def names(self) -> list:
        return [r.name for r in self.rows]

    def row(self, name):
        return next(r for r in self.rows if r.name == name)

    def producer(self, t):
        """``(op, inputs)`` of the op that made Tensor ``t`` in the recorded forward, or None."""
        entry = self._ops.get(id(t)) if isinstance(t, Tensor) else None
        return (entry[0], entry[1]) if entry is not None and entry[2] is t else None

    def source(self, t) -> str:
        """Where ``t`` came from: a layer name, ``'input'``, an op's name, or ``'constant'``."""
        if isinstance(t, Tensor) and id(t) in self._names:
            return self._names[id(t)]
        if isinstance(t, Tensor) and t.data is self.x:
            return "input"
        made = self.producer(t)
        return type(made[0]).__name__ if made else "constant"

    def value(self, name) -> np.ndarray:
        """The output of layer ``name`` for the image (no batch axis)."""
        return _array(self.calls[name].output)[0]


def record_forward(model, x) -> ForwardRecord:
    """Run ``model`` on one image in evaluation mode and keep what :func:`explain_unit` needs.

    Args:
        model: a striate Module that takes images.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.

    Returns:
        A :class:`ForwardRecord`; pass it as ``explain_unit(..., record=rec)`` to explain many units
        of the same image with one forward pass.

    Example::

        >>> rec = record_forward(model, x)
        >>> [explain_unit(model, x, "conv1", (0, 0, k), record=rec)["value"] for k in range(3)]
    """
    check_model(model, OWNER)
    with inspecting(model), no_grad():
        return _record(model, as_image(x, model, OWNER), OWNER)


def _record(model, x, owner, requires_grad=False) -> ForwardRecord:
    """The forward of :func:`record_forward`, inside ``inspecting(model)``; with ``requires_grad``
    the graph is kept (the image requires a gradient) for a backward pass from the output."""
    ops = {}
    xt = Tensor(x, requires_grad=requires_grad)
    xt._rf = (IDENTITY, IDENTITY)  # receptive fields, in input pixels (striate.summary.trace)
    trace = Trace(model, track_fields=True)

    def keep(fn, inputs, out):
        trace._on_op(fn, inputs, out)
        ops[id(out)] = (fn, tuple(inputs), out)

    try:
        with trace, observe_ops(keep):
            out = model(xt)
    except ValueError as e:
        raise ValueError(f"{owner}: the model cannot run on x of shape {tuple(x.shape[1:])} "
                         f"(it takes images (h, w, c) of another size, or no images): {' '.join(str(e).split())}") from e
    return ForwardRecord(model, x, trace, ops, out)


# --------------------------------------------------------------------------- checks
def _check_layer(rec: ForwardRecord, layer):
    if not isinstance(layer, str):
        raise TypeError(f"{OWNER}: layer must be a layer name (str) from striate summary. Received: layer={layer!r}.")
    if layer in rec.calls:
        return rec.calls[layer]
    names = rec.names()
    hint = did_you_mean(layer, names, exact_spelling=True)
    shown = ", ".join(names[:24]) + (f", ... ({len(names)} layers)" if len(names) > 24 else "")
    raise ValueError(f"{OWNER}: no layer named {layer!r}.{hint} Layers: {shown}.")


def _check_index(index, shape, layer) -> tuple:
    idx = (index,) if isinstance(index, numbers.Integral) else index
    what = "(row, col, channel)" if len(shape) == 3 else "(unit,)" if len(shape) == 1 else f"{len(shape)} ints"
    ok = (isinstance(idx, (tuple, list)) and len(idx) == len(shape)
          and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < s for i, s in zip(idx, shape)))
    if not ok:
        limits = " x ".join(str(s) for s in shape)
        raise ValueError(f"{OWNER}: index must be {what} inside layer {layer!r}'s output of {limits} "
                         f"(each from 0 to its size - 1). Received: index={index!r}.")
    return tuple(int(i) for i in idx)


# --------------------------------------------------------------------------- windows
def _window(x, rows, cols, channels, fill):
    """``x[rows][:, cols][..., channels]`` of a map ``(h, w, c)`` as float64, ``fill`` outside it
    (the padding), and the mask of the cells inside."""
    h, w = x.shape[:2]
    in_r, in_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    patch = np.full((len(rows), len(cols), len(channels)), fill, np.float64)
    patch[np.ix_(in_r, in_c)] = x[np.ix_(rows[in_r], cols[in_c], channels)]
    return patch, in_r[:, None] & in_c[None, :]


def _window_of(op, x, r, c, kernel):
    """The input rows and columns that output unit (r, c) of a sliding-window op reads."""
    (sh, sw), (dh, dw), pads = op.stride, op.dilation, op.pads
    rows = r * sh - pads[0] + dh * np.arange(kernel[0])
    cols = c * sw - pads[2] + dw * np.arange(kernel[1])
    return rows, cols, {"rows": rows.tolist(), "cols": cols.tolist(), "stride": tuple(op.stride),
                        "dilation": tuple(op.dilation), "padding": tuple(pads), "input_shape": tuple(x.shape)}


def _top(terms, top_k):
    """Indices of the ``top_k`` largest |terms| (largest first), and those of the rest."""
    order = np.argsort(-np.abs(terms), kind="stable")
    return order[:top_k], order[top_k:]


# --------------------------------------------------------------------------- one explainer per op
def _conv(rec, op, inputs, unit, top_k):
    x, w = _array(inputs[0])[0], _array(inputs[1])               # (h, w, c), (kh, kw, c // groups, o)
    b = _array(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else None
    r, c, k = unit
    kh, kw, cg, o = w.shape
    group = k // (o // op.groups)
    channels = np.arange(group * cg, (group + 1) * cg)               # the input channels filter k reads
    rows, cols, window = _window_of(op, x, r, c, (kh, kw))
    patch, inside = _window(x, rows, cols, channels, 0.0)            # (kh, kw, cg), padding as zeros
    kernel = w[:, :, :, k].astype(np.float64)
    products = patch * kernel
    terms = products.sum(axis=(0, 1))                                # (cg,): one per input channel
    bias = float(b[k]) if b is not None else 0.0
    top, rest = _top(terms, top_k)
    shown = [{"channel": int(channels[i]), "term": float(terms[i]), "patch": patch[..., i],
              "kernel": kernel[..., i], "products": products[..., i]} for i in top]
    rest_sum = float(terms[rest].sum())
    pre = float(sum(t["term"] for t in shown) + rest_sum + bias)     # the shown terms add up to this
    window["inside"] = inside
    out = {"kind": "conv", "input_layer": rec.source(inputs[0]), "window": window, "group": int(group),
           "groups": int(op.groups), "channels": channels, "patch": patch, "kernel": kernel, "products": products,
           "terms": terms, "bias": bias, "top": shown, "rest": rest_sum, "rest_count": int(len(rest)),
           "pre_activation": pre, "result": pre}
    if getattr(op, "fused", None) is not None:                      # a batch norm (and ReLU) in the conv's output pass
        scale, shift, relu = op.fused
        z = pre if scale is None else pre * float(scale[k]) + float(shift[k])
        out["epilogue"] = {"scale": None if scale is None else float(scale[k]),
                           "shift": None if shift is None else float(shift[k]), "relu": bool(relu)}
        out["result"] = max(z, 0.0) if relu else z
    return out


def _conv_transpose(rec, op, inputs, unit, top_k):
    """The scatter view of a transposed conv: input pixel (i, j) adds ``x[i, j] * w[u, v]`` to output
    (i * s - pad + u * d, ...), so output (r, c) gathers the (i, u) with ``i * s - pad + u * d == r``."""
    x, w = _array(inputs[0])[0], _array(inputs[1])               # (h, w, c_in), (kh, kw, c_out // groups, c_in)
    b = _array(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else None
    r, c, k = unit
    kh, kw, og, c_in = w.shape
    group, k_in_group = divmod(k, og)
    per = c_in // op.groups
    channels = np.arange(group * per, (group + 1) * per)             # the input channels of k's group

    def taps(pos, size, kernel, s, d, pad):                           # (input index, kernel offset) pairs
        num = pos + pad - d * np.arange(kernel)
        ok = (num % s == 0) & (num // s >= 0) & (num // s < size)
        return [(int(n // s), int(u)) for u, n in zip(np.flatnonzero(ok), num[ok])]

    (sh, sw), (dh, dw), pads = op.stride, op.dilation, op.pads
    rows = taps(r, x.shape[0], kh, sh, dh, pads[0])
    cols = taps(c, x.shape[1], kw, sw, dw, pads[2])
    pairs = sorted((i, j, u, v) for i, u in rows for j, v in cols)   # row-major over input positions
    n = len(pairs)
    xs = np.zeros((n, per), np.float64)
    kernel = np.zeros((n, per), np.float64)
    for t, (i, j, u, v) in enumerate(pairs):
        xs[t] = x[i, j, channels]
        kernel[t] = w[u, v, k_in_group, channels]
    products = xs * kernel                                            # (sources, channels)
    terms = products.sum(axis=0)                                      # (per,): one per input channel
    bias = float(b[k]) if b is not None else 0.0
    top, rest = _top(terms, top_k)
    shown = [{"channel": int(channels[i]), "term": float(terms[i]), "x": xs[:, i], "kernel": kernel[:, i],
              "products": products[:, i]} for i in top]
    sources = [{"input": (i, j), "offset": (u, v), "sum": float(products[t].sum())}
               for t, (i, j, u, v) in enumerate(pairs)]
    rest_sum = float(terms[rest].sum())
    pre = float(sum(t["term"] for t in shown) + rest_sum + bias)
    scatter = {"stride": tuple(op.stride), "dilation": tuple(op.dilation), "padding": tuple(pads),
               "input_shape": tuple(x.shape), "output_hw": tuple(op.out_hw)}
    return {"kind": "conv_transpose", "input_layer": rec.source(inputs[0]), "scatter": scatter,
            "group": int(group), "groups": int(op.groups), "channels": channels, "sources": sources,
            "x": xs, "kernel": kernel, "products": products, "terms": terms, "bias": bias, "top": shown,
            "rest": rest_sum, "rest_count": int(len(rest)), "pre_activation": pre, "result": pre}


def _dense(rec, op, inputs, unit, top_k):
    x, w = _array(inputs[0])[0].astype(np.float64), _array(inputs[1])   # (in,), (in, out)
    b = _array(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else None
    (k,) = unit
    weights = w[:, k].astype(np.float64)
    terms = x * weights                                               # (in,): w_i * x_i
    bias = float(b[k]) if b is not None else 0.0
    top, rest = _top(terms, top_k)
    made = rec.producer(inputs[0])
    flat_from = _array(made[1][0]).shape[1:] if made and type(made[0]).__name__ == "ReshapeOp" else None
    shown = []
    for i in top:
        entry = {"input": int(i), "x": float(x[i]), "w": float(weights[i]), "term": float(terms[i])}
        if flat_from is not None and len(flat_from) == 3:            # where input i sits in the flattened maps
            entry["source_index"] = tuple(int(v) for v in np.unravel_index(i, flat_from))
        shown.append(entry)
    rest_sum = float(terms[rest].sum())
    pre = float(sum(t["term"] for t in shown) + rest_sum + bias)
    return {"kind": "dense", "input_layer": rec.source(inputs[0]), "x": x, "weights": weights, "terms": terms,
            "bias": bias, "top": shown, "rest": rest_sum, "rest_count": int(len(rest)),
            "pre_activation": pre, "result": pre}


def _batch_norm(rec, op, inputs, unit, top_k):
    k = unit[-1]
    x = float(_array(inputs[0])[0][unit])
    gamma, beta = float(_array(inputs[1])[k]), float(_array(inputs[2])[k])
    if op.training:
        raise ValueError(f"{OWNER}: a batch norm in training mode normalises with the batch's statistics; "
                         "explanations use evaluation mode (running statistics).")
    mean, var, eps = float(op.running_mean[k]), float(op.running_var[k]), float(op.eps)
    result = (x - mean) / np.sqrt(var + eps) * gamma + beta
    out = {"kind": "batch_norm", "input_layer": rec.source(inputs[0]), "x": x, "mean": mean, "var": var,
           "eps": eps, "gamma": gamma, "beta": beta, "normalized": (x - mean) / np.sqrt(var + eps),
           "pre_activation": float(result), "result": float(result)}
    if op.relu:
        out["activation"], out["result"] = "relu", max(float(result), 0.0)
    return out


def _activation_of(name, op, z):
    if name == "relu":
        return max(z, 0.0)
    if name == "leaky_relu":
        return z if z > 0 else op.negative_slope * z
    if name == "sigmoid":
        return float(1.0 / (1.0 + np.exp(-z)))
    return float(np.tanh(z))


def _operands(rec, inputs, unit):
    shape = np.broadcast_shapes(*(np.shape(_array(t)) for t in inputs))   # the sum's shape (1, ...)
    return [{"layer": rec.source(t), "value": float(np.broadcast_to(_array(t), shape)[(0,) + unit])} for t in inputs]


def _add(rec, op, inputs, unit, top_k):
    operands = _operands(rec, inputs, unit)
    total = float(sum(o["value"] for o in operands))
    return {"kind": "add", "operands": operands, "result": total}


def _add_relu(rec, op, inputs, unit, top_k):
    out = _add(rec, op, inputs, unit, top_k)
    out.update(kind="add", activation="relu", pre_activation=out["result"], result=max(out["result"], 0.0))
    return out


def _activation(rec, op, inputs, unit, top_k):
    name = ACTIVATIONS[type(op).__name__]
    z = float(_array(inputs[0])[(0,) + unit])
    out = {"kind": name, "input_layer": rec.source(inputs[0]), "x": z, "result": _activation_of(name, op, z)}
    if name == "leaky_relu":
        out["negative_slope"] = float(op.negative_slope)
    made = rec.producer(inputs[0])
    if made is not None and type(made[0]).__name__ == "AddOp" and rec.source(inputs[0]) == "AddOp":
        out["add"] = _add(rec, made[0], made[1], unit, top_k)     # a residual sum that has no layer of its own
    return out


def _max_pool(rec, op, inputs, unit, top_k):
    x = _array(inputs[0])[0]
    r, c, k = unit
    rows, cols, window = _window_of(op, x, r, c, op.kernel)
    patch, inside = _window(x, rows, cols, [k], -np.inf)
    patch = patch[..., 0]                                             # (kh, kw), padding as -inf
    i, j = np.unravel_index(int(np.argmax(patch)), patch.shape)       # the first maximum, row-major
    window["inside"] = inside
    out = {"kind": "max_pool", "input_layer": rec.source(inputs[0]), "window": window, "patch": patch,
           "max": float(patch[i, j]), "argmax": (int(i), int(j)), "argmax_input": (int(rows[i]), int(cols[j]), int(k)),
           "result": float(patch[i, j])}
    if op.relu:
        out["activation"], out["result"] = "relu", max(out["max"], 0.0)
    return out


def _avg_pool(rec, op, inputs, unit, top_k):
    x = _array(inputs[0])[0]
    r, c, k = unit
    rows, cols, window = _window_of(op, x, r, c, op.kernel)
    patch, inside = _window(x, rows, cols, [k], 0.0)
    patch = patch[..., 0]                                             # (kh, kw), padding as zeros
    divisor = float(op.kernel[0] * op.kernel[1]) if op.divisor is None else float(op.divisor[0, r, c, 0])
    window["inside"] = inside
    return {"kind": "avg_pool", "input_layer": rec.source(inputs[0]), "window": window, "patch": patch,
            "sum": float(patch.sum()), "divisor": divisor, "count_include_pad": op.divisor is None,
            "result": float(patch.sum() / divisor)}


def _upsample(rec, op, inputs, unit, top_k):
    """A resized unit: a weighted sum of at most 2 x 2 input pixels, from the op's own taps
    (:mod:`striate.ops.resize`: nearest reads one pixel with weight 1, bilinear up to four)."""
    x = _array(inputs[0])[0]
    r, c, k = unit

    def along(taps, p):                                                # [(input index, weight)] of position p
        got = {}
        for index, weight in taps:
            i = int(index[p])
            got[i] = got.get(i, 0.0) + (1.0 if weight is None else float(weight[p]))
        return [(i, wt) for i, wt in got.items() if wt != 0.0]

    rows, cols = along(op.taps_h, r), along(op.taps_w, c)
    sources = []
    for i, wi in rows:
        for j, wj in cols:
            v = float(x[i, j, k])
            sources.append({"input": (i, j, int(k)), "weight": wi * wj, "x": v, "product": wi * wj * v})
    return {"kind": "upsample", "input_layer": rec.source(inputs[0]), "mode": op.mode,
            "align_corners": bool(op.align_corners), "input_shape": tuple(x.shape), "rows": rows, "cols": cols,
            "sources": sources, "result": float(sum(s["product"] for s in sources))}


def _max_unpool(rec, op, inputs, unit, top_k):
    """An unpooled unit: the pooled values whose switch points at it (summed where overlapping
    windows share a maximum), 0 where none does."""
    x = _array(inputs[0])[0]
    r, c, k = unit
    switch = r * op.out_hw[1] + c                                      # row * w + col, as the indices hold it
    hits = np.argwhere(op.indices[0, :, :, k] == switch)
    sources = [{"input": (int(p), int(q), int(k)), "x": float(x[p, q, k])} for p, q in hits]
    return {"kind": "max_unpool", "input_layer": rec.source(inputs[0]), "switch": int(switch),
            "sources": sources, "result": float(sum(s["x"] for s in sources))}


def _concat(rec, op, inputs, unit, top_k):
    axis = op.axis % (len(unit) + 1) - 1                              # the axis in the per-image index
    start, parts = 0, []
    for t in inputs:
        size = _array(t).shape[axis + 1]
        parts.append({"layer": rec.source(t), "start": start, "stop": start + size})
        start += size
    which = next(i for i, p in enumerate(parts) if p["start"] <= unit[axis] < p["stop"])
    inner = list(unit)
    inner[axis] -= parts[which]["start"]
    value = float(_array(inputs[which])[(0,) + tuple(inner)])
    return {"kind": "concat", "axis": int(axis), "operands": parts, "operand": which,
            "operand_index": tuple(inner), "result": value}


def _lrn(rec, op, inputs, unit, top_k):
    x = _array(inputs[0])[0]
    k, c = unit[-1], x.shape[-1]
    lo, hi = max(0, k - op.size // 2), min(c - 1, k + (op.size - 1) // 2)
    near = x[unit[:-1]][lo:hi + 1].astype(np.float64)                 # the neighbouring channels
    scale = op.k + op.alpha / op.size * float((near ** 2).sum())
    a = float(x[unit])
    return {"kind": "local_response_norm", "input_layer": rec.source(inputs[0]), "x": a, "channels": (lo, hi),
            "neighbours": near, "size": op.size, "alpha": op.alpha, "beta": op.beta, "k": op.k,
            "scale": scale, "result": a / scale ** op.beta}


def softmax_terms(logits) -> dict:
    """The softmax of a vector of logits as its steps: exponentials (shifted by the max, which the
    ratio does not change), their sum, the probabilities."""
    z = np.asarray(logits, np.float64)
    shift = float(z.max())
    exps = np.exp(z - shift)
    return {"logits": z, "shift": shift, "exps": exps, "sum": float(exps.sum()), "probs": exps / exps.sum()}


def _softmax(rec, op, inputs, unit, top_k):
    z = _array(inputs[0])[0]
    if z.ndim != 1:
        raise ValueError(f"{OWNER}: explaining a softmax over maps is not supported; give a layer with vector output.")
    out = {"kind": "softmax", "input_layer": rec.source(inputs[0])}
    out.update(softmax_terms(z))
    out["result"] = float(out["probs"][unit[0]])
    return out


def _reshape(rec, op, inputs, unit, top_k, out_shape):
    x = _array(inputs[0])[0]
    source = np.unravel_index(np.ravel_multi_index(unit, out_shape), x.shape)   # the same place in C order
    source = tuple(int(v) for v in source)
    return {"kind": "flatten", "input_layer": rec.source(inputs[0]), "source_index": source,
            "result": float(x[source])}


def _global_pool(rec, module, x_in, unit):
    x = _array(x_in)[0]                                               # (h, w, c)
    (k,) = unit
    plane = x[..., k].astype(np.float64)
    if type(module).__name__ == "GlobalMaxPool2D":
        i, j = np.unravel_index(int(np.argmax(plane)), plane.shape)
        return {"kind": "global_max_pool", "input_layer": rec.source(x_in), "patch": plane, "max": float(plane[i, j]),
                "argmax": (int(i), int(j)), "result": float(plane[i, j])}
    return {"kind": "global_avg_pool", "input_layer": rec.source(x_in), "patch": plane, "sum": float(plane.sum()),
            "divisor": float(plane.size), "result": float(plane.sum() / plane.size)}


EXPLAINERS = {"Conv2dOp": _conv, "ConvTranspose2dOp": _conv_transpose, "LinearOp": _dense,
              "BatchNormOp": _batch_norm, "AddOp": _add, "AddReLUOp": _add_relu, "MaxPool2dOp": _max_pool,
              "AvgPool2dOp": _avg_pool, "ConcatOp": _concat, "LocalResponseNormOp": _lrn, "SoftmaxOp": _softmax,
              "UpsampleOp": _upsample, "MaxUnpool2dOp": _max_unpool,
              **{name: _activation for name in ACTIVATIONS}}


def _explain_op(rec, call, unit, top_k):
    """The explanation of ``unit`` of one layer's output, from the op that made it."""
    module, out = call.module, call.output
    if type(module).__name__ in ("GlobalAvgPool2D", "GlobalMaxPool2D"):
        return _global_pool(rec, module, call.inputs[0], unit)
    if any(out is t for t in call.inputs):                        # returned its input (Identity, Dropout in eval)
        x_in = next(t for t in call.inputs if t is out)
        return {"kind": "identity", "input_layer": rec.source(x_in), "result": float(_array(x_in)[(0,) + unit])}
    made = rec.producer(out)
    if made is None:
        return {"kind": "other", "op": None, "result": None}
    op, inputs = made
    name = type(op).__name__
    inner = rec.producer(inputs[0]) if name in ACTIVATIONS else None
    if inner is not None and "w" in module._parameters and type(inner[0]).__name__ in ("Conv2dOp", "ConvTranspose2dOp", "LinearOp"):
        # a Conv2D or Dense with its own activation: the layer's sum, then the activation
        e = EXPLAINERS[type(inner[0]).__name__](rec, inner[0], inner[1], unit, top_k)
        e["activation"] = ACTIVATIONS[name]
        e["result"] = _activation_of(ACTIVATIONS[name], op, e["pre_activation"])
        return e
    if name == "ReshapeOp":
        return _reshape(rec, op, inputs, unit, top_k, tuple(out.shape[1:]))
    if name in EXPLAINERS:
        return EXPLAINERS[name](rec, op, inputs, unit, top_k)
    return {"kind": "other", "op": name, "result": None}


def _receptive_field(rec, out, unit):
    """The unit's field in input pixels (summary's receptive-field code): (top, left, bottom, right)."""
    field = getattr(out, "_rf", None)
    if not isinstance(field, tuple) or len(unit) != 3:
        return field if isinstance(field, str) else None             # 'global', 'unknown' or None
    fh, fw = field
    top, left = fh.start + unit[0] * fh.jump, fw.start + unit[1] * fw.jump
    box = (top, left, top + fh.size - 1, left + fw.size - 1)
    h, w = rec.x.shape[1:3]
    return {"size": (fh.size, fw.size), "jump": (fh.jump, fw.jump), "box": box,
            "box_in_image": (max(0, top), max(0, left), min(h - 1, box[2]), min(w - 1, box[3]))}


def explain_unit(model, x, layer: str, index, top_k: int = 8, record: ForwardRecord | None = None) -> dict:
    """How one unit of one layer got its value: the arithmetic with the real numbers.

    Args:
        model: a striate Module that takes images (run in evaluation mode).
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)`` (may be None with ``record``).
        layer: a layer name of ``st.summary`` / ``striate summary`` (``"layer1.0.conv2"``).
        index: ``(row, col, channel)`` for a layer with feature maps, ``(unit,)`` for a vector.
        top_k: how many of the largest contributions (input channels of a conv, inputs of a dense
            layer) are listed one by one; the others are summed in ``rest``.
        record: a :func:`record_forward` of this model and image, to skip the forward pass.

    Returns:
        A dict with ``layer``, ``type`` (the layer's class), ``kind`` (the op that computed the
        unit: ``conv``, ``dense``, ``batch_norm``, ``relu``, ``max_pool``, ``avg_pool``, ``add``,
        ``concat``, ``softmax``, ``flatten``, ``identity``, ...), ``index``, ``value`` (the forward's
        number, ``st.vis.activations(model, x)[layer][index]``) and ``result`` (the same number
        redone in float64 from the terms). Per kind:

        * conv: ``window`` (input rows and columns read, padding, ``inside`` mask), ``channels``
            read (a group's), ``patch``, ``kernel``, ``products`` ``(kh, kw, channels)``, ``terms``
            (one sum per input channel), ``bias``, ``top`` (the ``top_k`` largest |terms| with their
            patch, kernel and products), ``rest`` and ``rest_count``, ``pre_activation`` =
            sum of ``top`` terms + ``rest`` + ``bias``; ``activation`` if the layer has one.
        * conv_transpose: the scatter view, ``sources`` (each input pixel ``(i, j)`` that lands on
            this unit through kernel offset ``(u, v)``, ``i * stride - pad_top + u * dilation = row``,
            with its sum over channels), ``x``, ``kernel``, ``products`` ``(sources, channels)``,
            ``terms`` (one sum per input channel of the unit's group), ``bias``, ``top``, ``rest``.
        * upsample: ``mode``, ``rows`` and ``cols`` (input index, weight), ``sources`` (each input
            pixel with its weight; one of weight 1 for nearest, up to four summing to 1 for bilinear).
        * max_unpool: ``switch`` (row * w + col) and ``sources``, the pooled values sent here (none: 0).
        * dense: ``x``, ``weights``, ``terms`` = w_i * x_i, ``top``, ``rest``, ``bias``, ``pre_activation``.
        * batch_norm: ``x``, ``mean``, ``var``, ``eps``, ``gamma``, ``beta``.
        * relu / sigmoid / tanh / leaky_relu: ``x`` (and ``add`` when the input is a residual sum).
        * max_pool / avg_pool: ``window``, ``patch`` (padding -inf / 0), ``max`` and ``argmax`` or
            ``sum`` and ``divisor``; global pooling likewise over the whole map.
        * add / concat: ``operands`` (layer names and values; for concat the channel ranges).
        * ``receptive_field``: the unit's field in input pixels, ``box`` = (top, left, bottom,
            right), also clipped to the image; ``softmax`` (logits, exponentials, sum,
            probabilities) for the model's output layer.

    Example::

        >>> e = explain_unit(model, x, "features.0", (3, 4, 7))
        >>> e["value"], sum(t["term"] for t in e["top"]) + e["rest"] + e["bias"]
        (0.4127, 0.4127...)
    """
    if not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"{OWNER}: top_k must be a positive int. Received: top_k={top_k!r}.")
    rec = record if record is not None else record_forward(model, x)
    if rec.model is not model:
        raise ValueError(f"{OWNER}: record was made for another model; make it with record_forward(model, x).")
    if record is not None and x is not None and not np.array_equal(as_image(x, model, OWNER), rec.x):
        raise ValueError(f"{OWNER}: record was made for another image; make it with record_forward(model, x), "
                         "or pass x=None with the record.")
    call = _check_layer(rec, layer)
    out = call.output
    if not isinstance(out, Tensor):
        raise ValueError(f"{OWNER}: layer {layer!r} returns {type(out).__name__}, not one array; choose another layer.")
    unit = _check_index(index, tuple(out.shape[1:]), layer)
    value = float(out.data[0][unit])
    e = {"layer": layer, "type": type(call.module).__name__, "index": unit, "value": value}
    e.update(_explain_op(rec, call, unit, int(top_k)))
    e["receptive_field"] = _receptive_field(rec, out, unit)
    folded = dict(getattr(model, "folded", ()) or ())
    if layer in folded:
        e["folded_batch_norm"] = folded[layer]     # the conv's w and b carry that batch norm (st.nn.fold_batch_norm)
    elif layer in folded.values():
        e["folded_into"] = next(c for c, b in folded.items() if b == layer)
    if out is rec.output and out.ndim == 2 and e["kind"] != "softmax":
        e["softmax"] = softmax_terms(out.data[0])
    return e


# --------------------------------------------------------------------------- JSON and text
def to_json(value):
    """An explanation with its arrays as nested lists and plain Python numbers, for ``json.dumps``
    (``-inf`` padding of a max pooling window becomes ``None``, a Fraction a float)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, numbers.Rational):       # a receptive field's position past an upsampling is a Fraction
        return float(value)
    return value


def _f(v) -> str:
    return "pad" if v is None or (isinstance(v, float) and np.isinf(v)) else f"{float(v):.6g}"


def _grid(a, indent="      ") -> list:
    """Rows of a small 2-D array as text."""
    return [indent + " ".join(f"{_f(v):>10}" for v in row) for row in np.asarray(a)]


def _where(e) -> str:
    w = e.get("window")
    if not w:
        return ""
    rows, cols = w["rows"], w["cols"]
    return (f"  window in {e.get('input_layer')}: rows {rows[0]}..{rows[-1]}, cols {cols[0]}..{cols[-1]} "
            f"(stride {w['stride']}, dilation {w['dilation']}, padding {w['padding']} as t, b, l, r)")


def _terms_lines(e, what, detail) -> list:
    lines = [f"  {what}:"]
    for t in e["top"]:
        lines.append(f"    {detail(t):<40} {t['term']:+.6g}")
    if e["rest_count"]:
        lines.append(f"    {'the other ' + str(e['rest_count']) + ' terms':<40} {e['rest']:+.6g}")
    lines.append(f"  sum = {_f(e['pre_activation'] - e['bias'])}, + bias {_f(e['bias'])} = {_f(e['pre_activation'])}")
    if e.get("activation"):
        lines.append(f"  {e['activation']}({_f(e['pre_activation'])}) = {_f(e['result'])}")
    return lines


def _channel_terms_lines(e, what: str) -> list:
    """The per-input-channel terms of a conv or transposed conv unit, under a heading naming its group."""
    n = len(e["terms"])
    group = f", group {e['group']} of {e['groups']})" if e["groups"] > 1 else ")"
    return _terms_lines(e, f"{what}, per input channel ({n} channels{group}", lambda t: f"channel {t['channel']}")


def _conv_lines(e) -> list:
    kh, kw = e["kernel"].shape[:2]
    lines = [_where(e)]
    if e["top"] and kh * kw <= 25:
        t = e["top"][0]
        sums = " + ".join(f"{_f(p)}*{_f(k)}" for p, k in zip(t["patch"].ravel(), t["kernel"].ravel()))
        lines.append(f"  channel {t['channel']}: patch * kernel summed over {kh}x{kw} = {sums} = {_f(t['term'])}")
    return lines + _channel_terms_lines(e, f"patch * kernel summed over {kh}x{kw}")


def _conv_transpose_lines(e) -> list:
    sc = e["scatter"]
    lines = [f"  scatter from {e.get('input_layer')}: {len(e['sources'])} input pixels land here "
             f"(stride {sc['stride']}, dilation {sc['dilation']}, padding {sc['padding']} as t, b, l, r)"]
    for s in e["sources"][:8]:
        lines.append(f"    input {s['input']} through kernel offset {s['offset']}: x * w summed over channels = {_f(s['sum'])}")
    if len(e["sources"]) > 8:
        lines.append(f"    ... and {len(e['sources']) - 8} more")
    return lines + _channel_terms_lines(e, "x * kernel summed over the sources")


def _kind_lines(e) -> list:
    kind = e["kind"]
    if kind == "conv":
        return _conv_lines(e)
    if kind == "conv_transpose":
        return _conv_transpose_lines(e)
    if kind == "upsample":
        how = e["mode"] + (", align_corners" if e["align_corners"] else "")
        parts = " + ".join(f"{_f(s['weight'])} * {_f(s['x'])}" for s in e["sources"])
        where = ", ".join(str(s["input"]) for s in e["sources"])
        return [f"  {how} interpolation of {e.get('input_layer')} at {where}:", f"  {parts} = {_f(e['result'])}"]
    if kind == "max_unpool":
        if not e["sources"]:
            return [f"  no pooled maximum came from here (switch {e['switch']}): 0"]
        parts = " + ".join(f"{s['input']} {_f(s['x'])}" for s in e["sources"])
        return [f"  the pooled value(s) whose switch is {e['switch']}: {parts} = {_f(e['result'])}"]
    if kind == "dense":
        return _terms_lines(e, f"w_i * x_i over {len(e['terms'])} inputs ({e['input_layer']})",
                            lambda t: f"input {t['input']}{' ' + str(t['source_index']) if 'source_index' in t else ''}: "
                                      f"{_f(t['w'])} * {_f(t['x'])}")
    if kind == "batch_norm":
        line = (f"  (x - mean) / sqrt(var + eps) * gamma + beta = ({_f(e['x'])} - {_f(e['mean'])}) / sqrt({_f(e['var'])}"
                f" + {_f(e['eps'])}) * {_f(e['gamma'])} + {_f(e['beta'])} = {_f(e['pre_activation'])}")
        return [line] + ([f"  relu -> {_f(e['result'])}"] if e.get("activation") else [])
    if kind in ("relu", "leaky_relu", "sigmoid", "tanh"):
        lines = []
        if "add" in e:
            ops = " + ".join(f"{o['layer']} {_f(o['value'])}" for o in e["add"]["operands"])
            lines.append(f"  x = {ops} = {_f(e['add']['result'])}   (residual sum)")
        return lines + [f"  {kind}(x) = {kind}({_f(e['x'])}) = {_f(e['result'])}"]
    if kind in ("max_pool", "avg_pool"):
        lines = [_where(e), "  window:"] + _grid(e["patch"])
        if kind == "max_pool":
            return lines + [f"  max = {_f(e['max'])} at window cell {e['argmax']} (input {e['argmax_input']})"]
        return lines + [f"  sum / {_f(e['divisor'])} = {_f(e['sum'])} / {_f(e['divisor'])} = {_f(e['result'])}"
                        + ("   (padded cells count as zeros)" if e["count_include_pad"] else "")]
    if kind in ("global_avg_pool", "global_max_pool"):
        if kind == "global_max_pool":
            return [f"  max over the {e['patch'].shape[0]}x{e['patch'].shape[1]} map = {_f(e['max'])} at {e['argmax']}"]
        return [f"  mean over the {e['patch'].shape[0]}x{e['patch'].shape[1]} map = {_f(e['sum'])} / "
                f"{_f(e['divisor'])} = {_f(e['result'])}"]
    if kind == "add":
        ops = " + ".join(f"{o['layer']} {_f(o['value'])}" for o in e["operands"])
        return [f"  {ops} = {_f(e.get('pre_activation', e['result']))}"] + (
            [f"  relu -> {_f(e['result'])}"] if e.get("activation") else [])
    if kind == "concat":
        parts = ", ".join(f"{o['layer']} [{o['start']}, {o['stop']})" for o in e["operands"])
        o = e["operands"][e["operand"]]
        return [f"  concatenation along axis {e['axis']} of {parts}",
                f"  this unit is {o['layer']} at {e['operand_index']} = {_f(e['result'])}"]
    if kind == "local_response_norm":
        return [f"  x / (k + alpha/n * sum of x^2 over channels {e['channels'][0]}..{e['channels'][1]})^beta = "
                f"{_f(e['x'])} / ({_f(e['k'])} + {_f(e['alpha'])}/{e['size']} * "
                f"{_f((e['neighbours'] ** 2).sum())})^{_f(e['beta'])} = {_f(e['result'])}"]
    if kind == "flatten":
        return [f"  element {e['source_index']} of {e['input_layer']} = {_f(e['result'])}"]
    if kind == "identity":
        return [f"  the input ({e['input_layer']}) unchanged = {_f(e['result'])}"]
    if kind == "softmax":
        return _softmax_lines(e, e["index"][0])
    return [f"  computed by {e.get('op')}, which has no explanation yet"]


def _softmax_lines(s, k) -> list:
    order = np.argsort(-s["probs"])[:5]
    lines = [f"  softmax: p_i = exp(z_i - {_f(s['shift'])}) / sum_j exp(z_j - {_f(s['shift'])}), "
             f"sum = {_f(s['sum'])}"]
    lines += [f"    class {int(i):<5} z = {_f(s['logits'][i]):>10}  exp = {_f(s['exps'][i]):>10}  p = {_f(s['probs'][i])}"
              for i in order]
    return lines + [f"  class {k}: p = {_f(s['exps'][k])} / {_f(s['sum'])} = {_f(s['probs'][k])}"]


def format_explanation(e: dict) -> str:
    """An explanation of :func:`explain_unit` as readable arithmetic, a few lines."""
    lines = [f"{e['layer']} ({e['type']}) unit {e['index']} = {_f(e['value'])}   [{e['kind']}]"]
    lines += [line for line in _kind_lines(e) if line]
    rf = e.get("receptive_field")
    if isinstance(rf, dict):
        t, left, b, r = rf["box_in_image"]
        lines.append(f"  receptive field: {rf['size'][0]}x{rf['size'][1]} input pixels, rows {t}..{b}, cols {left}..{r}")
    if e.get("folded_batch_norm"):
        lines.append(f"  (batch norm {e['folded_batch_norm']} is folded into this conv's weights and bias)")
    if "softmax" in e:
        lines += _softmax_lines(e["softmax"], e["index"][0])
    return "\n".join(lines)
