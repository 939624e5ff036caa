"""``st.onnx.export``: write a striate model as an ONNX graph that onnxruntime, Netron and others read.

The model is traced (:mod:`striate.onnx.trace`) and each op call becomes ONNX nodes through
:data:`EXPORTERS` (op kind -> function); the kinds of op classes are the one table
:data:`striate.onnx.trace.KINDS`, so a renamed op class is a one-line fix there.

Layout. striate is NHWC with HWIO weights; ONNX's conv and pooling operators are NCHW with OIHW
weights. The conversion is made once, at the boundary: one Transpose after the (NHWC) graph input
(none with ``nchw_input=True``), every conv weight baked as OIHW, and every 4-D value inside the
graph NCHW. Flattening is the one place where the layouts disagree on *values*: striate's flatten
orders a feature map's features (h, w, c), ONNX's Flatten of NCHW (c, h, w). The flattened value is
left in ONNX's order and marked with the permutation; the Gemm that consumes it gets its weight rows
permuted instead (so no Transpose is needed), and only a consumer that cares about the order (the
graph output, a concat) gets a Gather that restores striate's order.

Each exported value is a :class:`Value`: its ONNX name, and how it relates to striate's array
(``perm``: ONNX feature j is striate feature ``perm[j]``; ``scale``: striate's array is ONNX's times
``scale``, so that ``x.mean(axis=(1, 2))`` = sum times 1/(h*w) becomes one GlobalAveragePool).
"""
from __future__ import annotations

import json

import numpy as np

from ..nn.layout import flatten_perm
from ..optional import require
from .trace import Call, trace

# ONNX axis of each NHWC axis of a 4-D value held as NCHW
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _onnx():
    return require("onnx", "onnx", "ONNX export and import")


class Value:
    __slots__ = ("name", "shape", "perm", "scale")

    def __init__(self, name, shape, perm=None, scale=1.0):
        self.name, self.shape, self.perm, self.scale = name, tuple(shape), perm, scale


class Builder:
    """Collects nodes and initializers; names values uniquely."""

    def __init__(self, onnx, opset):
        self.onnx, self.opset, self.nodes, self.inits, self.used = onnx, opset, [], [], set()

    def fresh(self, base: str) -> str:
        base = (base or "t").replace("/", ".")
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def init(self, base, array, dtype=np.float32) -> str:
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, base, **attrs) -> str:
        out = self.fresh(base)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


class UnsupportedOps(ValueError):
    pass


# --------------------------------------------------------------------------- per-op exporters
# Each takes (builder, call, inputs: list[Value | array-or-None]) and returns the output Value.
def _materialise(b: Builder, v: Value) -> Value:
    """The value in striate's own order and scale (a Gather for a permuted flatten, a Mul for scale)."""
    name = v.name
    if v.perm is not None:
        name = b.node("Gather", [name, b.init(name + ".order", np.argsort(v.perm), np.int64)], name + ".hwc", axis=1)
    if v.scale != 1.0:
        name = b.node("Mul", [name, b.init(name + ".scale", np.array(v.scale))], name + ".scaled")
    return Value(name, v.shape) if name != v.name else v


def _unscaled(b, v):
    if v.scale == 1.0:
        return v
    return Value(b.node("Mul", [v.name, b.init(v.name + ".scale", np.array(v.scale))], v.name + ".scaled"),
                 v.shape, v.perm)


def _param(x, what, call):
    if not isinstance(x, np.ndarray):
        raise UnsupportedOps(f"{call.op} at {call.name or 'the model'}: its {what} is not a parameter of the model")
    return x


def _conv(b, call, x, w, bias=None):
    fn = call.fn
    x = _materialise(b, x)
    w = _param(w, "weight", call)
    t, bo, le, r = fn.pads
    inputs = [x.name, b.init(call.name + ".weight", w.transpose(3, 2, 0, 1))]  # HWIO -> OIHW
    if bias is not None:
        inputs.append(b.init(call.name + ".bias", _param(bias, "bias", call)))
    out = b.node("Conv", inputs, call.name or "conv", kernel_shape=list(w.shape[:2]), strides=list(fn.stride),
                 pads=[t, le, bo, r], dilations=list(fn.dilation), group=int(fn.groups))
    return Value(out, call.out_shape)


