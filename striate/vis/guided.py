"""Guided backpropagation (Springenberg et al. 2015, sec. 3.4): the input gradient of a class score,
where every ReLU passes back only positive gradients, and only where its forward input was positive.

Plain backprop through a ReLU keeps ``g`` where the forward input ``x > 0``; the deconvnet keeps
``g`` where ``g > 0``; guided backprop keeps it where both hold: ``g * (x > 0) * (g > 0)``.

No global op is changed: the forward pass runs under an op observer (the summary tracer's
mechanism) that gives each ReLU op *of this graph* a guided backward, ``relu_backward(max(g, 0))``:
ReLU's own backward then masks with ``x > 0``. The model's ReLU layers get a forward hook for the
duration, so that none of them is fused with a neighbour (a ReLU fused into max pooling would see
the pooled gradient, not its own).
"""
from __future__ import annotations

import numpy as np

from ..nn.layers import ReLU
from ..ops.activation import AddReLUOp, ReLUOp
from ..ops.normalization import BatchNormOp
from ..ops.pooling import MaxPool2dOp
from ..tensor import Tensor, observe_ops
from ._model import as_image, check_model, inspecting
from .attribution import _logits, _resolve_target


def _guide(fn):
    """Give one op whose output is a ReLU's the guided backward: its own backward of ``max(g, 0)``."""
    own = fn.backward

    def backward(gy):
        return own(np.maximum(gy, 0))
    fn.backward = backward  # this op object only: the class (every other graph) is untouched


def _guiding_observer(fn, inputs, out):
    if isinstance(fn, (ReLUOp, AddReLUOp)) or (isinstance(fn, BatchNormOp) and fn.relu):
        _guide(fn)
    elif isinstance(fn, MaxPool2dOp) and fn.relu:
        raise ValueError("guided_backprop: the model calls F.relu_max_pool2d (a ReLU inside max pooling), whose "
                         "gradient cannot be guided per ReLU; use a ReLU layer and a MaxPool2D layer.")


def guided_backprop(model, x, target=None) -> np.ndarray:
    """Guided backpropagation of the class score ``logits[target]`` to the input image.

    Backprop through the network as usual, except that every ReLU passes back only the positive
    part of its gradient, and only where its forward input was positive (Springenberg, Dosovitskiy,
    Brox & Riedmiller 2015). The result shows sharp, positive evidence for the class in pixels.

    Args:
        model: a striate Module that outputs class scores. ReLUs may be layers, ``activation='relu'``
            or ``F.relu`` / ``F.add_relu`` calls in the model's forward (a ResNet works).
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: class index (default: the predicted class).

    Returns:
        ``(h, w, c)`` array in the model's dtype: the guided gradient.

    Example::

        >>> st.vis.guided_backprop(model, x_test[0], target=3).shape
        (28, 28, 1)
    """
    owner = "guided_backprop"
    check_model(model, owner)
    x = as_image(x, model, owner)
    target = _resolve_target(model, x, target, owner)
    handles = [m.register_forward_hook(lambda module, inputs, out: None)
               for m in model.modules() if isinstance(m, ReLU)]
    try:
        with inspecting(model):
            t = Tensor(x, requires_grad=True)
            with observe_ops(_guiding_observer):
                logits = _logits(model, t)
            logits[:, target].sum().backward()
    finally:
        for h in handles:
            h.remove()
    return t.grad[0]
