"""The model behind the page: one forward that returns the probabilities and every layer's output.

:class:`ServedModel` puts a forward hook (``Module.register_forward_hook``, the public API) on
every module of the model. One forward then hands back the output of each *layer*: the rows
:func:`striate.summary` shows, under the same names (``features.0``).

Layers and receptive fields come from the summary's own trace (:func:`striate.summary.trace.trace_forward`
with field tracking, and :func:`striate.summary.summary.layer_calls` for which calls are layers):
one zero forward that propagates each tensor's field along both axes
(:class:`~striate.summary.receptive_field.ReceptiveField`: size, jump, start) exactly through
every op — convolutions, pooling, strided slices, residual adds, concatenations. Unit ``(i, j)``
of a layer sees input rows ``start_h + i * jump_h`` to ``start_h + i * jump_h + size_h - 1`` (and
the same for columns); the page draws that box when the mouse is over the unit. After flatten,
global pooling or a dense layer every unit sees the whole input (``"global"``); where the
propagation has no rule the field is ``None`` ("not known").
"""
from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np

from .. import functional as F
from ..nn import Conv2D, Module
from ..summary.summary import layer_calls
from ..summary.trace import GLOBAL, trace_forward
from ..tensor import Tensor, no_grad
from . import render

MAX_MAPS = 64   # activation maps sent per layer: enough to see a layer's variety, keeps requests small


def _tensor_of(out):
    """The first Tensor a module returned (modules return a Tensor; be lenient with tuples)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for t in out:
            if isinstance(t, Tensor):
                return t
    return None



def _json_number(value):
    """A receptive-field number for JSON: Fractions (jumps below one input pixel) as floats."""
    return float(value) if isinstance(value, Fraction) else value

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
        """Which calls are layers, their names, shapes and receptive fields (one traced zero forward).

        The summary's trace runs the model while this model's own hooks record too, so the index
        of a layer's call in the trace is its index in every later forward's recorded calls.
        """
        with self._lock:
            self._calls = []
            try:
                trace = trace_forward(self.model, self.input_shape, name=self.name, track_fields=True)
                hooked = self._calls
            finally:
                self._calls = None
        assert [c.module for c in hooked] == [c.module for c in trace.calls]   # one hook call per traced call
        self._output_shape = tuple(trace.output.shape[1:])
        index = {id(call): i for i, call in enumerate(trace.calls)}
        layers = []
        for call, outs in layer_calls(trace):
            if not outs:
                continue
            y = outs[0]
            layers.append({"call": index[id(call)], "name": call.name or type(call.module).__name__,
                           "type": type(call.module).__name__, "shape": list(y.shape[1:]),
                           "field": self._field_json(getattr(y, "_rf", None), y)})
        return layers

    @staticmethod
    def _field_json(field, y):
        """A tensor's traced field as JSON: ``{"size", "jump", "start"}`` (height, width), "global" or None."""
        if field == GLOBAL or y.ndim != 4:
            return GLOBAL
        if not isinstance(field, tuple):
            return None   # unknown to the propagation rules (or not depending on the input)
        fh, fw = field
        # jump and start are Fractions after upsampling below the input's grid: JSON takes floats
        return {"size": [fh.size, fw.size], "jump": [_json_number(fh.jump), _json_number(fw.jump)],
                "start": [_json_number(fh.start), _json_number(fw.start)]}

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
                 "jump": None if r.jump is None else [_json_number(j) for j in r.jump],
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