def _conv_transpose(b, call, x, w, bias=None):
    """ONNX's ConvTranspose takes PyTorch's weight layout (c_in, c_out // groups, kh, kw). The
    output_padding (rows the output has beyond what the padding leaves of the windows' reach) is
    first taken off the bottom/right padding, which gives the same rows; onnxruntime allows the rest
    only below the stride."""
    fn = call.fn
    x = _materialise(b, x)
    w = _param(w, "weight", call)
    t, bo, le, r = fn.pads
    full = [(x.shape[1 + a] - 1) * fn.stride[a] + fn.dilation[a] * (w.shape[a] - 1) + 1 for a in range(2)]
    extra = [fn.out_hw[a] - (full[a] - fn.pads[2 * a] - fn.pads[2 * a + 1]) for a in range(2)]
    bo, r = bo - min(bo, extra[0]), r - min(r, extra[1])
    extra = [fn.out_hw[0] - (full[0] - t - bo), fn.out_hw[1] - (full[1] - le - r)]
    if extra[0] >= fn.stride[0] or extra[1] >= fn.stride[1]:
        raise UnsupportedOps(f"ConvTranspose with output_padding {tuple(extra)} not below the stride {fn.stride} "
                             "beyond its bottom/right padding (onnxruntime refuses it)")
    inputs = [x.name, b.init(call.name + ".weight", w.transpose(3, 2, 0, 1))]  # HWIO -> (c_in, c_out // g, kh, kw)
    if bias is not None:
        inputs.append(b.init(call.name + ".bias", _param(bias, "bias", call)))
    out = b.node("ConvTranspose", inputs, call.name or "conv_transpose", kernel_shape=list(w.shape[:2]),
                 strides=list(fn.stride), pads=[t, le, bo, r], dilations=list(fn.dilation), group=int(fn.groups),
                 output_padding=extra)
    return Value(out, call.out_shape)


def _resize_scale(size, out, scale):
    """``scale`` as float32, nudged up until ``floor(size * scale)`` (in float64, as shape inference
    and the runtime compute it) is ``out``: 1.4 is 1.39999998 in float32, and 5 times that floors to 6."""
    s = np.float32(scale)
    while np.floor(size * np.float64(s)) < out:
        s = np.nextafter(s, np.float32(np.inf))
    return s


def _resize(b, call, x):
    """Resize: scale factors as given (the sampling positions depend on them), or else the output
    size, (n, c) read from the input's shape so that the batch stays dynamic. Coordinate modes:
    nearest = asymmetric with floor, bilinear = half_pixel or align_corners (PyTorch's rules)."""
    fn = call.fn
    x = _materialise(b, x)
    n = call.name or "resize"
    (_, h, w, _), (_, oh, ow, _) = x.shape, call.out_shape
    if fn.mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if fn.align_corners else "half_pixel")
    if fn.scales is not None:
        scales = [1.0, 1.0, _resize_scale(h, oh, fn.scales[0]), _resize_scale(w, ow, fn.scales[1])]
        inputs = [x.name, "", b.init(n + ".scales", np.array(scales, np.float32))]
    else:
        shape = b.node("Shape", [x.name], n + ".shape")
        nc = b.node("Slice", [shape, b.init(n + ".start", np.array([0]), np.int64),
                              b.init(n + ".end", np.array([2]), np.int64)], n + ".nc")
        sizes = b.node("Concat", [nc, b.init(n + ".hw", np.array([oh, ow]), np.int64)], n + ".sizes", axis=0)
        inputs = [x.name, "", "", sizes]
    return Value(b.node("Resize", inputs, n, **attrs), call.out_shape)


def _batch_norm(b, call, x, gamma, beta):
    fn = call.fn
    if fn.training:
        raise UnsupportedOps("BatchNorm in training mode (export runs the model in evaluation mode)")
    x = _materialise(b, x)
    n = call.name or "bn"
    inputs = [x.name, b.init(n + ".scale", _param(gamma, "gamma", call)),
              b.init(n + ".bias", _param(beta, "beta", call)),
              b.init(n + ".mean", fn.running_mean), b.init(n + ".var", fn.running_var)]
    out = b.node("BatchNormalization", inputs, n, epsilon=float(fn.eps), momentum=1.0 - float(fn.momentum))
    if fn.relu:  # F.batch_norm_relu
        out = b.node("Relu", [out], n + ".relu")
    return Value(out, call.out_shape)


