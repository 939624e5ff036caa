"""Layer fusion: the one pass that runs some neighbouring layers of a Sequential as one op.

:func:`plan` turns a Sequential's layers into the steps its forward runs. A pair of neighbours
matching a rule of :data:`RULES` becomes one step computing both with the same values and
gradients; every other layer is a step of its own. The rules match exact layer types (a subclass
may do anything in its forward), and never layers with forward hooks: a hooked layer (the
summary's tracer, a user's probe) must see its own call.

One rule today: a ReLU followed by a MaxPool2D is :func:`striate.functional.relu_max_pool2d`
(ReLU and max pooling commute, so the ReLU touches only the pooled output).
"""
from __future__ import annotations

from .. import functional as F
from .layers import MaxPool2D, ReLU


def _relu_max_pool(relu, pool):
    return lambda x: F.relu_max_pool2d(x, pool.pool_size, pool.stride, pool.padding)


# (type of a layer, type of the next one) -> function of the two layers returning the fused step
RULES = {(ReLU, MaxPool2D): _relu_max_pool}


def plan(layers) -> list:
    """The steps that compute ``layers`` one after another: callables x -> y, each a layer or a
    fused pair of neighbours (see :data:`RULES`)."""
    steps, i = [], 0
    while i < len(layers):
        rule = RULES.get((type(layers[i]), type(layers[i + 1]))) if i + 1 < len(layers) else None
        if rule is not None and not (layers[i].has_hooks() or layers[i + 1].has_hooks()):
            steps.append(rule(layers[i], layers[i + 1]))
            i += 2
        else:
            steps.append(layers[i])
            i += 1
    return steps
