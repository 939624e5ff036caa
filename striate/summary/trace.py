"""Run a model once on a zero batch while recording what every module and every op does.

:func:`trace_forward` is shared by :func:`striate.summary` (per-layer table) and by the model zoo's
builders (which only need its error reporting). While it runs it

* wraps each module's ``forward`` (an instance attribute, removed afterwards) to know which module
  is executing: the innermost one is charged with the multiply-accumulates of the ops it runs and
  named when an op fails ("at layer features.3 (MaxPool2D) ...");
* optionally replaces :meth:`striate.tensor.Function.apply` by a wrapper that attaches receptive
  field information (``tensor._rf``) to every tensor produced, so that fields propagate through
  *every* op — residual adds, concatenations, slicing — not only through modules. The original
  ``apply`` is restored in ``finally``. This is global for the duration of the forward: do not run
  other models in other threads at the same time.

Receptive field rules (per spatial axis; see :mod:`striate.summary.receptive_field`):

* conv / pooling ops: the exact recurrence with their kernel, stride, dilation and padding;
* ops whose 4-D output has the spatial size of their 4-D inputs (activations, BN, LRN, add, mul,
  concat along channels, dropout): the union of their inputs' fields (exact for residual adds);
* ops that collapse the spatial axes (flatten, global pooling, dense, reductions): ``GLOBAL`` —
  every output unit may see the whole input;
* inputs that do not come from the model's input (parameters, constants) carry no field and are
  ignored; anything else (an op that changes the spatial size in a way not listed above, e.g.
  resize or non-trivial indexing) gives ``UNKNOWN`` and a note.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import Function, Tensor, no_grad
from .receptive_field import IDENTITY, rf_step, rf_union

GLOBAL = "global"    # the unit depends on the whole input (after flatten / global pooling / dense)
UNKNOWN = "unknown"  # an op the propagation rules do not model


class Call:
    """One call of one module during the traced forward."""

    __slots__ = ("name", "module", "output", "macs", "index")

    def __init__(self, name, module, index):
        self.name, self.module, self.index = name, module, index
        self.output = None
        self.macs = 0


def format_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


# --------------------------------------------------------------------------- op-level rules
def _op_macs(fn, inputs, out) -> int:
    """Multiply-accumulates of one op per image (bias additions excluded)."""
    n = out.shape[0] if out.ndim else 1
    if isinstance(fn, ops.Conv2dOp):
        kh, kw, cg, _ = inputs[1].shape  # HWIO, cg = in_channels / groups
        # per image: oh * ow * o * kh * kw * cin / groups
        return int(np.prod(out.shape[1:])) * kh * kw * cg
    if isinstance(fn, ops.LinearOp):
        return int(inputs[1].shape[0] * inputs[1].shape[1])  # in * out
    if type(fn).__name__ == "MatMul":
        return int(np.prod(out.shape)) * inputs[0].shape[-1] // max(n, 1)
    return 0


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
    if isinstance(fn, (ops.Conv2dOp, ops.MaxPool2dOp, ops.AvgPool2dOp)):
        fh, fw = fields[0]
        if isinstance(fn, ops.Conv2dOp):
            (kh, kw), (dh, dw) = inputs[1].shape[:2], fn.dilation
        else:
            (kh, kw), (dh, dw) = fn.kernel, getattr(fn, "dilation", (1, 1))
        (sh, sw), pads = fn.stride, fn.pads
        return rf_step(fh, kh, sh, dh, pads[0]), rf_step(fw, kw, sw, dw, pads[2])
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
        self._saved = []
        self._apply = None

    def _wrap(self, name, module):
        original = module.forward

        def forward(*args, **kwargs):
            call = Call(name, module, len(self.calls))
            self.stack.append(call)
            try:
                out = original(*args, **kwargs)
            except Exception:
                if self.failed_at is None:
                    self.failed_at = call  # the innermost module sees the error first
                raise
            finally:
                self.stack.pop()
            call.output = out
            self.calls.append(call)
            return out

        return forward

    def __enter__(self):
        for name, module in self.model.named_modules():
            if "forward" in module.__dict__:
                continue  # already wrapped (a module registered under two names)
            self._saved.append(module)
            object.__setattr__(module, "forward", self._wrap(name, module))
        if self.track_fields:
            self._apply = Function.apply
            original, trace = Function.apply, self

            def apply(fn, *inputs):
                out = original(fn, *inputs)
                macs = _op_macs(fn, inputs, out)
                if trace.stack:
                    trace.stack[-1].macs += macs
                else:
                    trace.loose_macs += macs
                out._rf = _op_field(fn, inputs, out, trace.notes)
                return out

            Function.apply = apply
        return self

    def __exit__(self, *exc):
        if self._apply is not None:
            Function.apply = self._apply
            self._apply = None
        for module in self._saved:
            module.__dict__.pop("forward", None)
        self._saved = []
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
        if "zero or negative" in str(e):
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