def _input_cells(fn, in_hw):
    """Per window, the number of its taps on the input (ONNX's count_include_pad=0 divisor)."""
    from ..ops import offset_view
    (t, bo, le, r), (h, w) = fn.pads, in_hw
    counted = np.zeros((1, h + t + bo, w + le + r, 1))
    counted[:, t:t + h, le:le + w] = 1
    return sum(offset_view(counted, i, j, fn.stride, fn.out_hw, fn.dilation)
               for i in range(fn.kernel[0]) for j in range(fn.kernel[1]))


def _pool(op):
    def export(b, call, x):
        """Explicit pads (a ceil_mode op's extra rows included), so ceil_mode=0: the same windows.
        Average pooling's divisor: count_include_pad=1 (kh*kw), =0 (the input cells), or else (the
        windows ceil_mode adds with count_include_pad) an AveragePool times a constant map."""
        fn = call.fn
        x = _materialise(b, x)
        t, bo, le, r = fn.pads
        attrs = dict(kernel_shape=list(fn.kernel), strides=list(fn.stride), pads=[t, le, bo, r])
        dilation = tuple(getattr(fn, "dilation", (1, 1)))
        if dilation != (1, 1):
            if b.opset < 19 and op == "AveragePool":
                raise UnsupportedOps("dilated average pooling (ONNX has it from opset 19: pass opset=19)")
            attrs["dilations"] = list(dilation)
        divisor = getattr(fn, "divisor", None)
        correction = None
        if op == "AveragePool":
            exclude = divisor is not None and np.array_equal(divisor, _input_cells(fn, x.shape[1:3]))
            attrs["count_include_pad"] = 0 if exclude else 1
            if divisor is not None and not exclude:
                correction = (fn.kernel[0] * fn.kernel[1] / divisor).transpose(0, 3, 1, 2)  # (1, 1, oh, ow)
        n = call.name or op.lower()
        out = b.node(op, [x.name], n, **attrs)
        if correction is not None:
            out = b.node("Mul", [out, b.init(n + ".divisor", correction)], n + ".mean")
        if getattr(fn, "relu", False):  # the fused relu -> max pool (relu commutes with max)
            out = b.node("Relu", [out], out + ".relu")
        return Value(out, call.out_shape)
    return export


def _lrn(b, call, x):
    fn = call.fn
    if fn.size % 2 == 0:
        raise UnsupportedOps(f"LocalResponseNorm with an even size ({fn.size}): ONNX centres even windows "
                             "one channel later than striate and PyTorch")
    x = _materialise(b, x)
    # ONNX's LRN divides alpha by size, as striate's (Caffe/PyTorch) convention does: passed as is
    return Value(b.node("LRN", [x.name], call.name or "lrn", size=int(fn.size), alpha=float(fn.alpha),
                        beta=float(fn.beta), bias=float(fn.k)), call.out_shape)


def _linear(b, call, x, w, bias=None):
    w = _param(w, "weight", call)
    x = _unscaled(b, x)
    if x.perm is not None:
        w = w[x.perm]  # ONNX feature j is striate feature perm[j]: permute the weight rows to match
    n = call.name or "dense"
    inputs = [x.name, b.init(n + ".weight", w)]
    if bias is not None:
        inputs.append(b.init(n + ".bias", _param(bias, "bias", call)))
    return Value(b.node("Gemm", inputs, n), call.out_shape)


def _elementwise(op, **fixed):
    def export(b, call, x):
        attrs = {k: float(getattr(call.fn, v)) for k, v in fixed.items()}
        x = _unscaled(b, x) if op != "Relu" or x.scale < 0 else x  # relu(s * x) = s * relu(x) for s > 0
        return Value(b.node(op, [x.name], call.name or op.lower(), **attrs), call.out_shape, x.perm, x.scale)
    return export


