"""Run a model once on a zero batch while recording what every module and every op does.

:func:`trace_forward` is shared by :func:`striate.summary` (per-layer table) and by the model zoo's
builders (which only need its error reporting). While it runs it

* registers a forward pre-hook and a forward hook on each module (removed afterwards) to know
  which module is executing: the innermost one is charged with the multiply-accumulates of the ops
  it runs and named when an op fails ("at layer features.3 (MaxPool2D) ..."). The hooks act only
  in the tracing thread, so another thread may run the same model meanwhile;
* optionally observes every op applied in this thread (:func:`striate.tensor.observe_ops`) to
  count its MACs (:meth:`Function.macs`) and attach receptive field information (``tensor._rf``)
  to every tensor produced, so that fields propagate through *every* op — residual adds,
  concatenations, slicing — not only through modules.

Receptive field rules (per spatial axis; see :mod:`striate.summary.receptive_field`):

* sliding-window ops (conv, pooling: those whose :meth:`Function.window` gives their geometry): the
  exact recurrence with their kernel, stride, dilation and padding;
* ops whose 4-D output has the spatial size of their 4-D inputs (activations, BN, LRN, add, mul,
  concat along channels, dropout): the union of their inputs' fields (exact for residual adds);
* ops that enlarge the map (transposed conv, upsampling: those whose :meth:`Function.reads` tells
  which input positions each output position reads): the union of the fields read, with the jump
  divided by the factor (a Fraction below one input pixel);
* ops that collapse the spatial axes (flatten, global pooling, dense, reductions): ``GLOBAL`` —
  every output unit may see the whole input;
* inputs that do not come from the model's input (parameters, constants) carry no field and are
  ignored; anything else (an op that changes the spatial size in a way not listed above, e.g.
  unpooling or non-trivial indexing) gives ``UNKNOWN`` and a note.
"""
from __future__ import annotations

import threading

import numpy as np

from ..tensor import Tensor, no_grad, observe_ops
from ..validation import GeometryError
from .receptive_field import IDENTITY, rf_reads, rf_step, rf_union

GLOBAL = "global"    # the unit depends on the whole input (after flatten / global pooling / dense)
UNKNOWN = "unknown"  # an op the propagation rules do not model


class Call:
    """One call of one module during the traced forward."""

    __slots__ = ("name", "module", "output", "macs", "index", "inputs")

    def __init__(self, name, module, index, inputs=()):
        self.name, self.module, self.index = name, module, index
        self.inputs = inputs  # the positional arguments of the call
        self.output = None
        self.macs = 0


def format_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


# --------------------------------------------------------------------------- op-level rules
def _op_macs(fn, inputs, out, notes) -> int:
    """Multiply-accumulates of one op per image, as the op declares them (bias additions excluded)."""
    macs = fn.macs(inputs, out)
    if macs is None and fn.window(inputs) is not None:
        notes.append(f"{type(fn).__name__}: a sliding-window op that declares no MACs (counted as 0)")
    return int(macs or 0)


def _field(t):
    return getattr(t, "_rf", None) if isinstance(t, Tensor) else None


def _op_field(fn, inputs, out, notes):
    """Receptive field (a pair of ReceptiveField, GLOBAL, UNKNOWN or None) of an op's output."""
    fields = [_field(t) for t in inputs]
    known = [(t, f) for t, f in zip(inputs, fields) if f is not None]
    if not known:
        return None  # a constant: does not depend on the model's input
    values = [f for _, f in known]
    if UNKNOWN in values:
        return UNKNOWN
    if out.ndim != 4:
        return GLOBAL
    if GLOBAL in values:
        return GLOBAL  # e.g. squeeze-excitation: a global statistic scales every pixel
    window = fn.window(inputs)
    if window is not None:
        fh, fw = fields[0]
        (kh, kw), (sh, sw), (dh, dw), pads = window
        return rf_step(fh, kh, sh, dh, pads[0]), rf_step(fw, kw, sw, dw, pads[2])
    reads = fn.reads(inputs, out) if len(known) == 1 and known[0][0] is inputs[0] else None
    if reads is not None:
        (fh, fw), ((lo_h, hi_h, r_h), (lo_w, hi_w, r_w)) = fields[0], reads
        return rf_reads(fh, lo_h, hi_h, r_h), rf_reads(fw, lo_w, hi_w, r_w)
    if all(isinstance(t, Tensor) and t.ndim == 4 and t.shape[1:3] == out.shape[1:3] for t, _ in known):
        if len(values) == 1:
            return values[0]
        if len({(f[0].jump, f[1].jump) for f in values}) > 1:
            notes.append(f"{type(fn).__name__}: operands with different jumps; field approximated")
        return rf_union(f[0] for f in values), rf_union(f[1] for f in values)
    notes.append(f"receptive field unknown after op {type(fn).__name__} "
                 f"(changes the spatial size in a way the rules do not model)")
    return UNKNOWN


