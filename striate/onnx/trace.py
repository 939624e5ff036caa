"""Record a model's forward as a list of op calls, by walking the autograd graph of its output.

Every Tensor a :class:`~striate.tensor.Function` makes remembers that Function (``_ctx``), and every
Function its inputs (``parents``: the Functions that made them, leaf Tensors, or None for inputs
that need no gradient). So one forward with gradients on gives the whole computation; this module
walks it from the output back to the input and returns the calls in topological order. Nothing
process-wide is changed: for the length of the forward the model's own parameters are made to
require gradients (so frozen ones are recorded too) and each module gets a forward hook that names
the ops it produced (for readable node names) and keeps its output (the only place where the value
of a constant operand, such as the zero channels a shortcut concatenates, can be read back).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tensor import Function, Tensor, enable_grad

# op class name (striate.ops, striate.tensor) -> what the op computes: the one table to edit when an
# op class is renamed or moved; export, import checks and weight loading all go by these kinds
KINDS = {
    "Conv2dOp": "conv", "BatchNormOp": "batch_norm", "MaxPool2dOp": "max_pool", "AvgPool2dOp": "avg_pool",
    "LocalResponseNormOp": "lrn", "LinearOp": "linear", "ConcatOp": "concat",
    "ReLUOp": "relu", "LeakyReLUOp": "leaky_relu", "SigmoidOp": "sigmoid", "TanhOp": "tanh",
    "SoftmaxOp": "softmax", "LogSoftmaxOp": "log_softmax",
    "AddOp": "add", "AddReLUOp": "add_relu", "MulOp": "mul", "DivOp": "div", "SumOp": "sum", "MaxOp": "max", "ReshapeOp": "reshape",
    "GetItemOp": "getitem",
    "ConvTranspose2dOp": "conv_transpose", "UpsampleOp": "resize",
}


@dataclass
class Call:
    """One op of the traced forward.

    ``inputs`` holds, per operand, one of: another :class:`Call`, ``("input",)`` for the model's
    input, ``("param", name, array)`` for a parameter of the model, or ``("const", None)`` for an
    operand that depends on neither (its value is not recorded by the graph).
    """

    fn: Function
    inputs: list
    out_shape: tuple
    name: str = ""                       # the innermost module that returned this op's output
    output: np.ndarray | None = None     # the output array, where a module returned it
    users: list = field(default_factory=list)

    @property
    def op(self) -> str:
        """The op's kind (:data:`KINDS`), or its class name (less "Op") when it has none."""
        name = type(self.fn).__name__
        return KINDS.get(name, name[:-2] if name.endswith("Op") else name)


@dataclass
class Graph:
    calls: list          # topological order, the output's Call last
    output: Call
    input_shape: tuple   # with the batch axis
    reference: np.ndarray  # the model's output on the traced input (for checks)
    x: np.ndarray          # the traced input


def trace(model, input_shape, seed: int = 0) -> Graph:
    """Run ``model`` in evaluation mode on one random image of ``input_shape`` (no batch axis) and
    return its op calls. The model's training mode and parameters' ``requires_grad`` are restored."""
    shape = (1,) + tuple(int(s) for s in input_shape)
    x = Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), requires_grad=True)
    params = list(model.named_parameters())
    names = {id(p): name for name, p in params}
    flags = [p.requires_grad for _, p in params]
    outputs, owners, handles = {}, {}, []

    def hook(name):
        def record(module, args, out):
            if isinstance(out, Tensor) and out._ctx is not None:
                outputs.setdefault(id(out._ctx), out.data)
                owners.setdefault(id(out._ctx), name)  # innermost module first: it returns first
        return record

    was_training = model.training
    try:
        for _, p in params:
            p.requires_grad = True
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(hook(name or "model")))
        model.eval()
        with enable_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
        for (_, p), flag in zip(params, flags):
            p.requires_grad = flag
            p.grad = None
        model.train(was_training)
    if not isinstance(y, Tensor):
        raise ValueError(f"export needs a model that returns one Tensor. Received: {type(y).__name__}.")
    if y._ctx is None:
        raise ValueError("export: the model's output does not depend on its input (no op was recorded).")

    # iterative DFS from the output (deep ResNets would overflow recursion)
    order, seen, stack = [], set(), [(y._ctx, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.append((fn, True))
        for parent in reversed(fn.parents):
            if isinstance(parent, Function) and id(parent) not in seen:
                stack.append((parent, False))
    calls = {}
    for fn in order:
        inputs = []
        for parent in fn.parents:
            if isinstance(parent, Function):
                inputs.append(calls[id(parent)])
            elif parent is x:
                inputs.append(("input",))
            elif isinstance(parent, Tensor) and id(parent) in names:
                inputs.append(("param", names[id(parent)], parent.data))
            elif isinstance(parent, Tensor):
                inputs.append(("const", parent.data))  # a tensor made to require grad outside the model
            else:
                inputs.append(("const", None))
        call = Call(fn, inputs, tuple(fn.out_shape), owners.get(id(fn), ""), outputs.get(id(fn)))
        for i in inputs:
            if isinstance(i, Call):
                i.users.append(call)
        calls[id(fn)] = call
    ordered = [calls[id(fn)] for fn in order]
    return Graph(ordered, ordered[-1], shape, y.data, x.data)