def _softmax(op):
    def export(b, call, x):
        axis = call.fn.axis % len(call.out_shape)
        x = _unscaled(b, x)
        if len(call.out_shape) == 4:
            axis, perm = _NCHW_AXIS[axis], None
        elif len(call.out_shape) == 2 and axis == 1:
            perm = x.perm  # along the features: any order of them gives the same values, permuted alike
        else:
            x, perm = _materialise(b, x), None
        return Value(b.node(op, [x.name], call.name or op.lower(), axis=axis), call.out_shape, perm)
    return export


def _add(b, call, x, y):
    if not isinstance(x, Value) or not isinstance(y, Value):
        raise UnsupportedOps("Add of a constant")
    if x.perm is not None and y.perm is not None and np.array_equal(x.perm, y.perm):
        x, y, perm = _unscaled(b, x), _unscaled(b, y), x.perm
    else:
        x, y, perm = _materialise(b, x), _materialise(b, y), None
    return Value(b.node("Add", [x.name, y.name], call.name or "add"), call.out_shape, perm)


def _add_relu(b, call, x, y):
    total = _add(b, call, x, y)
    name = (call.name or "add") + ".relu"
    return Value(b.node("Relu", [total.name], name), call.out_shape, total.perm)


def _scalar(call, other, inverse=False):
    if isinstance(other, np.ndarray) and other.size == 1:
        v = float(other.reshape(()))
        return 1.0 / v if inverse else v
    raise UnsupportedOps(f"{call.op} by a non-scalar constant")


def _mul(b, call, x, y):
    if isinstance(x, Value) == isinstance(y, Value):
        raise UnsupportedOps("Mul other than by a constant")
    v, const = (x, call.fn.b) if isinstance(x, Value) else (y, call.fn.a)  # Mul keeps both operands
    return Value(v.name, call.out_shape, v.perm, v.scale * _scalar(call, const))


def _div(b, call, x, y):
    if not isinstance(x, Value) or isinstance(y, Value):
        raise UnsupportedOps("Div other than by a constant")
    return Value(x.name, call.out_shape, x.perm, x.scale * _scalar(call, call.fn.b, inverse=True))


def _global_pool(onnx_op, what):
    def export(b, call, x):
        """A reduction over the spatial axes of a feature map: Global{Average,Max}Pool (+ Flatten
        without keepdims). The sum of a global average pool is its mean times h * w (kept as scale)."""
        fn = call.fn
        axis = fn.axis
        axes = None if axis is None else tuple(sorted(a % 4 for a in ((axis,) if isinstance(axis, int) else axis)))
        if len(x.shape) != 4 or axes != (1, 2):
            raise UnsupportedOps(f"{call.op} over axes {axis} (only over the spatial axes, as {what})")
        x = _materialise(b, x)
        n = call.name or onnx_op.lower()
        out = b.node(onnx_op, [x.name], n)
        if not fn.keepdims:
            out = b.node("Flatten", [out], n + ".flat", axis=1)
        scale = x.shape[1] * x.shape[2] if onnx_op == "GlobalAveragePool" else 1.0
        return Value(out, call.out_shape, None, scale)
    return export


def _take(b, call, x):
    index = call.fn.index
    if len(x.shape) == 2 and isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None) \
            and isinstance(index[1], np.ndarray) and index[1].ndim == 1:
        x = _unscaled(b, x)
        idx = np.asarray(index[1], dtype=np.int64)
        if x.perm is not None:
            idx = np.argsort(x.perm)[idx]  # striate feature i sits at ONNX position argsort(perm)[i]
        n = call.name or "take"
        return Value(b.node("Gather", [x.name, b.init(n + ".indices", idx, np.int64)], n, axis=1), call.out_shape)
    raise UnsupportedOps("indexing other than picking features (x[:, indices]) of a 2-D value")


