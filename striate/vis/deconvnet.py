"""Deconvnet projections (Zeiler & Fergus 2014, sec. 2.1): one unit's activation taken back to pixels.

The forward pass of a chain of layers is recorded (each layer's input and output, and the max
pooling switches). One unit of ``layer`` keeps its activation, every other value of that layer is set
to 0, and the signal goes back down the chain, layer by layer:

* max pooling  -> max unpooling with the forward pass's switches (:func:`F.max_unpool2d`);
* ReLU         -> rectification of the reconstruction (a ReLU on the signal going down);
* convolution  -> transposed convolution with the conv's own filters (:func:`F.conv_transpose2d`:
  the adjoint of the conv, its filters flipped), without the bias;
* batch norm (evaluation mode) -> multiplied by its scale ``gamma / sqrt(running_var + eps)``, the
  transpose of its linear part, as the conv's filters are transposed; its shift is dropped like a bias;
* local response normalisation, dropout, identity -> passed through unchanged (the deconvnet does
  not invert contrast normalisation).

Any other layer (a dense layer, average pooling, another activation) or a network that is not a
chain below ``layer`` (a residual sum, a concatenation, an op in the model's own ``forward``) is
refused with a ValueError naming the layer.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..nn.layers import BatchNorm, Conv2D, Dropout, Identity, LocalResponseNorm, MaxPool2D, ReLU
from ..ops.geometry import resolve_padding
from ..tensor import Tensor, no_grad
from ._model import as_image, check_channel, check_model, find_layer, inspecting

_PASS_THROUGH = (LocalResponseNorm, Dropout, Identity)


def _leaf_chain(model, x: np.ndarray, layer: str, owner: str):
    """The leaf layers the forward pass calls up to ``layer``, as ``[(name, module, input, output)]``,
    checked to be a chain: the first takes the image, each next one the previous one's output."""
    leaves = {name: m for name, m in model.named_modules() if name and not m._modules}
    calls, handles = [], []

    def hook_for(name):
        def hook(module, inputs, out):
            calls.append((name, module, inputs[0] if inputs else None, out))
        return hook

    t = Tensor(x)
    try:
        for name, m in leaves.items():
            handles.append(m.register_forward_hook(hook_for(name)))  # hooked layers are never fused
        with inspecting(model), no_grad():
            model(t)
    finally:
        for h in handles:
            h.remove()
    chain, previous = [], t
    for name, module, inp, out in calls:
        if inp is not previous:
            raise ValueError(f"{owner}: layer {name!r} ({type(module).__name__}) does not take the previous layer's "
                             "output (a residual sum, a concatenation or an op in the model's forward): the "
                             "deconvnet projects chains of layers only.")
        chain.append((name, module, inp, out))
        if name == layer:
            return chain
        previous = out
    raise ValueError(f"{owner}: layer {layer!r} is not one of the model's own layers (a leaf of st.summary) "
                     "called in its forward pass.")


def _unit_seed(out: np.ndarray, channel: int, unit, layer: str, owner: str):
    """``out`` (1, h, w, c) with every value set to 0 but one of ``channel``: ``unit`` (i, j), or the
    channel's strongest activation. Returns the seed and the unit."""
    h, w = out.shape[1:3]
    if unit is None:
        i, j = np.unravel_index(int(np.argmax(out[0, :, :, channel])), (h, w))
    else:
        ok = (isinstance(unit, (tuple, list)) and len(unit) == 2
              and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in unit))
        if not ok or not (0 <= unit[0] < h and 0 <= unit[1] < w):
            raise ValueError(f"{owner}: unit must be a position (i, j) in the {h} x {w} maps of layer {layer!r}. "
                             f"Received: unit={unit!r}.")
        i, j = unit
    seed = np.zeros_like(out)
    seed[0, i, j, channel] = out[0, i, j, channel]
    return seed, (int(i), int(j))


