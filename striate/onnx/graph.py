"""GraphModule: a striate model described by a JSON-able list of nodes (what ``st.onnx.load`` builds).

An imported network is not one of the zoo's classes, so it is kept as data: a spec naming its
layers (Conv2D, Dense, BatchNorm, with their arguments) and the ops between them. The spec is
stored in the ``meta`` of the weights file ``striate import`` writes, so the model can be rebuilt
from that file alone, without the onnx package. Activations are NHWC, as everywhere in striate.

Spec::

    {"input": "x", "input_shape": [h, w, c], "output": "y",
     "modules": {"conv1": {"type": "Conv2D", "args": {...}}, ...},
     "nodes": [{"op": "conv", "inputs": ["x"], "output": "t1", "module": "conv1"},
               {"op": "max_pool", "inputs": ["t1"], "output": "t2", "kernel": [3, 3], ...}, ...]}
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..nn import BatchNorm, Conv2D, ConvTranspose2D, Dense, Module
from ..tensor import Tensor, get_array_module

LAYERS = {"Conv2D": Conv2D, "ConvTranspose2D": ConvTranspose2D, "Dense": Dense, "BatchNorm": BatchNorm}


def _pad(x, pads):
    """Zero padding of an NHWC tensor: ``pads`` = (before, after) per axis, as zero blocks
    concatenated on each side (differentiable through F.concat)."""
    xp = get_array_module(x.data)
    for axis, (before, after) in enumerate(pads):
        parts = []
        for size in (before, after):
            shape = list(x.shape)
            shape[axis] = size
            parts.append(xp.zeros(shape, x.dtype) if size else None)
        pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
        if len(pieces) > 1:
            x = F.concat(pieces, axis=axis)
    return x


class ZeroPad(Module):
    """Zero padding as a layer of its own: the exporter reads the zero blocks back from its output."""

    def __init__(self, pads):
        super().__init__()
        self.pads = [tuple(p) for p in pads]

    def forward(self, x):
        return _pad(x, self.pads)


def run_op(node, args, module):
    op = node["op"]
    if op in ("conv", "dense", "bn", "pad"):
        return module(args[0])
    x = args[0]
    if op in ("max_pool", "avg_pool"):
        window = (tuple(node["kernel"]), tuple(node["stride"]), tuple(node["pads"]))
        dilation, ceil = tuple(node.get("dilation", (1, 1))), node.get("ceil_mode", False)
        if op == "max_pool":
            return F.max_pool2d(x, *window, dilation=dilation, ceil_mode=ceil)
        return F.avg_pool2d(x, *window, ceil_mode=ceil, count_include_pad=node.get("count_include_pad", True),
                            dilation=dilation)
    if op == "gap":
        return x.mean(axis=(1, 2), keepdims=True)
    if op == "gmp":
        return x.max(axis=(1, 2), keepdims=True)
    if op == "lrn":
        return F.local_response_norm(x, node["size"], node["alpha"], node["beta"], node["k"])
    if op == "relu":
        return F.relu(x)
    if op == "leaky_relu":
        return F.leaky_relu(x, node["alpha"])
    if op == "sigmoid":
        return F.sigmoid(x)
    if op == "tanh":
        return F.tanh(x)
    if op == "softmax":
        return F.softmax(x, node["axis"])
    if op == "log_softmax":
        return F.log_softmax(x, node["axis"])
    if op == "add":
        return args[0] + args[1]
    if op == "concat":
        return F.concat(list(args), axis=node["axis"])
    if op == "flatten":
        return F.flatten(x)
    if op == "take":
        return x[:, np.asarray(node["indices"], dtype=np.int64)]
    if op == "scale":
        return x * node["factor"]
    if op == "transpose":
        return x.transpose(tuple(node["perm"]))
    if op == "identity":
        return x
    raise ValueError(f"GraphModule: unknown op {op!r} in the spec.")


def _attr_name(name: str) -> str:
    return name.replace(".", "_").replace("/", "_") or "layer"


class GraphModule(Module):
    """A model given by a node list (see the module docstring); built from ``spec`` at once.

    Args:
        spec: the graph description; ``st.onnx.load`` makes one from an ONNX file.

    Shape: input ``(n, h, w, c)`` as ``spec["input_shape"]``; output as the graph's.
    """

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        for name, m in spec["modules"].items():
            kind = LAYERS.get(m["type"])
            if kind is None:
                raise ValueError(f"GraphModule: unknown layer type {m['type']!r}; known: {', '.join(LAYERS)}.")
            args = dict(m["args"])
            if "padding" in args and isinstance(args["padding"], list):
                args["padding"] = tuple(args["padding"])
            for key in ("kernel_size", "stride", "dilation", "output_padding"):
                if key in args:
                    args[key] = tuple(args[key])
            if kind is not BatchNorm:  # the weights are loaded next: skip drawing random ones
                args.setdefault("kernel_initializer", "zeros")
            self.add_module(_attr_name(name), kind(**args))
        for i, node in enumerate(spec["nodes"]):
            if node["op"] == "pad":
                node.setdefault("module", f"pad{i}")
                self.add_module(_attr_name(node["module"]), ZeroPad(node["pads"]))
        self.input_shape = tuple(spec.get("input_shape") or ()) or None

    def forward(self, x):
        values = {self.spec["input"]: x if isinstance(x, Tensor) else Tensor(x)}
        for node in self.spec["nodes"]:
            module = self._modules[_attr_name(node["module"])] if node.get("module") else None
            values[node["output"]] = run_op(node, [values[i] for i in node["inputs"]], module)
        return values[self.spec["output"]]

    def current_spec(self) -> dict:
        """The spec with each layer's arguments read from the live layers (after ``replace_head``)."""
        spec = dict(self.spec, modules={})
        for name, m in self.spec["modules"].items():
            live, args = self._modules[_attr_name(name)], dict(m["args"])
            if isinstance(live, Dense):
                args.update(units=live.units, in_features=live.in_features, use_bias=live.use_bias)
            elif isinstance(live, Conv2D):
                args.update(filters=live.filters, in_channels=live.in_channels, use_bias=live.use_bias)
            spec["modules"][name] = {"type": type(live).__name__, "args": args}
        return spec

    def extra_repr(self):
        return f"{len(self.spec['nodes'])} nodes"