def _reshape(b, call, x):
    shape = call.out_shape
    if len(x.shape) == 4 and len(shape) == 2 and shape[0] == x.shape[0]:
        x = _unscaled(b, x)  # (a pooled (n, 1, 1, c) map flattens in the same order in both layouts)
        _, h, w, c = x.shape
        out = b.node("Flatten", [x.name], call.name or "flatten", axis=1)
        return Value(out, shape, None if h * w == 1 else flatten_perm(h, w, c))
    if len(x.shape) == 2 and shape == x.shape:
        return x
    raise UnsupportedOps(f"Reshape from {x.shape} to {shape} (only flattening a feature map)")


def _concat(b, call, *xs):
    axis = call.fn.axis % len(call.out_shape)
    four = len(call.out_shape) == 4
    constants = [i for i, x in enumerate(xs) if not isinstance(x, Value)]
    if constants:  # zero blocks (the option-A shortcut's new channels): a Pad of the others
        return _concat_zeros(b, call, xs, axis)
    names = [_materialise(b, x).name for x in xs]
    return Value(b.node("Concat", names, call.name or "concat", axis=_NCHW_AXIS[axis] if four else axis),
                 call.out_shape)


def _concat_zeros(b, call, xs, axis):
    if call.output is None:
        raise UnsupportedOps("Concat with a constant operand outside a module")
    sizes, start, parts = call.fn.sizes, 0, []
    for x, size in zip(xs, sizes):
        piece = np.take(call.output, range(start, start + size), axis=axis)
        parts.append((x, size, piece))
        start += size
    variable = [i for i, (x, _, _) in enumerate(parts) if isinstance(x, Value)]
    if len(variable) != 1 or any(np.any(p) for x, _, p in parts if not isinstance(x, Value)):
        raise UnsupportedOps("Concat of constants other than zeros around one activation")
    i = variable[0]
    before = sum(s for _, s, _ in parts[:i])
    after = sum(s for _, s, _ in parts[i + 1:])
    x = _materialise(b, parts[i][0])
    rank = len(call.out_shape)
    ax = _NCHW_AXIS[axis] if rank == 4 else axis
    pads = [0] * (2 * rank)
    pads[ax], pads[rank + ax] = before, after
    n = call.name or "pad"
    out = b.node("Pad", [x.name, b.init(n + ".pads", np.array(pads), np.int64)], n, mode="constant")
    return Value(out, call.out_shape)


# op kind (striate.onnx.trace.KINDS) -> exporter
EXPORTERS = {
    "conv": _conv,
    "batch_norm": _batch_norm,
    "max_pool": _pool("MaxPool"),
    "avg_pool": _pool("AveragePool"),
    "lrn": _lrn,
    "linear": _linear,
    "relu": _elementwise("Relu"),
    "add_relu": _add_relu,
    "leaky_relu": _elementwise("LeakyRelu", alpha="negative_slope"),
    "sigmoid": _elementwise("Sigmoid"),
    "tanh": _elementwise("Tanh"),
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "add": _add,
    "mul": _mul,
    "div": _div,
    "sum": _global_pool("GlobalAveragePool", "a global average pool"),
    "max": _global_pool("GlobalMaxPool", "a global max pool"),
    "getitem": _take,
    "reshape": _reshape,
    "concat": _concat,
    "conv_transpose": _conv_transpose,
    "resize": _resize,
}