def _project_down(module, r: np.ndarray, inp: np.ndarray, name: str, owner: str) -> np.ndarray:
    """The deconvnet's step back through one layer: ``r`` at the layer's output -> at its input."""
    if isinstance(module, ReLU):
        return np.maximum(r, 0)
    if isinstance(module, MaxPool2D):
        _, switches = F.max_pool2d(inp, module.pool_size, module.stride, module.padding, module.dilation,
                                   module.ceil_mode, return_indices=True)
        return F.max_unpool2d(r, switches, module.pool_size, module.stride, output_size=inp.shape[1:3]).data
    if isinstance(module, Conv2D):
        if module.activation is not None:
            if getattr(module.activation, "__name__", "") != "relu":
                raise ValueError(f"{owner}: layer {name!r} (Conv2D) has an activation other than ReLU, "
                                 "which the deconvnet cannot project.")
            r = np.maximum(r, 0)
        kh, kw = module.kernel_size
        pads = resolve_padding(module.padding, inp.shape[1:3], (kh, kw), module.stride, module.dilation)
        (sh, sw), (dh, dw) = module.stride, module.dilation
        # the conv maps several input sizes to one output size; output_padding picks the input's
        full_h = (r.shape[1] - 1) * sh - pads[0] - pads[1] + dh * (kh - 1) + 1
        full_w = (r.shape[2] - 1) * sw - pads[2] - pads[3] + dw * (kw - 1) + 1
        extra = (inp.shape[1] - full_h, inp.shape[2] - full_w)
        return F.conv_transpose2d(r, module.w.data, None, module.stride, pads, extra, module.dilation,
                                  module.groups).data
    if isinstance(module, BatchNorm):
        scale, _ = module.eval_affine()
        return (r * scale).astype(r.dtype)
    if isinstance(module, _PASS_THROUGH):
        return r
    raise ValueError(f"{owner}: the deconvnet cannot project back through layer {name!r} "
                     f"({type(module).__name__}); it inverts Conv2D, ReLU, MaxPool2D and BatchNorm layers "
                     "(and passes LocalResponseNorm, Dropout and Identity through).")


def deconvnet(model, x, layer: str, channel: int, unit=None) -> np.ndarray:
    """One unit's activation projected back to pixels by a deconvnet (Zeiler & Fergus 2014, sec. 2.1).

    The unit ``(i, j)`` of ``channel`` at ``layer`` (default: the channel's strongest activation on
    ``x``) keeps its value and the rest of the layer is zeroed; the signal then goes back through
    every layer below: max unpooling with the forward pass's switches, rectification, transposed
    convolution with the conv's own (flipped) filters, batch norm's scale (see the module's text).
    The result shows the input pattern that excited the unit; it is non-zero only inside the
    unit's receptive field.

    Args:
        model: a striate Module whose layers up to ``layer`` form a chain (LeNet-5, AlexNet, ZFNet,
            VGG, the digits and MNIST CNNs).
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        layer: a ``st.summary`` layer name with feature maps (``features.3``).
        channel: the channel (feature map) of that layer.
        unit: ``(i, j)`` in the layer's maps, or None for the channel's strongest activation.

    Returns:
        ``(h, w, c)`` array in the model's dtype: the projection, in the input's pixels and channels.

    Example::

        >>> st.vis.deconvnet(model, x_test[0], "features.3", channel=5).shape
        (28, 28, 1)
    """
    owner = "deconvnet"
    check_model(model, owner)
    x = as_image(x, model, owner)
    row, _ = find_layer(model, layer, x.shape[1:], owner, spatial=True)
    channel = check_channel(channel, int(row.output_shape[-1]), layer, owner)
    chain = _leaf_chain(model, x, layer, owner)
    r, _ = _unit_seed(chain[-1][3].data, channel, unit, layer, owner)
    with no_grad():
        for name, module, inp, _ in reversed(chain):
            r = _project_down(module, r, inp.data, name, owner)
    return r[0].astype(x.dtype, copy=False)


def deconvnet_unit(model, x, layer: str, channel: int) -> tuple:
    """``(i, j)`` and value of the channel's strongest unit at ``layer``: the unit :func:`deconvnet`
    projects when ``unit`` is None."""
    owner = "deconvnet"
    x = as_image(x, check_model(model, owner), owner)
    row, _ = find_layer(model, layer, x.shape[1:], owner, spatial=True)
    channel = check_channel(channel, int(row.output_shape[-1]), layer, owner)
    out = _leaf_chain(model, x, layer, owner)[-1][3].data
    _, unit = _unit_seed(out, channel, None, layer, owner)
    return unit, float(out[0, unit[0], unit[1], channel])
