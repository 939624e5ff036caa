"""The model behind the page: one forward that returns the probabilities and every layer's output.

:class:`ServedModel` puts a forward hook (``Module.register_forward_hook``, the public API) on
every module of the model. One forward then hands back the output of each *layer*: every leaf
module, and every container that computes its output with an op of its own (a residual block's
``add``) — the rows :func:`striate.summary` shows, under the same names (``features.0``).

Receptive fields: while a first forward runs on a zero image the hooks also carry, for each
tensor, its field along both axes (:class:`~striate.summary.receptive_field.ReceptiveField`:
size, jump, start), stepped through every convolution and pooling layer with
:func:`~striate.summary.receptive_field.rf_step` and the pads of
:func:`striate.ops.geometry.resolve_padding`. Unit ``(i, j)`` of a layer then sees input rows
``start_h + i * jump_h`` to ``start_h + i * jump_h + size_h - 1`` (and the same for columns); the
page draws that box when the mouse is over the unit. Layers that keep the spatial size keep the
field; where a container merges paths (a residual add) the union of its children's fields of
that size is taken (:func:`~striate.summary.receptive_field.rf_union`); after flatten, global
pooling or a dense layer every unit sees the whole input (``"global"``).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .. import functional as F
from ..nn import AvgPool2D, Conv2D, MaxPool2D, Module
from ..ops.geometry import resolve_padding
from ..summary.receptive_field import IDENTITY, rf_step, rf_union
from ..tensor import Tensor, no_grad
from . import render

MAX_MAPS = 64   # activation maps sent per layer: enough to see a layer's variety, keeps requests small
GLOBAL = "global"


def _tensor_of(out):
    """The first Tensor a module returned (modules return a Tensor; be lenient with tuples)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for t in out:
            if isinstance(t, Tensor):
                return t
    return None


def _window(module):
    """``(kernel, stride, dilation, padding)`` of a sliding-window layer, or None for other layers."""
    if isinstance(module, Conv2D):
        return module.kernel_size, module.stride, module.dilation, module.padding
    if isinstance(module, (MaxPool2D, AvgPool2D)):
        return module.pool_size, module.stride, (1, 1), module.padding
    return None


class _Call:
    __slots__ = ("name", "module", "input", "output")

    def __init__(self, name, module, inp, out):
        self.name, self.module, self.input, self.output = name, module, inp, out