# --------------------------------------------------------------------------- the public function
def _check_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) not in (1, 3) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(
            "input_shape must be (height, width, channels) of positive ints, without the batch axis. "
            f"Received: input_shape={input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def to_onnx(model, input_shape, opset: int = 17, nchw_input: bool = False, class_names=None, preprocess=None,
            doc: str = ""):
    """Build the ONNX ``ModelProto`` of ``model`` (see :func:`export`); returns ``(proto, graph)``."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    shape = _check_shape(input_shape)
    latest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not 13 <= opset <= latest:
        raise ValueError(f"opset must be an int from 13 to {latest} (this onnx package's newest). "
                         f"Received: opset={opset!r}.")
    graph = trace(model, shape)
    # every op must have an exporter: list all that are missing at once
    missing = sorted({c.op for c in graph.calls if c.op not in EXPORTERS})
    if missing:
        raise ValueError(f"Cannot export to ONNX: no ONNX mapping for op(s) {', '.join(missing)}. "
                         f"Supported: {', '.join(sorted(EXPORTERS))}.")
    b = Builder(onnx, opset)
    image = len(shape) == 3
    if image and nchw_input:
        h, w, c = shape
        onnx_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])
        b.used.add("input")
        x = Value("input", (1,) + shape)
    else:
        onnx_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape])
        b.used.add("input")
        name = b.node("Transpose", ["input"], "input.nchw", perm=[0, 3, 1, 2]) if image else "input"
        x = Value(name, (1,) + shape)
    values, problems = {}, []
    for call in graph.calls:
        args = []
        for i in call.inputs:
            if isinstance(i, Call):
                args.append(values[id(i)])
            elif i[0] == "input":
                args.append(x)
            elif i[0] == "param":
                args.append(i[2])
            else:
                args.append(i[1])
        try:
            values[id(call)] = EXPORTERS[call.op](b, call, *args)
        except UnsupportedOps as e:
            problems.append(f"{e} (at {call.name or call.op})")
            values[id(call)] = Value(b.fresh("unsupported"), call.out_shape)
    if problems:
        raise ValueError("Cannot export to ONNX: " + "; ".join(dict.fromkeys(problems)) + ".")
    out = _materialise(b, values[id(graph.output)])
    out_shape = graph.output.out_shape
    out_name = out.name
    if len(out_shape) == 4 and not nchw_input:
        out_name = b.node("Transpose", [out_name], "output.nhwc", perm=[0, 2, 3, 1])
    final = b.node("Identity", [out_name], "output")
    dims = ["N", *out_shape[1:]]
    if len(out_shape) == 4 and nchw_input:
        dims = ["N", out_shape[3], out_shape[1], out_shape[2]]
    onnx_out = helper.make_tensor_value_info(final, TensorProto.FLOAT, dims)
    g = helper.make_graph(b.nodes, type(model).__name__, [onnx_in], [onnx_out], b.inits)
    proto = helper.make_model(g, producer_name="striate", opset_imports=[helper.make_opsetid("", opset)],
                              doc_string=doc)
    proto.ir_version = min(proto.ir_version, _max_ir(onnx, opset))
    meta = {"input_layout": "NCHW" if nchw_input else "NHWC", "input_shape": json.dumps(list(shape))}
    if class_names is not None:
        meta["class_names"] = json.dumps([str(c) for c in class_names])
    if preprocess is not None:
        meta["preprocess"] = json.dumps(preprocess)
    helper.set_model_props(proto, meta)
    # record every intermediate shape (viewers such as Netron label each edge with it)
    proto = onnx.shape_inference.infer_shapes(proto)
    return proto, graph


def _max_ir(onnx, opset):
    """The IR version that goes with ``opset`` (so that older runtimes accept the file)."""
    try:
        from onnx.helper import find_min_ir_version_for
        return find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    except Exception:  # noqa: BLE001  (older onnx: keep the default)
        return onnx.IR_VERSION


def export(model, path, input_shape, opset: int = 17, nchw_input: bool = False, class_names=None,
           preprocess=None, check: bool = True):
    """Write ``model`` to ``path`` as an ONNX file.

    Args:
        model: a built striate Module (its forward must use ops of :data:`EXPORTERS`).
        path: destination ``.onnx`` file (written atomically).
        input_shape: (height, width, channels) of one image (or (features,) for a dense model).
        opset: ONNX opset version of the default domain (13 or newer; 17 by default).
        nchw_input: the graph takes NCHW input (PyTorch's layout) instead of striate's NHWC, which
            saves the input Transpose.
        class_names, preprocess: stored in the file's metadata (``metadata_props``) as JSON.
        check: run ``onnx.checker.check_model(..., full_check=True)`` on the result.

    Shape:
        input ``(N, h, w, c)`` (``(N, c, h, w)`` with ``nchw_input``) -> the model's output; the
        batch axis is dynamic.

    Example::

        >>> st.onnx.export(st.models.lenet5(), "lenet5.onnx", input_shape=(28, 28, 1))
    """
    onnx = _onnx()
    proto, _ = to_onnx(model, input_shape, opset, nchw_input, class_names, preprocess)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    from ..atomic import atomic_open
    with atomic_open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return proto
