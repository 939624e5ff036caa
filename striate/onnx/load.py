"""``st.onnx.load``: read an ONNX file into a striate :class:`~striate.onnx.graph.GraphModule`.

The model is first brought to :data:`OPSET` with ``onnx.version_converter``, so each importer
below handles one version of its operator. Every ``(op_type, version)`` without an importer is
listed in one error before anything is built.

Layout. ONNX values of image models are NCHW; striate's are NHWC. Each ONNX value is tracked with
how striate holds it (:class:`Held`): ``"cl"`` (a 4-D NCHW value held channels-last, NHWC),
``"id"`` (the same array), or a feature permutation for a flattened map (ONNX feature j is
striate feature ``perm[j]``: striate flattens (h, w, c), ONNX (c, h, w)). Conv weights are turned
OIHW -> HWIO; a Gemm after a flatten gets its weight rows permuted instead of a transpose of the
activations. The imported model takes NHWC input, as every striate model; if the ONNX graph starts
by transposing an NHWC input to NCHW (striate's own exports do), that transpose is dropped.
"""
from __future__ import annotations

import json

import numpy as np

from ..nn.layout import flatten_perm
from ..ops.geometry import same_padding
from .export import _onnx
from .graph import GraphModule

OPSET = 17  # the default-domain opset every model is converted to before import

# ONNX axis of a 4-D NCHW value -> NHWC axis of striate's array
_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


class Held:
    __slots__ = ("name", "tag", "shape")

    def __init__(self, name, tag, shape):
        self.name, self.tag, self.shape = name, tag, shape  # shape: the ONNX value's (None if unknown)


class Unsupported(ValueError):
    pass


