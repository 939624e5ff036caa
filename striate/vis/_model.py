"""What every map needs from a model: its layer names, forward hooks, one input image in its dtype.

Layer names are those of :func:`striate.summary` (``features.3``), so a name printed by
``striate summary`` works everywhere in :mod:`striate.vis`. Every map runs the model in evaluation
mode (batch-norm running statistics, no dropout) with its parameters frozen, so that ``backward``
computes only the gradients a map needs and leaves ``p.grad`` of the model untouched.
"""
from __future__ import annotations

import contextlib
import copy
import numbers

import numpy as np

from ..names import did_you_mean
from ..nn import Module
from ..tensor import Tensor


def check_model(model, owner: str) -> Module:
    if not isinstance(model, Module):
        raise TypeError(f"{owner}: model must be a striate.nn.Module. Received: {type(model).__name__}.")
    return model


def model_dtype(model: Module):
    """The floating dtype of the model's parameters (float32 unless cast with ``model.astype``)."""
    for p in model.parameters():
        if p.data.dtype.kind == "f":
            return p.data.dtype
    return np.dtype(np.float32)


def input_channels(model: Module) -> int | None:
    """Channels the first convolution expects (HWIO weight: ``cin / groups`` x groups), or None."""
    for m in model.modules():
        w = m._parameters.get("w")
        if w is not None and w.data.ndim == 4:
            return int(w.data.shape[2]) * int(getattr(m, "groups", 1) or 1)
    return None


def as_image(x, model: Module, owner: str, name: str = "x") -> np.ndarray:
    """One image as ``(1, h, w, c)`` in the model's dtype; ``(h, w)``, ``(h, w, c)`` or a batch of one.

    The image is taken as the model sees it (already preprocessed / standardised).
    """
    a = x.data if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: {name} must be a numeric image. Received: dtype {a.dtype}.")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"{owner}: {name} must be one image (h, w, c) or a batch of one (1, h, w, c). "
                         f"Received: {name}.shape={np.shape(x)}.")
    c = input_channels(model)
    if c is not None and a.shape[-1] != c:
        raise ValueError(f"{owner}: {name} must have {c} channel(s), as the model's first convolution takes. "
                         f"Received: {name}.shape={np.shape(x)}.")
    return np.ascontiguousarray(a, dtype=model_dtype(model))


def layer_rows(model: Module, input_shape) -> list:
    """The rows of ``st.summary(model, input_shape)``: name, type, output_shape (per image), rf, jump."""
    from ..summary import summary

    if model_dtype(model) != np.float32:
        # st.summary traces a float32 zero image; names and shapes do not depend on the dtype, so a
        # float32 copy answers for a float64 model (casting the model itself would round its weights)
        model = copy.deepcopy(model).astype(np.float32)
    return summary(model, tuple(int(s) for s in input_shape)).rows


def find_layer(model: Module, name, input_shape, owner: str, spatial: bool = False):
    """``(row, module)`` of the summary layer called ``name``; an unknown name lists the known ones.

    With ``spatial=True`` the layer must output feature maps (h, w, c), not a vector.
    """
    rows = layer_rows(model, input_shape)
    if not isinstance(name, str):
        raise TypeError(f"{owner}: layer must be a layer name (str) from striate summary. Received: {name!r}.")
    row = next((r for r in rows if r.name == name), None)
    if row is None:
        names = [r.name for r in rows]
        raise ValueError(f"{owner}: no layer named {name!r}.{did_you_mean(name, names, exact_spelling=True)} "
                         f"Layers: {', '.join(names)}.")
    if spatial and len(row.output_shape) != 3:
        maps = [r.name for r in rows if len(r.output_shape) == 3]
        raise ValueError(f"{owner}: layer {name!r} ({row.type}) outputs a vector of shape {tuple(row.output_shape)}, "
                         f"not feature maps (h, w, c). Layers with feature maps: {', '.join(maps) or 'none'}.")
    return row, named_modules(model)[name]


def named_modules(model: Module) -> dict:
    """Name -> module under the names of ``st.summary``, where the model itself (a row when it
    merges its children's outputs with an op of its own) is called by its class name."""
    modules = dict(model.named_modules())
    modules.setdefault(type(model).__name__, model)
    return modules


def check_target(target, num_classes: int, owner: str) -> int:
    if not isinstance(target, numbers.Integral) or isinstance(target, bool) or not 0 <= target < num_classes:
        raise ValueError(f"{owner}: target must be a class index in [0, {num_classes}). Received: target={target!r}.")
    return int(target)


def check_channel(channel, channels: int, layer: str, owner: str) -> int:
    if not isinstance(channel, numbers.Integral) or isinstance(channel, bool) or not 0 <= channel < channels:
        raise ValueError(f"{owner}: channel must be in [0, {channels}) for layer {layer!r} ({channels} channels). "
                         f"Received: channel={channel!r}.")
    return int(channel)


@contextlib.contextmanager
def inspecting(model: Module):
    """Evaluation mode with every parameter frozen; both put back afterwards."""
    was_training = model.training
    params = model.parameters()
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad = False
    try:
        yield model
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag
        model.train(was_training)


@contextlib.contextmanager
def recording(modules: dict, retain_grad: bool = False):
    """Forward hooks that keep each named module's output Tensor: ``with recording({...}) as outs``.

    With ``retain_grad`` the outputs keep their ``.grad`` after ``backward`` (Grad-CAM needs the
    gradient of the score with respect to a layer's feature maps).
    """
    outs, handles = {}, []

    def hook_for(name):
        def hook(module, inputs, out):
            if isinstance(out, Tensor):
                if retain_grad:
                    out.retain_grad()
                outs.setdefault(name, out)  # a module called twice: its first call
        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        yield outs
    finally:
        for h in handles:
            h.remove()
