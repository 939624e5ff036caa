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

For inference only (nothing records a gradient, the batch norm in evaluation mode), a Conv2D
followed by a BatchNorm, and a ReLU if one follows, is one conv whose output pass applies the batch
norm's fixed affine map and the ReLU (:func:`conv_bn_relu`, :mod:`striate.ops.epilogue`); a Conv2D,
an Identity (a folded batch norm) and a ReLU likewise. In training these steps run their layers as
the rules above do.
"""
from __future__ import annotations

from .. import functional as F
from ..tensor import is_grad_enabled
from .layers import BatchNorm, Conv2D, Identity, MaxPool2D, ReLU


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


class ConvBatchNorm:
    """The step for a Conv2D, a BatchNorm and (optionally) a ReLU: :func:`conv_bn_relu`."""

    def __init__(self, conv: Conv2D, bn: BatchNorm, relu: ReLU | None = None):
        self.conv, self.bn, self.relu = conv, bn, relu

    def __call__(self, x):
        return conv_bn_relu(self.conv, self.bn, self.relu, x)


# (types of neighbouring layers) -> the fused step, made from those layers; the longest match wins.
# (Conv2D, Identity, ReLU) is a conv whose batch norm was folded into it (st.nn.fold_batch_norm). A
# bare (Conv2D, ReLU) is left alone: in training LeNet-5's ReLU is better fused with its max pool.
RULES = {(Conv2D, BatchNorm, ReLU): ConvBatchNorm, (Conv2D, Identity, ReLU): ConvBatchNorm,
         (Conv2D, BatchNorm): ConvBatchNorm, (ReLU, MaxPool2D): ReLUMaxPool, (BatchNorm, ReLU): BatchNormReLU}


def _fusable(layer) -> bool:
    """Not a layer that must see its own call: one with hooks, or a forward replaced on the instance."""
    return not layer.has_hooks() and "forward" not in vars(layer)


def _inference_ready(conv, bn, relu) -> bool:
    """Whether conv, bn (a BatchNorm in evaluation mode, or an Identity) and relu (a ReLU or None)
    can run as one conv with an epilogue: nothing records a gradient, every layer is plain."""
    if is_grad_enabled() or type(conv) is not Conv2D or conv.w is None or conv.activation is not None:
        return False
    if type(bn) is BatchNorm:
        if bn.gamma is None or (bn.training and bn.trainable):
            return False
    elif type(bn) is not Identity or relu is None:
        return False
    return (relu is None or type(relu) is ReLU) and all(_fusable(m) for m in (conv, bn, relu) if m is not None)


def conv_bn_relu(conv, bn, relu, x):
    """``relu(bn(conv(x)))`` (``relu`` may be None; ``bn`` a BatchNorm or an Identity): for inference
    one conv that applies the batch norm's affine map and the ReLU as it writes its output; else the
    layers one after another (batch norm and ReLU as one op)."""
    if not _inference_ready(conv, bn, relu):
        y = conv(x)
        return call_pair(bn, relu, y) if relu is not None else bn(y)
    if type(bn) is BatchNorm:  # bn(z) = z * scale + shift with the running statistics
        scale, shift = bn.eval_affine()
        dtype = conv.w.dtype
        fused = (scale.astype(dtype), shift.astype(dtype), relu is not None)
    else:
        fused = (None, None, True)
    return F._conv2d(x, conv.w, conv.b, conv.stride, conv.padding, conv.dilation, conv.groups, fused)


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
        for size in (3, 2):  # the longest rule that matches
            group = layers[i:i + size]
            rule = RULES.get(tuple(type(m) for m in group)) if len(group) == size else None
            if rule is not None and all(_fusable(m) for m in group):
                steps.append(rule(*group))
                i += size
                break
        else:
            steps.append(layers[i])
            i += 1
    return steps
