"""The backward pass explained: what backprop sends to every layer for one class, and what the
weights of one unit receive.

:func:`explain_gradient` runs the forward of :func:`striate.vis.explain_unit` with the graph kept,
then one ``backward`` from the class score. Every layer's output keeps its gradient
``d score / d output`` (the maps backprop sends to it). For the clicked unit of a conv or dense layer,
the gradient of its kernel follows from the chain rule on the numbers of the forward (Rumelhart,
Hinton & Williams 1986; the conv case is the correlation of the input with the output gradient):

    d score / d w[i, j, c, k] = sum over (r, s) of  g[r, s, k] * x[r * sh - pt + i * dh, s * sw - pl + j * dw, c]

where ``g`` is the gradient at the conv's output before its activation. The unit itself contributes
``g[r, s, k] * patch`` to that sum (``weight_grad_via_unit``): the weights whose product with the
input moved this unit's value most.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..ops.geometry import im2col, pad_nhwc
from ..tensor import Tensor
from ._model import as_image, check_model, check_target, inspecting
from .explain import ACTIVATIONS, _check_index, _check_layer, _record, explain_unit

OWNER = "explain_gradient"
SCORES = ("logit", "loss")


def _linear_output(rec, call):
    """The Tensor a Conv2D or Dense layer's own op made (before the layer's activation), or None."""
    made = rec.producer(call.output)
    if made is None:
        return None
    op, inputs = made
    if type(op).__name__ in ACTIVATIONS:
        made, z = rec.producer(inputs[0]), inputs[0]
        op = made[0] if made else None
    else:
        z = call.output
    return z if type(op).__name__ in ("Conv2dOp", "LinearOp") else None


def _conv_weight_grad(op, x, kernel, gz, k):
    """``d score / d w[..., k]`` (kh, kw, c // groups) and ``d score / d b[k]`` of a conv with kernel
    size ``kernel`` from its input ``x`` (1, h, w, c) and the gradient ``gz`` (1, oh, ow, o) at its output."""
    kh, kw = kernel
    cg, o = x.shape[-1] // op.groups, gz.shape[-1]
    g = k // (o // op.groups)
    xg = x[..., g * cg:(g + 1) * cg].astype(np.float64)                    # the group's channels
    cols = im2col(pad_nhwc(xg, op.pads), (kh, kw), op.stride, op.dilation, op.out_hw)   # (oh*ow, kh*kw*cg)
    gk = gz[0, :, :, k].astype(np.float64).reshape(-1)                      # (oh*ow,)
    return (gk @ cols).reshape(kh, kw, cg), float(gk.sum())                # (kh*kw*cg,) = (oh*ow,) @ (oh*ow, kh*kw*cg)


def _unit_weights(rec, call, z, unit, e):
    """The gradients of the clicked unit's weights (conv kernel or dense column) and bias."""
    op, inputs = rec.producer(z)
    gz = z.grad                                                             # d score / d pre-activation
    k = unit[-1]
    out = {"pre_activation_grad": float(gz[(0,) + unit])}
    if type(op).__name__ == "Conv2dOp":
        wg, bg = _conv_weight_grad(op, inputs[0].data, tuple(inputs[1].shape[:2]), gz, k)
        out["weight_grad"], out["weight"] = wg, e["kernel"]
        out["weight_grad_via_unit"] = out["pre_activation_grad"] * e["patch"]
        out["weight_channels"] = e["channels"]
    else:
        x = inputs[0].data[0].astype(np.float64)                            # (in,)
        out["weight_grad"] = out["weight_grad_via_unit"] = out["pre_activation_grad"] * x
        out["weight"] = e["weights"]
    out["bias_grad"] = bg if type(op).__name__ == "Conv2dOp" else out["pre_activation_grad"]
    # the largest shares through this unit first; where they tie (a unit whose gradient is zero) the
    # largest gradients of the whole kernel
    order = np.lexsort((-np.abs(out["weight_grad"]).ravel(), -np.abs(out["weight_grad_via_unit"]).ravel()))[:8]
    shape = out["weight_grad_via_unit"].shape
    out["top_weights"] = [{"index": tuple(int(v) for v in np.unravel_index(i, shape)),
                           "weight": float(out["weight"].ravel()[i]),
                           "grad_via_unit": float(out["weight_grad_via_unit"].ravel()[i]),
                           "grad": float(out["weight_grad"].ravel()[i])} for i in order]
    return out


def _bn_weights(rec, call, unit):
    """The gradients of the clicked unit's batch-norm scale and shift: ``d score / d gamma[k]`` =
    sum over the channel's positions of ``g * (x - mean) / sqrt(var + eps)``, ``d score / d beta[k]`` = sum of ``g``."""
    op, inputs = rec.producer(call.output)
    k = unit[-1]
    g = call.output.grad[..., k].astype(np.float64)                        # (1, h, w) or (1,)
    x = inputs[0].data[..., k].astype(np.float64)
    x_hat = (x - float(op.running_mean[k])) / np.sqrt(float(op.running_var[k]) + op.eps)
    return {"gamma_grad": float((g * x_hat).sum()), "beta_grad": float(g.sum()),
            "gamma": float(inputs[1].data[k]), "beta": float(inputs[2].data[k])}


class BackwardRecord:
    """One image's forward and backward pass for one class (see :func:`record_backward`).

    Attributes:
        forward: the :class:`striate.vis.ForwardRecord` of the image (the graph kept).
        target, score, score_value: the class, ``'logit'`` or ``'loss'``, and its value.
        gradients: layer name -> ``d score / d output`` of that layer (per image).
    """

    def __init__(self, forward, target, score, score_value, gradients):
        self.forward, self.target, self.score = forward, target, score
        self.score_value, self.gradients = score_value, gradients


def record_backward(model, x, target=None, score: str = "logit") -> BackwardRecord:
    """Run ``model`` forward and backward from one class score, keeping every layer's gradient and
    what :func:`explain_gradient` needs for the weights of any unit.

    Args:
        model: a striate Module that outputs class scores ``(1, classes)``.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: the class (default: the predicted one).
        score: ``'logit'`` (the class score before the softmax, as saliency maps use) or ``'loss'``
            (the cross-entropy loss with ``target`` as the label).

    Returns:
        A :class:`BackwardRecord`; ``explain_gradient(..., record=rec)`` then costs only the unit's
        own arithmetic.

    Example::

        >>> rec = record_backward(model, x, target=3)
        >>> rec.gradients["features.0"].shape
        (28, 28, 6)
    """
    check_model(model, OWNER)
    if score not in SCORES:
        raise ValueError(f"{OWNER}: score must be one of {', '.join(SCORES)}. Received: score={score!r}.")
    x = as_image(x, model, OWNER)
    with inspecting(model):
        rec = _record(model, x, OWNER, requires_grad=True)
        logits = rec.output
        if not isinstance(logits, Tensor) or logits.ndim != 2:
            raise ValueError(f"{OWNER}: the model must output class scores (1, classes). "
                             f"Received: output shape {getattr(logits, 'shape', None)}.")
        target = int(np.argmax(logits.data[0])) if target is None else check_target(target, logits.shape[1], OWNER)
        outputs = {name: c.output for name, c in rec.calls.items()
                   if isinstance(c.output, Tensor) and c.output.requires_grad}
        inner = [_linear_output(rec, c) for c in rec.calls.values()]       # a conv's sum before its activation
        for t in list(outputs.values()) + [z for z in inner if z is not None]:
            t.retain_grad()
        s = logits[0, target] if score == "logit" else F.cross_entropy(logits, np.array([target]))
        s.backward(retain_graph=True)  # the ops keep their settings (pads, groups) for the weights' gradients
    grads = {name: (t.grad[0] if t.grad is not None else np.zeros(t.shape[1:], t.dtype)) for name, t in outputs.items()}
    return BackwardRecord(rec, target, score, float(s.data), grads)


def explain_gradient(model, x, layer: str, index, target=None, score: str = "logit", top_k: int = 8,
                     record: BackwardRecord | None = None) -> dict:
    """What backprop sends to every layer for one class, and to the weights of one unit.

    Args:
        model: a striate Module that outputs class scores ``(1, classes)``.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)`` (may be None with ``record``).
        layer, index: the clicked unit, as in :func:`striate.vis.explain_unit`.
        target: the class (default: the predicted one).
        score: ``'logit'`` differentiates the class score before the softmax (as saliency maps
            do); ``'loss'`` the cross-entropy loss with ``target`` as the label.
        top_k: as in :func:`striate.vis.explain_unit` (the forward explanation in ``unit``).
        record: a :func:`record_backward` of this model, image, target and score, to skip both passes.

    Returns:
        A dict with ``target``, ``score`` (its name) and ``score_value``; ``gradients``: layer name ->
        ``d score / d output`` of that layer (same shape as its output, per image); ``layer``,
        ``index``, ``grad`` (``d score / d unit``) and ``unit`` (the forward explanation). For a
        Conv2D or Dense layer also ``pre_activation_grad``, ``weight`` and ``weight_grad`` (``d score /
        d w`` of the unit's kernel ``(kh, kw, c // groups)`` or dense column ``(in,)``, summed over
        every position the kernel visits), ``weight_grad_via_unit`` (the part that passes through
        this unit: its gradient times its input patch), ``bias_grad`` and ``top_weights`` (the
        largest ``|weight_grad_via_unit|`` first, then the largest ``|weight_grad|``). For a
        BatchNorm, ``gamma_grad`` and ``beta_grad`` of the unit's channel.

    Example::

        >>> g = explain_gradient(model, x, "features.0", (3, 4, 7), target=2)
        >>> g["weight_grad"].shape            # a 5x5 kernel over 1 input channel
        (5, 5, 1)
    """
    if record is None:
        record = record_backward(model, x, target, score)
    elif record.forward.model is not model:
        raise ValueError(f"{OWNER}: record was made for another model; make it with record_backward(model, x).")
    elif (target is not None and target != record.target) or score != record.score:
        raise ValueError(f"{OWNER}: record was made for target={record.target}, score={record.score!r}. "
                         f"Received: target={target!r}, score={score!r}.")
    rec = record.forward
    if x is not None and not np.array_equal(as_image(x, model, OWNER), rec.x):
        raise ValueError(f"{OWNER}: record was made for another image; pass x=None with the record.")
    call = _check_layer(rec, layer)
    unit = _check_index(index, tuple(call.output.shape[1:]), layer)
    e = explain_unit(model, None, layer, unit, top_k=top_k, record=rec)
    grads = record.gradients
    out = {"target": record.target, "score": record.score, "score_value": record.score_value, "gradients": grads,
           "layer": layer, "index": unit, "grad": float(grads[layer][unit]) if layer in grads else 0.0, "unit": e}
    z = _linear_output(rec, call)
    if z is not None and z.grad is not None:
        out.update(_unit_weights(rec, call, z, unit, e))
    elif e["kind"] == "batch_norm" and call.output.grad is not None:
        out.update(_bn_weights(rec, call, unit))
    return out
