"""Folding batch normalisation into the convolution before it, for inference.

In evaluation mode a BatchNorm is an affine map per channel with fixed numbers,
``bn(z) = gamma * (z - mean) / sqrt(var + eps) + beta``, and a convolution is linear in its weights,
so ``bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``
scaling the filters (the last, output axis of the HWIO weight). The folded network computes the same
logits with one pass over each activation fewer. Training is never changed: :func:`fold_batch_norm`
works on a copy and returns it in evaluation mode.
"""
from __future__ import annotations

import copy

import numpy as np

from ..tensor import Tensor, no_grad, observe_ops
from .layers import BatchNorm, Conv2D, Identity
from .module import Module, Parameter


def _conv_bn_pairs(model: Module, input_shape) -> list:
    """``(conv name, bn name)`` for every BatchNorm whose input is a Conv2D's output used by nothing else.

    Found by running the model once on one zero image with hooks on its convs and batch norms and an
    observer counting how many ops read each tensor: a conv output read by another op too (a
    residual sum, say) cannot take the BN's scale, and neither can a conv with its own activation or
    a layer called more than once.
    """
    made, fed, calls, reads = {}, {}, {}, []
    names = {id(m): name for name, m in model.named_modules()}

    def after(module, inputs, out):
        calls[id(module)] = calls.get(id(module), 0) + 1
        made[id(out)] = module
        if isinstance(module, BatchNorm):
            fed[id(module)] = inputs[0]

    handles = [m.register_forward_hook(after) for m in model.modules() if isinstance(m, (Conv2D, BatchNorm))]
    x = Tensor(np.zeros((1,) + tuple(input_shape), np.float32))
    try:
        with no_grad(), observe_ops(lambda fn, inputs, out: reads.extend(inputs)):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    read_count = {}
    for t in reads + [out]:   # the output counts as a reader: a returned conv output must stay as it is
        read_count[id(t)] = read_count.get(id(t), 0) + 1
    pairs = []
    for bn_id, z in fed.items():
        conv = made.get(id(z))
        if (isinstance(conv, Conv2D) and conv.activation is None and read_count.get(id(z)) == 1
                and calls[id(conv)] == calls[bn_id] == 1):
            pairs.append((names[id(conv)], names[bn_id]))
    return pairs


def _fold(conv: Conv2D, bn: BatchNorm) -> None:
    """Give ``conv`` the weights and bias of ``bn(conv(x))`` in evaluation mode (in place)."""
    w = conv.w.data
    scale, shift = bn.eval_affine()                                      # (filters,) each
    bias = conv.b.data if conv.b is not None else np.zeros_like(scale)
    conv.w = Parameter((w * scale).astype(w.dtype))                      # (kh, kw, c, filters) * (filters,)
    conv.b = Parameter((bias * scale + shift).astype(w.dtype))
    conv.use_bias = True


def fold_batch_norm(model: Module, input_shape=None) -> Module:
    """An evaluation-mode copy of ``model`` with each BatchNorm folded into the Conv2D before it.

    Every BatchNorm that reads a Conv2D's output (and nothing else reads that output) becomes an
    Identity, and the conv gets the scaled filters and a bias, so that the copy's logits equal the
    model's in evaluation mode within float rounding. ``model`` itself is not changed. The copy is
    for inference: training it would train a network without batch normalisation.

    Args:
        model: a built Module (its parameters exist).
        input_shape: ``(height, width, channels)`` of one input image; default ``model.input_shape``
            (set by the builders of ``st.models``).

    Returns:
        The folded copy, in evaluation mode. ``copy.folded`` lists the ``(conv, bn)`` name pairs.

    Shape:
        input and output as ``model``'s.

    Example::

        >>> model = st.models.resnet20()
        >>> fast = st.nn.fold_batch_norm(model)
        >>> len(fast.folded)
        19
    """
    if not isinstance(model, Module):
        raise TypeError(f"fold_batch_norm takes a striate Module. Received: {type(model).__name__}.")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None or len(tuple(input_shape)) != 3:
        raise ValueError("fold_batch_norm needs the (height, width, channels) of one input image: pass "
                         f"input_shape=(h, w, c). Received: input_shape={input_shape!r}.")
    folded = copy.deepcopy(model).eval()
    pairs = _conv_bn_pairs(folded, input_shape)
    modules = dict(folded.named_modules())
    for conv_name, bn_name in pairs:
        _fold(modules[conv_name], modules[bn_name])
        parent, _, leaf = bn_name.rpartition(".")
        # in place in the parent's table: setattr would move the layer to the end of a Sequential
        modules[parent]._modules[leaf] = Identity()
    folded.folded = pairs
    return folded