class Importer:
    def __init__(self, model, onnx):
        self.onnx = onnx
        self.graph = model.graph
        np_helper = onnx.numpy_helper
        self.consts = {t.name: np_helper.to_array(t) for t in self.graph.initializer}
        self.shapes = {}
        for vi in list(self.graph.value_info) + list(self.graph.input) + list(self.graph.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        self.values: dict[str, Held] = {}
        self.nodes, self.modules, self.count = [], {}, 0

    # ----------------------------------------------------------------- helpers
    def fresh(self):
        self.count += 1
        return f"t{self.count}"

    def emit(self, op, inputs, module=None, **attrs):
        out = self.fresh()
        node = {"op": op, "inputs": list(inputs), "output": out, **attrs}
        if module is not None:
            node["module"] = module
        self.nodes.append(node)
        return out

    def const(self, name, node, what):
        if name not in self.consts:
            raise Unsupported(f"{node.op_type} {node.name!r}: its {what} must be a constant (an initializer)")
        return self.consts[name]

    def shape(self, name):
        s = self.shapes.get(name)
        if s is None and name in self.consts:
            s = self.consts[name].shape
        return s

    def module_name(self, node, kind):
        # PyTorch names nodes by module path, "/features/features.0/Conv": keep "features.0"
        parts = [p for p in (node.name or "").split("/") if p]
        if len(parts) > 1 and parts[-1].split("_")[0] == node.op_type:
            parts = parts[:-1]
        base = (parts[-1] if parts else node.output[0] or kind).strip(".") or kind
        name, k = base, 1
        while name in self.modules:
            k += 1
            name = f"{base}_{k}"
        return name

    def held(self, name) -> Held:
        if name not in self.values:
            raise Unsupported(f"value {name!r} is used before it is computed (or is a constant activation)")
        return self.values[name]

    def plain(self, v: Held) -> Held:
        """``v`` held exactly as ONNX computes it, for consumers that care about feature order."""
        if isinstance(v.tag, tuple):
            return Held(self.emit("take", [v.name], indices=[int(i) for i in v.tag[1]]), "id", v.shape)
        return v

    def image(self, v: Held, node) -> Held:
        if v.tag != "cl":
            raise Unsupported(f"{node.op_type} {node.name!r} on a value that is not an NCHW feature map")
        return v


def _attrs(node, onnx):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(attrs, node, in_hw, kernel, stride, dilation):
    """ONNX pads [t, l, b, r] (or auto_pad) -> striate (top, bottom, left, right)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if in_hw is None or None in in_hw:
            raise Unsupported(f"{node.op_type} {node.name!r}: auto_pad {auto} needs known input sizes")
        (t, b), (le, r) = (same_padding(in_hw[i], kernel[i], stride[i], dilation[i]) for i in range(2))
        if auto == "SAME_LOWER":
            t, b, le, r = b, t, r, le
        return [t, b, le, r]
    if auto == "VALID":
        return [0, 0, 0, 0]
    p = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(p) != 4:
        raise Unsupported(f"{node.op_type} {node.name!r}: only 2-D windows are supported (pads={p})")
    return [int(p[0]), int(p[2]), int(p[1]), int(p[3])]


# --------------------------------------------------------------------------- per-op importers
def _conv(im, node, a):
    x = im.image(im.held(node.input[0]), node)
    w = im.const(node.input[1], node, "weight")  # (O, C/g, kh, kw)
    o, cg, kh, kw = w.shape
    stride, dilation = tuple(a.get("strides", [1, 1])), tuple(a.get("dilations", [1, 1]))
    in_hw = x.shape[2:4] if x.shape else None
    pads = _pads(a, node, in_hw, (kh, kw), stride, dilation)
    group = int(a.get("group", 1))
    bias = im.const(node.input[2], node, "bias") if len(node.input) > 2 and node.input[2] else None
    name = im.module_name(node, "conv")
    im.modules[name] = {"type": "Conv2D", "args": dict(
        filters=int(o), kernel_size=[int(kh), int(kw)], stride=list(stride), padding=pads, dilation=list(dilation),
        groups=group, use_bias=bias is not None, in_channels=int(cg * group))}
    im.state[f"{name}.w"] = w.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if bias is not None:
        im.state[f"{name}.b"] = bias
    return Held(im.emit("conv", [x.name], module=name), "cl", im.shape(node.output[0]))


def _conv_transpose(im, node, a):
    x = im.image(im.held(node.input[0]), node)
    w = im.const(node.input[1], node, "weight")  # (C, O/g, kh, kw)
    c, og, kh, kw = w.shape
    if "output_shape" in a:
        raise Unsupported(f"ConvTranspose {node.name!r} with output_shape (give pads and output_padding)")
    stride, dilation = tuple(a.get("strides", [1, 1])), tuple(a.get("dilations", [1, 1]))
    pads = _pads(a, node, None, (kh, kw), stride, dilation)
    group = int(a.get("group", 1))
    bias = im.const(node.input[2], node, "bias") if len(node.input) > 2 and node.input[2] else None
    name = im.module_name(node, "conv_transpose")
    im.modules[name] = {"type": "ConvTranspose2D", "args": dict(
        filters=int(og * group), kernel_size=[int(kh), int(kw)], stride=list(stride), padding=pads,
        output_padding=[int(p) for p in a.get("output_padding", [0, 0])], dilation=list(dilation), groups=group,
        use_bias=bias is not None, in_channels=int(c))}
    im.state[f"{name}.w"] = w.transpose(2, 3, 1, 0)  # (C, O/g, kh, kw) -> striate's (kh, kw, O/g, C)
    if bias is not None:
        im.state[f"{name}.b"] = bias
    return Held(im.emit("conv", [x.name], module=name), "cl", im.shape(node.output[0]))


def _batch_norm(im, node, a):
    if a.get("training_mode", 0):
        raise Unsupported(f"BatchNormalization {node.name!r} in training mode")
    x = im.plain(im.held(node.input[0]))
    if len(x.shape or ()) not in (2, 4):
        raise Unsupported(f"BatchNormalization {node.name!r} on a {len(x.shape or ())}-D value")
    gamma, beta, mean, var = (im.const(n, node, what) for n, what in
                              zip(node.input[1:5], ("scale", "bias", "mean", "var")))
    name = im.module_name(node, "bn")
    im.modules[name] = {"type": "BatchNorm", "args": dict(
        momentum=1.0 - float(a.get("momentum", 0.9)), eps=float(a.get("epsilon", 1e-5)), num_features=int(gamma.size))}
    im.state.update({f"{name}.gamma": gamma, f"{name}.beta": beta, f"{name}.running_mean": mean,
                     f"{name}.running_var": var})
    return Held(im.emit("bn", [x.name], module=name), x.tag, im.shape(node.output[0]))


def _pool(op):
    def load(im, node, a):
        x = im.image(im.held(node.input[0]), node)
        kernel = tuple(int(k) for k in a["kernel_shape"])
        stride = tuple(int(s) for s in a.get("strides", [1, 1]))
        dilation = tuple(int(d) for d in a.get("dilations", [1, 1]))
        in_hw = x.shape[2:4] if x.shape else None
        pads = _pads(a, node, in_hw, kernel, stride, dilation)
        attrs = {"kernel": list(kernel), "stride": list(stride), "dilation": list(dilation),
                 "ceil_mode": bool(a.get("ceil_mode", 0))}
        if op == "avg_pool":
            attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        return Held(im.emit(op, [x.name], pads=pads, **attrs), "cl", im.shape(node.output[0]))
    return load


def _global(op):
    def load(im, node, a):
        x = im.image(im.held(node.input[0]), node)
        return Held(im.emit(op, [x.name]), "cl", im.shape(node.output[0]))
    return load


def _lrn(im, node, a):
    x = im.image(im.held(node.input[0]), node)
    size = int(a["size"])
    if size % 2 == 0:
        raise Unsupported(f"LRN {node.name!r} with an even size {size} (its window is centred differently)")
    return Held(im.emit("lrn", [x.name], size=size, alpha=float(a.get("alpha", 1e-4)), beta=float(a.get("beta", 0.75)),
                        k=float(a.get("bias", 1.0))), "cl", im.shape(node.output[0]))


def _gemm(im, node, a):
    x = im.held(node.input[0])
    if a.get("transA", 0) or len(x.shape or ()) != 2:
        raise Unsupported(f"Gemm {node.name!r} other than (batch, features) @ weights")
    w = im.const(node.input[1], node, "weight")
    w = (w.T if a.get("transB", 0) else w) * np.float32(a.get("alpha", 1.0))  # (in, out)
    if isinstance(x.tag, tuple):
        w = w[np.argsort(x.tag[1])]  # ONNX feature j is striate's perm[j]: rows back to striate's order
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = im.const(node.input[2], node, "bias") * np.float32(a.get("beta", 1.0))
        bias = np.broadcast_to(c.reshape(-1) if c.size == w.shape[1] else c, (w.shape[1],)).astype(np.float32)
    name = im.module_name(node, "dense")
    im.modules[name] = {"type": "Dense", "args": dict(units=int(w.shape[1]), use_bias=bias is not None,
                                                      in_features=int(w.shape[0]))}
    im.state[f"{name}.w"] = np.ascontiguousarray(w, dtype=np.float32)
    if bias is not None:
        im.state[f"{name}.b"] = bias
    return Held(im.emit("dense", [x.name], module=name), "id", im.shape(node.output[0]))


def _unary(op, **names):
    def load(im, node, a):
        x = im.held(node.input[0])
        attrs = {k: float(a.get(onnx_name, default)) for k, (onnx_name, default) in names.items()}
        return Held(im.emit(op, [x.name], **attrs), x.tag, x.shape)
    return load


def _softmax(op):
    def load(im, node, a):
        x = im.held(node.input[0])
        rank = len(x.shape or ())
        axis = int(a.get("axis", -1)) % max(rank, 1)
        if x.tag == "cl":
            return Held(im.emit(op, [x.name], axis=_NHWC_AXIS[axis]), "cl", x.shape)
        if isinstance(x.tag, tuple) and axis == 1:
            return Held(im.emit(op, [x.name], axis=1), x.tag, x.shape)
        x = im.plain(x)
        return Held(im.emit(op, [x.name], axis=axis), "id", x.shape)
    return load


def _add(im, node, a):
    x, y = (im.held(n) if n in im.values else None for n in node.input)
    if x is None or y is None:
        raise Unsupported(f"Add {node.name!r} of a constant")
    if x.tag != y.tag and not (isinstance(x.tag, tuple) and isinstance(y.tag, tuple)
                               and np.array_equal(x.tag[1], y.tag[1])):
        x, y = im.plain(x), im.plain(y)
        if x.tag != y.tag:
            raise Unsupported(f"Add {node.name!r} of values in different layouts")
    return Held(im.emit("add", [x.name, y.name]), x.tag, im.shape(node.output[0]) or x.shape)


def _mul(im, node, a):
    held = [n for n in node.input if n in im.values]
    consts = [n for n in node.input if n in im.consts]
    if len(held) != 1 or len(consts) != 1 or im.consts[consts[0]].size != 1:
        raise Unsupported(f"Mul {node.name!r} other than by a scalar constant")
    x = im.held(held[0])
    return Held(im.emit("scale", [x.name], factor=float(im.consts[consts[0]].reshape(()))), x.tag, x.shape)


def _concat(im, node, a):
    xs = [im.plain(im.held(n)) for n in node.input]
    rank = len(xs[0].shape or ())
    axis = int(a["axis"]) % rank
    if {x.tag for x in xs} == {"cl"}:
        return Held(im.emit("concat", [x.name for x in xs], axis=_NHWC_AXIS[axis]), "cl", im.shape(node.output[0]))
    if {x.tag for x in xs} != {"id"}:
        raise Unsupported(f"Concat {node.name!r} of values in different layouts")
    return Held(im.emit("concat", [x.name for x in xs], axis=axis), "id", im.shape(node.output[0]))


def _flatten_from(im, node, x):
    if x.shape is None or len(x.shape) != 4 or None in x.shape[1:]:
        if x.shape is not None and len(x.shape) == 2:
            return x
        raise Unsupported(f"{node.op_type} {node.name!r}: needs a 4-D input of known size")
    out = im.emit("flatten", [x.name])
    if x.tag == "cl":
        _, c, h, w = x.shape
        tag = "id" if h * w == 1 else ("perm", flatten_perm(h, w, c))
        return Held(out, tag, (x.shape[0], c * h * w))
    return Held(out, "id", (x.shape[0], int(np.prod(x.shape[1:]))))


def _flatten(im, node, a):
    if int(a.get("axis", 1)) != 1:
        raise Unsupported(f"Flatten {node.name!r} with axis {a.get('axis')}")
    return _flatten_from(im, node, im.held(node.input[0]))


def _reshape(im, node, a):
    target = [int(s) for s in im.const(node.input[1], node, "shape").reshape(-1)]
    x = im.held(node.input[0])
    if len(target) == 2 and target[1] == -1 and target[0] in (0, -1, 1) or \
            (len(target) == 2 and x.shape and None not in x.shape[1:] and target[1] == int(np.prod(x.shape[1:]))):
        return _flatten_from(im, node, x)
    raise Unsupported(f"Reshape {node.name!r} to {target} (only flattening to (batch, features))")


def _alias(im, node, a):
    return im.held(node.input[0])


def _transpose(im, node, a):
    x = im.held(node.input[0])
    perm = tuple(int(p) for p in a.get("perm", ()))
    shape = im.shape(node.output[0])
    if x.tag == "id" and perm == (0, 3, 1, 2):
        return Held(x.name, "cl", shape)   # NHWC -> NCHW: striate already holds NHWC
    if x.tag == "cl" and perm == (0, 2, 3, 1):
        return Held(x.name, "id", shape)   # back to NHWC: the array striate holds
    raise Unsupported(f"Transpose {node.name!r} with perm {perm} (only the NHWC <-> NCHW boundary)")


def _gather(im, node, a):
    x = im.held(node.input[0])
    idx = im.const(node.input[1], node, "indices")
    if int(a.get("axis", 0)) != 1 or len(x.shape or ()) != 2 or idx.ndim != 1:
        raise Unsupported(f"Gather {node.name!r} other than of features (axis 1 of a 2-D value)")
    perm = (x.tag[1] if isinstance(x.tag, tuple) else np.arange(x.shape[1]))[idx.astype(np.int64)]
    if len(perm) == x.shape[1] and np.array_equal(perm, np.arange(len(perm))):
        return Held(x.name, "id", x.shape)
    if len(perm) == x.shape[1] and np.array_equal(np.sort(perm), np.arange(len(perm))):
        return Held(x.name, ("perm", perm), x.shape)
    return Held(im.emit("take", [x.name], indices=[int(i) for i in perm]), "id", (x.shape[0], len(perm)))


def _pad(im, node, a):
    x = im.held(node.input[0])
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = im.const(node.input[1], node, "pads").astype(int).reshape(-1)
    value = float(im.const(node.input[2], node, "constant value").reshape(())) \
        if len(node.input) > 2 and node.input[2] else 0.0
    rank = len(pads) // 2
    if mode != "constant" or value != 0.0 or pads.min() < 0 or x.tag not in ("cl", "id") or \
            (x.tag == "cl" and rank != 4):
        raise Unsupported(f"Pad {node.name!r} other than with zeros")
    pairs = [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]
    if x.tag == "cl":  # ONNX (n, c, h, w) -> striate (n, h, w, c)
        pairs = [pairs[0], pairs[2], pairs[3], pairs[1]]
    return Held(im.emit("pad", [x.name], pads=pairs), x.tag, im.shape(node.output[0]))


def _constant(im, node, a):
    onnx = im.onnx
    im.consts[node.output[0]] = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.asarray(
        next(iter(a.values())))
    return None


# ONNX op type -> importer (each for the operator's version in OPSET): the one table to extend
IMPORTERS = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm,
    "MaxPool": _pool("max_pool"),
    "AveragePool": _pool("avg_pool"),
    "GlobalAveragePool": _global("gap"),
    "GlobalMaxPool": _global("gmp"),
    "LRN": _lrn,
    "Gemm": _gemm,
    "Relu": _unary("relu"),
    "LeakyRelu": _unary("leaky_relu", alpha=("alpha", 0.01)),
    "Sigmoid": _unary("sigmoid"),
    "Tanh": _unary("tanh"),
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "Add": _add,
    "Mul": _mul,
    "Concat": _concat,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _alias,
    "Identity": _alias,
    "Transpose": _transpose,
    "Gather": _gather,
    "Pad": _pad,
    "Constant": _constant,
}


def _opset(model):
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def from_onnx(model):
    """Build the GraphModule of an ``onnx.ModelProto``; returns ``(module, meta)``."""
    onnx = _onnx()
    version = _opset(model)
    if version is None:
        raise ValueError("The ONNX model imports no default-domain opset: it has no standard operators.")
    if version != OPSET:
        try:
            model = onnx.version_converter.convert_version(model, OPSET)
        except Exception as e:  # noqa: BLE001  (the converter raises bare RuntimeErrors)
            raise ValueError(f"Cannot convert the ONNX model from opset {version} to {OPSET}: "
                             f"{' '.join(str(e).split())[:300]}") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (shapes are a help, not a must)
        pass
    unsupported = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in IMPORTERS:
            try:
                since = onnx.defs.get_schema(node.op_type, OPSET, node.domain).since_version
            except Exception:  # noqa: BLE001  (an operator onnx itself does not know)
                since = "?"
            unsupported.append(f"({node.op_type}, {since})")
    if unsupported:
        raise ValueError(
            f"Cannot import the ONNX model: unsupported (op_type, version) at opset {OPSET}: "
            f"{', '.join(dict.fromkeys(unsupported))}. Supported op types: {', '.join(sorted(IMPORTERS))}."
        )
    im = Importer(model, onnx)
    im.state = {}
    inputs = [i for i in model.graph.input if i.name not in im.consts]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise ValueError(f"Cannot import the ONNX model: striate models take one input; this graph has "
                         f"{len(inputs)} ({', '.join(i.name for i in inputs)}).")
    inp = inputs[0]
    shape = im.shapes.get(inp.name)
    users = [n for n in model.graph.node if inp.name in n.input]
    nhwc_given = bool(users) and all(n.op_type == "Transpose" and
                                     tuple(_attrs(n, onnx).get("perm", ())) == (0, 3, 1, 2) for n in users)
    if shape is not None and len(shape) == 4:
        tag = "id" if nhwc_given else "cl"
        hwc = shape[1:] if nhwc_given else (shape[2], shape[3], shape[1])
    else:
        tag, hwc = "id", (shape[1:] if shape else None)
    im.values[inp.name] = Held("x", tag, shape)
    problems = []
    for node in model.graph.node:
        try:
            result = IMPORTERS[node.op_type](im, node, _attrs(node, onnx))
        except Unsupported as e:
            problems.append(str(e))
            continue
        if result is not None:
            im.values[node.output[0]] = result
    if problems:
        raise ValueError("Cannot import the ONNX model: " + "; ".join(problems) + ".")
    out = im.plain(im.held(model.graph.output[0].name))
    spec = {"input": "x", "input_shape": None if hwc is None or None in hwc else [int(s) for s in hwc],
            "output": out.name, "modules": im.modules, "nodes": im.nodes}
    module = GraphModule(spec)
    module.load_state_dict({k: np.asarray(v, dtype=np.float32) for k, v in _attr_keys(im.state).items()})
    props = {p.key: p.value for p in model.metadata_props}
    meta = {}
    for key in ("class_names", "preprocess"):
        if key in props:
            try:
                meta[key] = json.loads(props[key])
            except ValueError:
                pass
    module.class_names = meta.get("class_names")
    module.preprocess = meta.get("preprocess")
    module.eval()
    return module, meta


def _attr_keys(state):
    from .graph import _attr_name
    return {f"{_attr_name(k.rsplit('.', 1)[0])}.{k.rsplit('.', 1)[1]}": v for k, v in state.items()}


def load(path):
    """Read the ONNX file at ``path`` into a striate model (a GraphModule, in evaluation mode).

    Supported operators: :data:`IMPORTERS` (Conv, BatchNormalization, MaxPool, AveragePool, LRN,
    Gemm, the activations, Add, Concat, GlobalAveragePool, Flatten, ...); anything else is listed
    in one ValueError. The model takes NHWC input; class names and preprocessing stored by
    ``st.onnx.export`` come back as ``model.class_names`` and ``model.preprocess``.

    Example::

        >>> model = st.onnx.load("lenet5.onnx")
        >>> model(np.zeros((1, 28, 28, 1), np.float32)).shape
        (1, 10)
    """
    onnx = _onnx()
    import os
    if not os.path.isfile(os.fspath(path)):
        raise FileNotFoundError(f"No ONNX file at {os.fspath(path)!r}.")
    try:
        model = onnx.load(os.fspath(path))
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends)
        raise ValueError(f"{os.fspath(path)} is not a readable ONNX file ({type(e).__name__}).") from None
    return from_onnx(model)[0]