# --------------------------------------------------------------------------- the tracer
class Trace:
    """Context manager that instruments ``model`` (see the module docstring)."""

    def __init__(self, model, track_fields: bool = False):
        self.model = model
        self.track_fields = track_fields
        self.calls: list[Call] = []       # in order of completion
        self.stack: list[Call] = []       # modules currently executing, innermost last
        self.failed_at: Call | None = None
        self.loose_macs = 0               # MACs of ops run outside every module
        self.notes: list[str] = []
        self._handles = []
        self._observing = None

    def _before(self, name):
        def hook(module, inputs):
            if threading.get_ident() == self.thread:
                self.stack.append(Call(name, module, len(self.calls), inputs))
        return hook

    def _after(self, module, inputs, out):
        if threading.get_ident() == self.thread and self.stack and self.stack[-1].module is module:
            call = self.stack.pop()
            call.output = out
            self.calls.append(call)

    def _on_op(self, fn, inputs, out):
        macs = _op_macs(fn, inputs, out, self.notes)
        if self.stack:
            self.stack[-1].macs += macs
        else:
            self.loose_macs += macs
        out._rf = _op_field(fn, inputs, out, self.notes)

    def __enter__(self):
        self.thread = threading.get_ident()
        seen = set()
        for name, module in self.model.named_modules():
            if id(module) in seen:
                continue  # a module registered under two names is traced under the first
            seen.add(id(module))
            self._handles += [module.register_forward_pre_hook(self._before(name)),
                              module.register_forward_hook(self._after)]
        if self.track_fields:
            self._observing = observe_ops(self._on_op)
            self._observing.__enter__()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None and self.stack and self.failed_at is None:
            self.failed_at = self.stack[-1]  # the innermost module running when the error came
        if self._observing is not None:
            self._observing.__exit__(None, None, None)
            self._observing = None
        for handle in self._handles:
            handle.remove()
        self._handles, self.stack = [], []
        return False


def _resolve_shape(input_shape, what="input_shape"):
    shape = tuple(input_shape)
    if len(shape) not in (1, 2, 3) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(
            f"{what} must be (height, width, channels) of positive ints, without the batch axis. "
            f"Received: {what}={input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def trace_forward(model, input_shape, name: str | None = None, track_fields: bool = False,
                  dtype=np.float32) -> Trace:
    """Run ``model`` once on a zero batch of one ``input_shape`` image (evaluation mode, no_grad).

    This also builds lazily-shaped layers, like :meth:`Module.build`. A ValueError raised inside
    the forward (a size that reaches zero, a channel mismatch) is re-raised naming the input, the
    model and the innermost layer that failed.
    """
    shape = _resolve_shape(input_shape)
    name = name or type(model).__name__
    x = Tensor(np.zeros((1,) + shape, dtype=dtype))
    if track_fields and len(shape) == 3:
        x._rf = (IDENTITY, IDENTITY)
    was_training = model.training
    model.eval()
    trace = Trace(model, track_fields)
    try:
        with no_grad(), trace:
            out = model(x)
    except ValueError as e:
        where = trace.failed_at
        layer = f"layer {where.name or '(model)'} ({type(where.module).__name__})" if where else "its forward"
        if isinstance(e, GeometryError):
            raise ValueError(
                f"input {format_shape(shape)} is too small for {name}: at {layer} the output size would be "
                f"zero or negative. Use a larger input (its native size) or fewer downsampling layers. "
                f"Details: {e}"
            ) from e
        raise ValueError(f"{name} failed on input {format_shape(shape)} at {layer}: {e}") from e
    finally:
        model.train(was_training)
    trace.output = out
    return trace
