"""``st.summary(model, input_shape)``: one row per layer with shapes, parameters, cost and fields.

The model runs once on a zero image (batch 1, evaluation mode, ``no_grad``) while
:mod:`striate.summary.trace` records every module call and every op. A row is emitted for each call
of a leaf module (no children), and for a non-leaf module that owns parameters, runs
multiply-accumulating ops itself, or computes its output with an op of its own (an inception
module's concat; not a residual block, whose output is its last ReLU's). Rows come in the order the calls finished, which for a plain
chain is the order of the layers.

Columns:

* output shape, per image (no batch axis);
* parameters of that module (its own, counted once even if the module is called twice), and how
  many of them are trainable (the rest are frozen);
* multiply-accumulates per image: conv ``oh * ow * out * kh * kw * in / groups``, dense
  ``in * out``; biases, pooling, activations and normalisation count 0;
* activation memory: bytes of the output at float32, per image;
* receptive field (height, width) and jump (effective stride) of the output, relative to the
  input; ``None`` after flatten / global pooling / dense layers, where every unit can see the whole
  input (shown as ``global``).

Example::

    >>> s = st.summary(st.models.lenet5(), (28, 28, 1))
    >>> s.total_params
    61706
    >>> print(s)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from ..tensor import Tensor
from .trace import GLOBAL, UNKNOWN, format_shape, trace_forward


@dataclass
class LayerRow:
    """One row of a summary (also readable as a dict: ``row['params']``)."""

    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: int
    macs: int
    memory: int
    rf: tuple | None
    jump: tuple | None
    rf_note: str = ""   # 'global' (sees the whole input), 'unknown', or ''

    @property
    def frozen(self) -> int:
        return self.params - self.trainable

    def __getitem__(self, key):
        return getattr(self, key)

    def as_dict(self) -> dict:
        return asdict(self)


def _human(n: float, units=("", "K", "M", "G", "T"), base=1000.0) -> str:
    i = 0
    while abs(n) >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.0f}" if i == 0 else f"{n:.2f}{units[i]}"


def _bytes(n: int) -> str:
    return _human(n, (" B", " KiB", " MiB", " GiB", " TiB"), 1024.0) if n >= 1024 else f"{n} B"


def _pair(p) -> str:
    if p is None:
        return "-"
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


class ModelSummary:
    """The result of :func:`summary`: ``rows`` and totals; ``str()`` gives the table."""

    def __init__(self, model_name, input_shape, rows, total_params, trainable_params, extra_macs, notes):
        self.model_name = model_name
        self.input_shape = tuple(input_shape)
        self.rows: list[LayerRow] = rows
        self.total_params = int(total_params)
        self.trainable_params = int(trainable_params)
        self.frozen_params = self.total_params - self.trainable_params
        self.total_macs = int(sum(r.macs for r in rows) + extra_macs)
        self.total_memory = int(sum(r.memory for r in rows))
        self.notes = list(dict.fromkeys(notes))  # de-duplicated, in order

    def row(self, name: str) -> LayerRow:
        """The (first) row of the layer called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"No layer named {name!r}. Layers: {', '.join(r.name for r in self.rows)}.")

    def by_type(self) -> OrderedDict:
        """Layer type -> dict(count, params, memory, macs, params_share, memory_share)."""
        groups = OrderedDict()
        for r in self.rows:
            g = groups.setdefault(r.type, {"count": 0, "params": 0, "memory": 0, "macs": 0})
            g["count"] += 1
            g["params"] += r.params
            g["memory"] += r.memory
            g["macs"] += r.macs
        listed = sum(r.params for r in self.rows) or 1
        for g in groups.values():
            g["params_share"] = g["params"] / listed
            g["memory_share"] = g["memory"] / (self.total_memory or 1)
        return groups

    def __str__(self) -> str:
        header = ("Layer", "Type", "Output shape", "Params", "MACs", "Memory", "RF", "Jump")
        body = []
        for r in self.rows:
            mark = "*" if r.frozen else ""
            rf = r.rf_note if r.rf is None and r.rf_note else _pair(r.rf)
            body.append((r.name, r.type, format_shape(r.output_shape), f"{r.params:,}{mark}",
                         _human(r.macs) if r.macs else "-", _bytes(r.memory), rf, _pair(r.jump)))
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        right = {3, 4, 5, 6, 7}

        def fmt(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        rule = "=" * len(fmt(header))
        lines = [f'Model: "{self.model_name}"   input: {format_shape(self.input_shape)}', rule, fmt(header),
                 "-" * len(rule)]
        lines += [fmt(b) for b in body]
        lines.append(rule)
        lines.append(f"Total params: {self.total_params:,} ({_bytes(4 * self.total_params)} at float32)")
        lines.append(f"Trainable params: {self.trainable_params:,}")
        lines.append(f"Non-trainable (frozen) params: {self.frozen_params:,}" + ("   (* rows with frozen params)" if self.frozen_params else ""))
        lines.append(f"Multiply-accumulates per image: {self.total_macs:,} ({_human(self.total_macs)})")
        lines.append(f"Activation memory per image (outputs of the rows, float32): {_bytes(self.total_memory)}")
        lines.append("-" * len(rule))
        lines.append("Share per layer type:")
        groups = self.by_type()
        tw = max(len("Type"), *(len(t) for t in groups)) if groups else 4
        lines.append(f"  {'Type'.ljust(tw)}  {'Layers':>6}  {'Params':>14}  {'%':>6}  {'Memory':>11}  {'%':>6}")
        for t, g in groups.items():
            lines.append(f"  {t.ljust(tw)}  {g['count']:>6}  {g['params']:>14,}  {100 * g['params_share']:>5.1f}%  "
                         f"{_bytes(g['memory']):>11}  {100 * g['memory_share']:>5.1f}%")
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _tensors(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for t in out if isinstance(t, Tensor)]
    if isinstance(out, dict):
        return [t for t in out.values() if isinstance(t, Tensor)]
    return []


def layer_calls(trace):
    """The calls of a traced forward that are layers (one summary row each), with their output tensors.

    Every leaf module is a layer; a non-leaf module is one when it owns parameters, runs MACs
    itself, or makes its output with its own op (an inception module's concat), not by returning a
    child's output. Yields ``(call, outputs)`` in completion order (children before their parent).
    Each output tensor carries its receptive field in ``_rf`` when the trace tracked fields.
    """
    produced = set()
    for call in trace.calls:
        m = call.module
        outs = _tensors(call.output)
        merges = bool(outs) and not any(id(t) in produced for t in outs)
        produced.update(id(t) for t in outs)
        if not m._modules or list(m._parameters.values()) or call.macs or merges:
            yield call, outs


def summary(model, input_shape, name: str | None = None) -> ModelSummary:
    """Per-layer summary of ``model`` for one input image of ``input_shape``.

    Works for any :class:`striate.nn.Module`, residual and branching ones included; lazily-shaped
    layers are built by the forward it runs. Nothing is changed in the model (it is put back in
    its training mode; BN statistics are not updated).

    Args:
        model: the Module.
        input_shape: ``(height, width, channels)`` of one image, without the batch axis.
        name: name shown in the table and in error messages (default: the model's class name).

    Returns:
        :class:`ModelSummary` with ``rows`` (:class:`LayerRow`: name, type, output_shape, params,
        trainable, macs, memory, rf, jump), ``total_params``, ``trainable_params``, ``total_macs``,
        ``total_memory``, ``by_type()``; ``print(s)`` shows a Keras-like table.

    Raises:
        ValueError: when the input is too small (naming the layer where the size reaches zero) or
            does not fit the model (e.g. a channel mismatch), naming the layer.

    Limits of the receptive-field column: fields propagate exactly through conv and pooling ops
    and through ops that keep the spatial size (activations, normalisation, add, concat); where
    paths merge the union of their fields is taken; upsampling layers (transposed conv, upsample)
    take the union of the fields they read and divide the jump (a Fraction below one input pixel).
    After an op that collapses the spatial axes the field is ``global``; after an op that resizes
    in another way (unpooling) it is ``unknown`` (and a note says so).
    """
    from ..nn import Module  # lazy: keeps `import striate.summary` light

    if not isinstance(model, Module):
        raise TypeError(f"summary expects a striate.nn.Module. Received: {type(model).__name__}.")
    name = name or type(model).__name__
    trace = trace_forward(model, input_shape, name=name, track_fields=True)
    rows, listed = rows_of(trace)
    # MACs of ops run by non-leaf modules that got no row of their own still count in the total
    extra = trace.loose_macs + sum(c.macs for c in trace.calls if id(c) not in listed)
    return ModelSummary(name, tuple(int(s) for s in input_shape), rows, model.num_parameters(),
                        model.num_parameters(trainable_only=True), extra, trace.notes)


def rows_of(trace) -> tuple:
    """The summary's rows of a traced forward (:class:`striate.summary.trace.Trace` with fields),
    and the ids of the calls that got one: the one rule that names the layers everywhere."""
    rows, seen, listed = [], set(), set()
    for call, outs in layer_calls(trace):
        m = call.module
        own = list(m._parameters.values())
        listed.add(id(call))
        first = id(m) not in seen
        seen.add(id(m))
        params = sum(int(p.size) for p in own) if first else 0
        trainable = sum(int(p.size) for p in own if p.requires_grad) if first else 0
        shape = tuple(outs[0].shape[1:]) if outs else ()
        memory = sum(int(np.prod(t.shape[1:])) * 4 for t in outs)
        field = getattr(outs[0], "_rf", None) if outs else None
        rf = jump = None
        note = ""
        if isinstance(field, tuple):
            rf = (field[0].size, field[1].size)
            jump = (field[0].jump, field[1].jump)
        elif field in (GLOBAL, UNKNOWN):
            note = field
        rows.append(LayerRow(call.name or type(m).__name__, type(m).__name__, shape, params, trainable,
                             int(call.macs), memory, rf, jump, note))
    return rows, listed
