"""Tensor and the define-by-run autograd engine.

A :class:`Tensor` wraps an ndarray. Every differentiable operation is a :class:`Function`: its
``forward`` works on raw arrays and saves what its ``backward`` needs; ``Function.apply`` wraps the
result in a Tensor that remembers the function (``_ctx``) and its inputs. ``Tensor.backward`` walks
that graph in reverse topological order and accumulates gradients (``+=``), so a tensor used twice
(a residual connection) receives the sum of both paths.

The primitives behind Tensor's operators (add, mul, matmul, sum, reshape, indexing, ...) live in
:mod:`striate.ops.primitives`, next to the CNN ops (conv, pooling, normalisation, losses): all are
Functions.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from .backend.threads import blas_scope

DEFAULT_DTYPE = np.float32

class _State(threading.local):
    """Per-thread engine state; class attributes are the defaults (a read never misses: these are
    read by every op)."""
    grad_enabled = True
    op_observer = None  # see observe_ops


_state = _State()


def is_grad_enabled() -> bool:
    return _state.grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context manager that disables graph recording: results keep nothing for backward.

    Use it for inference and for parameter updates.

    Example::

        with st.no_grad():
            probs = F.softmax(model(x))
    """
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Re-enable graph recording inside a :func:`no_grad` block."""
    previous = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def observe_ops(callback):
    """Call ``callback(fn, inputs, out)`` after every op applied in this thread inside the block
    (the summary's tracer). Other threads are not affected.
    """
    previous = _state.op_observer
    _state.op_observer = callback
    try:
        yield
    finally:
        _state.op_observer = previous


def get_array_module(*arrays):
    """The array module (NumPy, or a NumPy-compatible GPU library) that owns ``arrays``.

    Ops call this instead of naming ``numpy`` so that another array library with NumPy's API can be
    slotted in later without rewriting them.
    """
    for a in arrays:
        if a is None or type(a) is np.ndarray:  # the common case first: ops call this a lot
            continue
        module = type(a).__module__.split(".")[0]
        if module not in ("numpy", "builtins"):
            return __import__(module)
    return np


def _as_array(data, dtype=None):
    """Convert user data to an ndarray; Python floats/lists become float32 (the default dtype)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.generic):
        # a NumPy scalar (e.g. what ``a.sum()`` returns) keeps its dtype, as an array does
        arr = np.asarray(data)
    elif isinstance(data, np.ndarray) or get_array_module(data) is not np:
        arr = data
    else:
        arr = np.asarray(data)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(DEFAULT_DTYPE)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: array-like. NumPy arrays keep their dtype; Python numbers and lists become float32.
        requires_grad: if True, ``backward()`` computes ``.grad`` for this tensor.
        dtype: optional dtype to cast to.

    Example::

        >>> x = st.Tensor(np.ones((2, 3)), requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad.shape
        (2, 3)
    """

    # Let NumPy defer to Tensor's reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx = None  # the Function that produced this tensor (None for leaves)
        self.name = None
        self.requires_grad = requires_grad

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        if value and self.data.dtype.kind != "f":
            raise TypeError(
                "Only floating-point tensors can require gradients. "
                f"Received: dtype={self.data.dtype}. Convert with .astype(np.float32) first."
            )
        self._requires_grad = bool(value)

    # ----------------------------------------------------------------- array-like properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @staticmethod
    def _result(data, fn):
        """The Tensor an op returns: ``data`` made by Function ``fn`` (None when not recorded).
        The one factory of op outputs; skips ``__init__``'s conversions (the array is the op's)."""
        out = Tensor.__new__(Tensor)
        out.data, out.grad, out.name, out._ctx = data, None, None, fn
        out._requires_grad = fn is not None
        return out

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, prefix="Tensor(", separator=", ", threshold=20)
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self) -> Tensor:
        """A new leaf tensor sharing this tensor's data, cut from the graph."""
        return Tensor(self.data)

    def astype(self, dtype) -> Tensor:
        return _primitives.CastOp(dtype).apply(self)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` for this non-leaf tensor after ``backward()`` (leaves keep it always)."""
        if self._ctx is not None:
            self._ctx.retained = self
        return self

    def zero_grad(self):
        self.grad = None

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False):
        """Compute gradients of this tensor with respect to every leaf that requires them.

        Args:
            grad: gradient of some scalar with respect to this tensor, same shape. May be omitted
                only for a single-element tensor (a loss), where it defaults to 1.
            retain_graph: keep the graph so that ``backward`` can be called through it again.

        Gradients accumulate into ``.grad`` of leaf tensors (call ``zero_grad`` between steps).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() was called on a tensor that does not require grad: no input of the "
                "computation that made it had requires_grad=True (or it was made under no_grad())."
            )
        xp = get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise ValueError(
                    "backward() without a gradient needs a single-element tensor (a loss). "
                    f"Received: shape={self.shape}. Pass grad= with the same shape, or reduce first."
                )
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"grad must have the tensor's shape. Received: grad.shape={grad.shape}, "
                    f"tensor.shape={self.shape}."
                )

        fn = self._ctx
        if fn is None:  # a leaf: its gradient is the given one
            _accumulate(self, "grad", grad)
            return
        with blas_scope:  # BLAS on one thread while striate's threads run (backend.threads)
            # at once: the first GEMMs of a backward (the classifier's) run unsplit, and BLAS's
            # workers, left spinning by a multi-threaded GEMM, would slow the split ops after them
            blas_scope.pin()
            _run_backward(fn, grad, retain_graph)

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        return _primitives.AddOp().apply(self, _lift(other, self))

    def __radd__(self, other):
        return _primitives.AddOp().apply(_lift(other, self), self)

    def __sub__(self, other):
        return _primitives.SubOp().apply(self, _lift(other, self))

    def __rsub__(self, other):
        return _primitives.SubOp().apply(_lift(other, self), self)

    def __mul__(self, other):
        return _primitives.MulOp().apply(self, _lift(other, self))

    def __rmul__(self, other):
        return _primitives.MulOp().apply(_lift(other, self), self)

    def __truediv__(self, other):
        return _primitives.DivOp().apply(self, _lift(other, self))

    def __rtruediv__(self, other):
        return _primitives.DivOp().apply(_lift(other, self), self)

    def __neg__(self):
        return _primitives.NegOp().apply(self)

    def __pow__(self, exponent):
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"Tensor ** only supports a Python number exponent. Received: {type(exponent).__name__}.")
        return _primitives.PowOp(exponent).apply(self)

    def __matmul__(self, other):
        return _primitives.MatMulOp().apply(self, _lift(other, self))

    def __rmatmul__(self, other):
        return _primitives.MatMulOp().apply(_lift(other, self), self)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        return _primitives.GetItemOp(index).apply(self)

    # comparisons give plain boolean arrays: they are not differentiable
    def __gt__(self, other):
        return self.data > _raw(other)

    def __lt__(self, other):
        return self.data < _raw(other)

    def __ge__(self, other):
        return self.data >= _raw(other)

    def __le__(self, other):
        return self.data <= _raw(other)

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return _primitives.SumOp(axis, keepdims).apply(self)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        n = self.size if axis is None else int(np.prod([self.shape[a] for a in _axes(axis)]))
        return self.sum(axis, keepdims) * (1.0 / n)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _primitives.ReshapeOp(shape).apply(self)

    def transpose(self, *axes) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _primitives.TransposeOp(axes or None).apply(self)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def exp(self) -> Tensor:
        return _primitives.ExpOp().apply(self)

    def log(self) -> Tensor:
        return _primitives.LogOp().apply(self)

    def sqrt(self) -> Tensor:
        return self ** 0.5

    def abs(self) -> Tensor:
        return _primitives.AbsOp().apply(self)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return _primitives.MaxOp(axis, keepdims).apply(self)

    def argmax(self, axis=None):
        return self.data.argmax(axis=axis)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _lift(other, like: Tensor) -> Tensor:
    """Wrap a Python number or array as a constant Tensor of ``like``'s dtype (no silent upcast)."""
    if isinstance(other, Tensor):
        return other
    xp = get_array_module(like.data)
    return Tensor(xp.asarray(other, dtype=like.dtype))


def _axes(axis) -> tuple:
    return (axis,) if isinstance(axis, int) else tuple(axis)


def as_tensor(x) -> Tensor:
    """Return ``x`` if it is a Tensor, else wrap it (arrays keep their dtype)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _accumulate(holder, key, g):
    """``holder.key += g`` (or ``holder[key]`` for a dict), starting from nothing: gradients add up
    over every path that uses a value, and the first one is taken as it is, without a copy."""
    if isinstance(holder, dict):
        holder[key] = g if key not in holder else holder[key] + g
    else:
        old = getattr(holder, key)
        setattr(holder, key, g if old is None else old + g)


def _topological_order(fn):
    """The Functions above ``fn`` (itself included), each after every Function that made its inputs.

    Iterative depth-first search: deep ResNets would overflow Python's recursion limit. The graph
    links Functions to the Functions that made their inputs, never to activations: an array no
    backward saved is freed as soon as the forward moves on, as in PyTorch.
    """
    order, visited = [], set()
    stack = [(fn, False)]
    while stack:
        f, parents_done = stack.pop()
        if parents_done:  # every parent is already in `order`
            order.append(f)
            continue
        if id(f) in visited:
            continue
        visited.add(id(f))
        stack.append((f, True))  # come back to f once its parents are placed
        for parent in f.parents:
            if isinstance(parent, Function) and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _run_backward(fn, grad, retain_graph):
    """Walk the graph from ``fn`` (whose output has gradient ``grad``) back to the leaves."""
    grads = {id(fn): grad}  # output gradient of each Function, summed over the paths seen so far
    for f in reversed(_topological_order(fn)):  # every user of an output comes before its maker
        g = grads.pop(id(f), None)
        if g is None:
            continue  # nothing that needs a gradient depends on f
        if f.saved_freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (through "
                f"{type(f).__name__}); its saved arrays were freed by the first backward(). "
                "Pass retain_graph=True to the first call."
            )
        if f.retained is not None:  # a non-leaf tensor that asked to keep its .grad
            _accumulate(f.retained, "grad", g)
        input_grads = f.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, pg in zip(f.parents, input_grads):
            if pg is None or parent is None:
                continue
            leaf = isinstance(parent, Tensor)
            expected = parent.shape if leaf else parent.out_shape
            assert pg.shape == expected, (
                f"{type(f).__name__}.backward returned a gradient of shape {pg.shape} "
                f"for an input of shape {expected}")
            if leaf:
                _accumulate(parent, "grad", pg)
            else:
                _accumulate(grads, id(parent), pg)
        if not retain_graph:
            f.release()


class Function:
    """Base class of every differentiable primitive.

    Subclasses set their hyper-parameters in ``__init__`` and implement:

    * ``forward(*arrays) -> array``: compute the output from raw arrays, saving on ``self`` only what
      ``backward`` needs (check ``self.needs_input_grad`` to skip work nobody asked for);
    * ``backward(gy) -> tuple``: given the gradient of the output, return one gradient per input
      (``None`` where ``self.needs_input_grad`` is False).

    ``apply(*tensors)`` runs forward and links the result into the graph.
    """

    needs_input_grad: tuple = ()
    # per input: None (no gradient wanted), the Function that made it, or the leaf Tensor itself
    parents: tuple = ()
    out_shape: tuple = ()
    retained = None  # the output Tensor, if it called retain_grad()
    saved_freed = False

    def apply(self, *inputs) -> Tensor:
        # (runs for every op: kept lean, it is most of the cost of batch-1 inference)
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        flags = [t._requires_grad for t in tensors]
        record = True in flags and _state.grad_enabled
        self.needs_input_grad = tuple(flags) if record else (False,) * len(flags)
        y = self.forward(*[t.data for t in tensors])
        if record:
            self.parents = tuple((t._ctx or t) if t._requires_grad else None for t in tensors)
            self.out_shape = y.shape
        out = Tensor._result(y, self if record else None)
        observer = _state.op_observer
        if observer is not None:  # see observe_ops
            observer(self, inputs, out)
        return out

    def release(self):
        """Drop everything backward saved (called by ``backward`` unless ``retain_graph``)."""
        parents, out_shape = self.parents, self.out_shape
        self.__dict__.clear()
        self.parents, self.out_shape, self.saved_freed = parents, out_shape, True

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    # What the summary needs to know of an op (striate.summary.trace); ``inputs`` are the arrays or
    # Tensors given to ``apply``, ``out`` its result.
    def macs(self, inputs, out):
        """Multiply-accumulates per image (bias additions excluded), or None: not declared, which
        counts as 0 (element-wise ops) but is reported for a sliding-window op."""
        return None

    def window(self, inputs):
        """``(kernel, stride, dilation, pads)`` of a sliding-window op (pads: top, bottom, left,
        right), for receptive fields; None for every other op."""
        return None

    def reads(self, inputs, out):
        """For an op that enlarges the spatial size (transposed conv, upsampling, unpooling): per
        spatial axis ``(lo, hi, ratio)``, where output position p reads input positions
        ``lo[p]..hi[p]`` (int arrays over the output positions, -1 where none) and ``ratio``
        (a Fraction) is input size over output size, for receptive fields; None for every other op."""
        return None


# The primitives behind Tensor's operators (``a + b`` is ``AddOp().apply(a, b)``) are ops like any
# other, in striate/ops/primitives.py; imported last, once Tensor and Function exist.
from .ops import primitives as _primitives  # noqa: E402
