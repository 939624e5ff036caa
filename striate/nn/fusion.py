"""Layer fusion: the one pass that runs some neighbouring layers of a Sequential as one op.

:func:`plan` turns a Sequential's layers into the steps its forward runs. A pair of neighbours
matching a rule of :data:`RULES` becomes one step computing both with the same values and
gradients; every other layer is a step of its own. The rules match exact layer types (a subclass
may do anything in its forward), and never layers with forward hooks: a hooked layer (the
summary's tracer, a user's probe) must see its own call.

The rules: a ReLU followed by a MaxPool2D is :func:`striate.functional.relu_max_pool2d` (ReLU and
max pooling commute, so the ReLU touches only the pooled output); a BatchNorm followed by a ReLU is
:func:`striate.functional.batch_norm_relu` (the ReLU in batch norm's own passes). Modules that call
their layers in their own forward (a ResNet block) fuse a pair with :func:`call_pair`, and a sum
followed by a ReLU layer with :func:`add_then`.
"""
from __future__ import annotations

from .. import functional as F
from .layers import BatchNorm, MaxPool2D, ReLU


class ReLUMaxPool:
    """The step for a ReLU followed by a MaxPool2D: one :func:`F.relu_max_pool2d` with the pooling
    layer's settings (read at each call)."""

    def __init__(self, relu: ReLU, pool: MaxPool2D):
        self.pool = pool

    def __call__(self, x):
        pool = self.pool
        return F.relu_max_pool2d(x, pool.pool_size, pool.stride, pool.padding, pool.dilation,
                                  pool.ceil_mode)


class BatchNormReLU:
    """The step for a BatchNorm followed by a ReLU: the batch norm layer's op with the ReLU fused."""

    def __init__(self, bn: BatchNorm, relu: ReLU):
        self.bn = bn

    def __call__(self, x):
        return self.bn.normalize(x, relu=True)


# (type of a layer, type of the next one) -> the fused step, made from the two layers
RULES = {(ReLU, MaxPool2D): ReLUMaxPool, (BatchNorm, ReLU): BatchNormReLU}


def _fusable(layer) -> bool:
    """Not a layer that must see its own call: one with hooks, or a forward replaced on the instance."""
    return not layer.has_hooks() and "forward" not in vars(layer)


def call_pair(first, second, x):
    """``second(first(x))``, as one fused step when the pair matches a rule of :data:`RULES`."""
    rule = RULES.get((type(first), type(second)))
    if rule is not None and _fusable(first) and _fusable(second):
        return rule(first, second)(x)
    return second(first(x))


def add_then(relu, a, b):
    """``relu(a + b)``: one :func:`F.add_relu` when ``relu`` is a plain, unhooked ReLU layer and a and
    b have one shape."""
    if type(relu) is ReLU and _fusable(relu) and a.shape == b.shape and a.dtype == b.dtype:
        return F.add_relu(a, b)
    return relu(a + b)


def plan(layers) -> list:
    """The steps that compute ``layers`` one after another: callables x -> y, each a layer or a
    fused pair of neighbours (see :data:`RULES`)."""
    steps, i = [], 0
    while i < len(layers):
        rule = RULES.get((type(layers[i]), type(layers[i + 1]))) if i + 1 < len(layers) else None
        if rule is not None and _fusable(layers[i]) and _fusable(layers[i + 1]):
            steps.append(rule(layers[i], layers[i + 1]))
            i += 2
        else:
            steps.append(layers[i])
            i += 1
    return steps