class ServedModel:
    """A classifier ready for the page: preprocessing facts, layers, fields, and :meth:`run`.

    Args:
        model: a built :class:`striate.nn.Module` that returns class scores (logits) ``(n, k)``.
        input_shape: ``(height, width, channels)`` of one image.
        class_names: one name per output (default ``"0"``, ``"1"``, ...).
        mean, std, eps: per-channel standardisation applied to the [0, 1] image before the model
            (what ``striate train`` records in its weight files); None for none.
        name: the model's name for the page.
        source: one line saying where the weights came from.
        max_maps: activation maps sent per layer.

    Example::

        >>> served = ServedModel(st.models.lenet5(), (28, 28, 1))
        >>> out = served.run(np.zeros((28, 28, 1), np.float32))
        >>> [layer["name"] for layer in out["layers"]][:3]
        ['features.0', 'features.1', 'features.2']
    """

    def __init__(self, model, input_shape, class_names=None, mean=None, std=None, eps: float = 1e-7,
                 name: str | None = None, source: str = "", max_maps: int = MAX_MAPS):
        if not isinstance(model, Module):
            raise TypeError(f"ServedModel expects a striate.nn.Module. Received: {type(model).__name__}.")
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels). Received: {input_shape!r}.")
        self.model, self.input_shape = model, shape
        self.name = name or type(model).__name__
        self.source = source
        self.max_maps = int(max_maps)
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(-1)
        self.std = None if std is None else (np.asarray(std, np.float32).reshape(-1) + np.float32(eps))
        self._lock = threading.Lock()      # one forward at a time: the hooks record into one list
        self._calls: list[_Call] | None = None
        self._input = None
        self._names = {}
        for qualified, module in model.named_modules():
            if id(module) in self._names:
                continue  # a module registered twice is hooked once, under its first name
            self._names[id(module)] = qualified
            module.register_forward_hook(self._hook)
        model.eval()
        self.layers = self._describe()
        k = int(np.prod(self._output_shape))
        self.class_names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
        if len(self.class_names) != k:
            raise ValueError(f"the model has {k} outputs but {len(self.class_names)} class names were given.")

    # ----------------------------------------------------------------- the hooks
    def _hook(self, module, args, out):
        if self._calls is not None:
            inp = args[0] if args and isinstance(args[0], Tensor) else None
            self._calls.append(_Call(self._names.get(id(module), ""), module, inp, _tensor_of(out)))

    def _forward(self, x: np.ndarray):
        """Run the model on one ``(h, w, c)`` image; return its output and the recorded calls."""
        self._calls = []
        try:
            self._input = Tensor(x[None])
            with no_grad():
                out = self.model(self._input)
            return out, self._calls
        finally:
            self._calls = None

    def standardize(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return x
        return ((x - self.mean) / self.std).astype(np.float32)

    # ----------------------------------------------------------------- layers and their fields
    def _describe(self) -> list[dict]:
        """Which calls are layers, their names, shapes and receptive fields (one zero forward)."""
        x = np.zeros(self.input_shape, np.float32)
        with self._lock:
            out, calls = self._forward(x)
        self._output_shape = tuple(out.shape[1:])
        # id(tensor) -> (ReceptiveField h, w) | GLOBAL | None; `calls` holds every tensor, so ids stay unique
        fields = {}
        produced = set()
        first_input = self._input
        layers = []
        for index, call in enumerate(calls):
            y = call.output
            if y is None:
                continue
            field = self._field(call, calls[:index], fields, first_input)
            merges = id(y) not in produced
            produced.add(id(y))
            if id(y) not in fields:
                fields[id(y)] = field
            if call.module._modules and not merges:
                continue  # a container returning its last child's output: that child has the row
            layers.append({"call": index, "name": call.name or type(call.module).__name__,
                           "type": type(call.module).__name__, "shape": list(y.shape[1:]),
                           "field": self._field_json(fields.get(id(y)), y)})
        return layers

    def _field(self, call, earlier, fields, first_input):
        inp, y = call.input, call.output
        if y.ndim != 4:
            return GLOBAL
        if inp is first_input and inp is not None:
            f_in = (IDENTITY, IDENTITY)
        else:
            f_in = fields.get(id(inp)) if inp is not None else None
        if f_in is None and inp is not None and inp.ndim == 4:
            f_in = self._merged_field(call.name, inp, earlier, fields)
        window = _window(call.module)
        if window is not None and isinstance(f_in, tuple) and inp is not None and inp.ndim == 4:
            kernel, stride, dilation, padding = window
            try:
                pads = resolve_padding(padding, inp.shape[1:3], kernel, stride, dilation)
            except (TypeError, ValueError):
                return None
            return (rf_step(f_in[0], kernel[0], stride[0], dilation[0], pads[0]),
                    rf_step(f_in[1], kernel[1], stride[1], dilation[1], pads[2]))
        if call.module._modules:
            # a container whose output is its own op (residual add, concat): the union of the
            # fields its descendants produced at the output's spatial size
            prefix = call.name + "." if call.name else ""
            inner = [fields.get(id(c.output)) for c in earlier
                     if c.output is not None and c.name.startswith(prefix) and c.output.ndim == 4
                     and c.output.shape[1:3] == y.shape[1:3]]
            inner = [f for f in inner if isinstance(f, tuple)]
            if isinstance(f_in, tuple) and inp.ndim == 4 and inp.shape[1:3] == y.shape[1:3]:
                inner.append(f_in)
            if inner:
                return rf_union(f[0] for f in inner), rf_union(f[1] for f in inner)
            return None
        if isinstance(f_in, tuple) and inp.ndim == 4 and inp.shape[1:3] == y.shape[1:3]:
            return f_in  # activations, normalisation, dropout: the field is unchanged
        return GLOBAL if f_in == GLOBAL else None

    @staticmethod
    def _merged_field(name, inp, earlier, fields):
        """Field of an input made by an op outside every module (``x + shortcut`` inside a
        residual block): the union of the fields its sibling modules produced at its spatial size."""
        parent = name.rpartition(".")[0]
        prefix = parent + "." if parent else ""
        same = [c for c in earlier if c.output is not None and c.output.ndim == 4
                and c.output.shape[1:3] == inp.shape[1:3] and isinstance(fields.get(id(c.output)), tuple)]
        siblings = [fields[id(c.output)] for c in same if c.name.startswith(prefix)]
        if siblings:
            return rf_union(f[0] for f in siblings), rf_union(f[1] for f in siblings)
        return fields[id(same[-1].output)] if same else None

    @staticmethod
    def _field_json(field, y):
        if field == GLOBAL or y.ndim != 4:
            return GLOBAL
        if not isinstance(field, tuple):
            return None
        fh, fw = field
        return {"size": [fh.size, fw.size], "jump": [fh.jump, fw.jump], "start": [fh.start, fw.start]}

    # ----------------------------------------------------------------- one prediction
    def run(self, x: np.ndarray) -> dict:
        """Classify one image and render every layer's output.

        Args:
            x: the image as the model sees it before standardisation, float ``(h, w, c)`` in [0, 1].

        Returns:
            dict with ``probabilities``, ``classes``, ``top`` (best first), ``input`` (PNG data URL
            of ``x``), ``layers`` (``name``, ``type``, ``shape``, ``min``, ``max``, ``maps``,
            ``channels``, ``signed``, ``grid``, ``field``) and ``compute_ms``.
        """
        x = np.asarray(x, np.float32)
        if x.shape != self.input_shape:
            raise ValueError(f"the image must have the model's input shape {self.input_shape}. "
                             f"Received: {x.shape}.")
        t0 = time.perf_counter()
        with self._lock:
            out, calls = self._forward(self.standardize(x))
        probs = F.softmax(out).data[0].astype(np.float64)
        probs = probs / probs.sum()
        layers = []
        for layer in self.layers:
            y = calls[layer["call"]].output.data[0]
            entry = {k: layer[k] for k in ("name", "type", "shape", "field")}
            entry["min"], entry["max"] = float(y.min()), float(y.max())
            if y.ndim == 3:
                maps, lo, hi, signed = render.feature_maps(y, self.max_maps)
                entry.update(maps=maps, channels=int(y.shape[2]), grid=None)
            else:
                url, lo, hi, signed, grid = render.vector_map(y.reshape(-1))
                entry.update(maps=[url], channels=int(y.size), grid=list(grid))
            entry.update(scale=[lo, hi], signed=bool(signed))
            layers.append(entry)
        order = np.argsort(-probs, kind="stable")
        top = [{"class": self.class_names[i], "probability": float(probs[i])} for i in order[:5]]
        return {"probabilities": [float(p) for p in probs], "classes": list(self.class_names), "top": top,
                "input": render.input_image(x), "layers": layers,
                "compute_ms": round(1000 * (time.perf_counter() - t0), 2)}

    # ----------------------------------------------------------------- the model page
    def describe(self) -> dict:
        """What ``GET /api/model`` returns: the summary rows, fields and first-layer filters."""
        from ..summary import summary

        with self._lock:
            s = summary(self.model, self.input_shape, name=self.name)
        fields = {layer["name"]: layer["field"] for layer in self.layers}
        rows = [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape), "params": r.params,
                 "macs": r.macs, "rf": None if r.rf is None else list(r.rf),
                 "jump": None if r.jump is None else list(r.jump),
                 "field": fields.get(r.name, r.rf_note or None)} for r in s.rows]
        first = next((m for _, m in self.model.named_modules() if isinstance(m, Conv2D) and m.w is not None), None)
        info = {"name": self.name, "source": self.source, "input_shape": list(self.input_shape),
                "classes": list(self.class_names), "total_params": s.total_params,
                "trainable_params": s.trainable_params, "total_macs": s.total_macs, "rows": rows,
                "layers": [{k: layer[k] for k in ("name", "type", "shape", "field")} for layer in self.layers],
                "standardize": None if self.mean is None else {"mean": self.mean.tolist(),
                                                                "std": self.std.tolist()},
                "filters": None}
        if first is not None:
            w = first.w.data
            info["filters"] = {"layer": self._names.get(id(first), ""), "shape": list(w.shape),
                               "images": render.filters(w, self.max_maps)}
        return info
