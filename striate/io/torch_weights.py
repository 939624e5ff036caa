"""PyTorch weights into striate models: key names matched, layouts converted.

PyTorch (and torchvision) store, per layer, ``<module>.weight`` / ``.bias`` and for batch norm
``.running_mean`` / ``.running_var`` / ``.num_batches_tracked``. striate differs in names (``w``,
``b``, ``gamma``, ``beta``) and layouts:

* conv weights: OIHW ``(o, i // groups, kh, kw)`` -> HWIO ``(kh, kw, i // groups, o)`` (grouped
  convs keep their filter order: both number filters group by group);
* dense weights: ``(out, in)`` -> ``(in, out)``; for the first dense layer after a flatten of an
  ``(h, w, c)`` map the input rows are also reordered, from PyTorch's (c, h, w) flatten order to
  striate's (h, w, c);
* batch norm: weight/bias -> gamma/beta, running statistics as they are (striate's ``momentum``
  follows PyTorch's convention; Keras's momentum is 1 - this), ``num_batches_tracked`` skipped.

Layers are matched by name where striate's names equal PyTorch's module paths (``downsample`` is
striate's ``shortcut``), the rest by order inside their parent (torchvision's ``classifier.0/3/6``
are striate's ``classifier.1/4/7``: striate's Flatten is a layer), else by position over the whole
model; always checked for kind and shape. ``key_map`` overrides all. Nothing is changed in the
model unless every layer fits.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from ..nn import BatchNorm, Conv2D, Dense, Flatten
from ..nn.layout import flatten_perm
from ..optional import require

_KINDS = {Conv2D: "conv", Dense: "dense", BatchNorm: "batch_norm"}


def load_safetensors(path) -> dict:
    """Read a ``.safetensors`` file into ``{name: ndarray}`` with the safetensors package's NumPy API."""
    load_file = require("safetensors.numpy", "onnx", "reading .safetensors files").load_file
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No safetensors file at {path!r}.")
    try:
        return load_file(path)
    except Exception as e:  # noqa: BLE001  (safetensors raises its own SafetensorError)
        raise ValueError(f"{path} is not a readable .safetensors file ({' '.join(str(e).split())[:200]}).") from None


def _layers(model):
    """(name, module, kind) of every layer with parameters, in the model's order."""
    out = []
    for name, m in model.named_modules():
        kind = next((k for cls, k in _KINDS.items() if isinstance(m, cls)), None)
        if kind is not None and m.parameters():
            out.append((name, m, kind))
    return out


def _groups(state):
    """Torch keys grouped by module prefix, in order: prefix -> {suffix: array}."""
    groups = OrderedDict()
    for key, value in state.items():
        prefix, _, suffix = key.rpartition(".")
        if suffix == "num_batches_tracked":
            continue
        groups.setdefault(prefix, {})[suffix] = np.asarray(value)
    return groups


def _torch_kind(arrays):
    w = arrays.get("weight")
    if "running_mean" in arrays:
        return "batch_norm"
    if w is not None and w.ndim == 4:
        return "conv"
    if w is not None and w.ndim == 2:
        return "dense"
    return "unknown"


def _flatten_inputs(model, shape):
    """Dense layer name -> (h, w, c) of the feature map flattened into it (h * w > 1 only)."""
    shape = shape or getattr(model, "input_shape", None)
    if shape is None:
        if any(isinstance(m, Flatten) for m in model.modules()):
            raise ValueError("The model does not record its input shape, which is needed to reorder the rows of "
                             "a dense layer after a flatten: pass input_shape=(height, width, channels).")
        return {}
    from ..onnx.trace import trace  # the graph walk only: no onnx import
    passthrough = {"relu", "leaky_relu", "sigmoid", "tanh"}  # kinds of striate.onnx.trace.KINDS
    graph = trace(model, shape)
    found = {}
    for call in graph.calls:
        if call.op != "linear" or not isinstance(call.inputs[1], tuple) or call.inputs[1][0] != "param":
            continue
        src = call.inputs[0]
        while src is not None and not isinstance(src, tuple) and src.op in passthrough:
            src = src.inputs[0]
        if src is None or isinstance(src, tuple) or src.op != "reshape":
            continue
        prev = src.inputs[0]
        in_shape = graph.input_shape if isinstance(prev, tuple) else prev.out_shape
        if len(in_shape) == 4 and in_shape[1] * in_shape[2] > 1:
            found[call.inputs[1][1].rpartition(".")[0]] = tuple(in_shape[1:])
    return found


# torchvision module names that striate spells differently (ResNet's projection shortcut)
ALIASES = {"downsample": "shortcut"}


def _index_key(name):
    last = name.rpartition(".")[2]
    return (0, int(last), "") if last.isdigit() else (1, 0, last)


def _match(layers, groups, key_map):
    """Pairs (torch prefix, striate layer name): key_map; else by name (with ALIASES), the rest by
    order inside each parent (torchvision's classifier.0/3/6 -> striate's classifier.1/4/7); else by
    position over the whole model (for a state dict in the modules' registration order)."""
    names = {name: kind for name, _, kind in layers}
    if key_map is not None:
        pairs = []
        for prefix in groups:
            target = key_map(prefix) if callable(key_map) else key_map.get(prefix, prefix)
            if target not in names:
                raise KeyError(f"key_map sends {prefix!r} to {target!r}, which is not a layer of the model. "
                               f"Layers: {', '.join(list(names)[:8])}{', ...' if len(names) > 8 else ''}.")
            pairs.append((prefix, target))
        return pairs
    pairs, free = {}, dict(names)
    for prefix, arrays in groups.items():
        alias = ".".join(ALIASES.get(part, part) for part in prefix.split("."))
        if free.get(alias) == _torch_kind(arrays):
            pairs[prefix] = alias
            del free[alias]
    left = [p for p in groups if p not in pairs]
    by_parent = {}
    for p in left:
        by_parent.setdefault(".".join(ALIASES.get(q, q) for q in p.split("."))[:-len(p.rpartition(".")[2]) or None],
                             []).append(p)
    for parent, prefixes in by_parent.items():
        mine = sorted((n for n in free if n[:-len(n.rpartition(".")[2]) or None] == parent), key=_index_key)
        prefixes = sorted(prefixes, key=_index_key)
        if len(mine) == len(prefixes) and all(free[n] == _torch_kind(groups[p]) for n, p in zip(mine, prefixes)):
            for n, p in zip(mine, prefixes):
                pairs[p] = n
                del free[n]
    if len(pairs) == len(groups) and not free:
        return [(p, pairs[p]) for p in groups]
    if len(groups) == len(layers) and all(_torch_kind(a) == k for a, (_, _, k) in zip(groups.values(), layers)):
        return [(p, name) for p, (name, _, _) in zip(groups, layers)]
    unmatched = [p for p in groups if p not in pairs]
    raise ValueError(
        f"The state dict does not fit the model: the architectures differ. State-dict layers without a match: "
        f"{', '.join(unmatched[:5]) or 'none'}; model layers left without weights: "
        f"{', '.join(list(free)[:5]) or 'none'}. Pass key_map= to pair them."
    )


def convert_torch_state_dict(model, state_dict, key_map=None, input_shape=None) -> OrderedDict:
    """The striate state dict (name -> array) for ``model`` made from a PyTorch ``state_dict``.

    Args:
        model: a built striate model.
        state_dict: mapping of PyTorch keys to arrays (NumPy arrays, or anything ``np.asarray`` takes:
            torch tensors convert without striate importing torch).
        key_map: optional dict (or callable) from a PyTorch module prefix (``"layer1.0.conv1"``) to a
            striate layer name (``"layer1.0.conv1"``); default: by name, else by position.
        input_shape: (h, w, c) the model runs on, if it does not record one (zoo models do): the
            first dense layer after a flatten needs the flattened map's shape.

    Raises:
        ValueError / KeyError: naming the first layer that does not fit, with both shapes.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"state_dict must be a mapping of names to arrays. Received: {type(state_dict).__name__}.")
    layers = _layers(model)
    if not layers:
        raise ValueError("The model has no layers with weights yet: build it first (model.build(input_shape)).")
    groups = _groups(state_dict)
    modules = {name: (m, kind) for name, m, kind in layers}
    flat = _flatten_inputs(model, input_shape)
    out = OrderedDict(model.state_dict())
    for prefix, name in _match(layers, groups, key_map):
        arrays, (m, kind) = groups[prefix], modules[name]
        tkind = _torch_kind(arrays)
        if tkind != kind:
            raise ValueError(f"State-dict layer {prefix!r} ({tkind}) cannot load into {name!r} ({kind}): "
                             "the architectures differ here.")
        if kind == "conv":
            new = {"w": arrays["weight"].transpose(2, 3, 1, 0)}  # OIHW -> HWIO
        elif kind == "dense":
            w = arrays["weight"].T  # (out, in) -> (in, out)
            if name in flat:
                h, wd, c = flat[name]
                if w.shape[0] == h * wd * c:
                    # torch row j is feature (c, h, w)-flat j; striate's row i is (h, w, c)-flat i
                    w = w[np.argsort(flatten_perm(h, wd, c))]
            new = {"w": w}
        else:
            new = {"gamma": arrays.get("weight"), "beta": arrays.get("bias"),
                   "running_mean": arrays["running_mean"], "running_var": arrays["running_var"]}
        if kind != "batch_norm" and "bias" in arrays:
            new["b"] = arrays["bias"]
        for key, value in new.items():
            full = f"{name}.{key}" if name else key
            if value is None:
                continue
            if full not in out:
                raise ValueError(f"State-dict layer {prefix!r} has a {key} that {name!r} lacks "
                                 f"(e.g. a bias where the striate layer has use_bias=False).")
            if tuple(out[full].shape) != tuple(value.shape):
                raise ValueError(f"Shape mismatch loading {prefix!r} into {full!r}: striate expects "
                                 f"{tuple(out[full].shape)}, the state dict gives {tuple(value.shape)} after "
                                 "conversion (OIHW -> HWIO, (out, in) -> (in, out)).")
            out[full] = np.ascontiguousarray(value, dtype=out[full].dtype)
    return out


def load_torch_state_dict(model, state_dict, key_map=None, eps=None, momentum=None, input_shape=None):
    """Load a PyTorch ``state_dict`` (arrays) into the striate ``model``, converting layouts.

    Args:
        model: a built striate model (e.g. ``st.models.resnet18()``).
        state_dict: PyTorch names -> arrays, e.g. ``load_safetensors("resnet18.safetensors")``.
        key_map, input_shape: see :func:`convert_torch_state_dict`.
        eps, momentum: set on every BatchNorm layer when given (they are module attributes in
            PyTorch, not in its state dict; torchvision's are 1e-5 and 0.1, striate's defaults).

    Returns:
        The model.

    Example::

        >>> sd = st.io.load_safetensors("resnet18.safetensors")
        >>> st.io.load_torch_state_dict(st.models.resnet18(), sd)
    """
    state = convert_torch_state_dict(model, state_dict, key_map, input_shape)
    model.load_state_dict(state)
    for m in model.modules():
        if isinstance(m, BatchNorm):
            if eps is not None:
                m.eps = float(eps)
            if momentum is not None:
                m.momentum = float(momentum)
    return model


def load_pretrained(model, weights, key_map=None):
    """Load ``weights`` into ``model``: a ``.safetensors`` file, an ``.npz`` of PyTorch names, or a
    mapping of PyTorch names to arrays. What the zoo's ``weights=`` argument calls."""
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if path.endswith(".safetensors"):
            return load_torch_state_dict(model, load_safetensors(path), key_map)
        if path.endswith(".npz"):  # a plain .npz of PyTorch names (np.savez(path, **state_dict))
            with np.load(path, allow_pickle=False) as npz:
                if "__striate__" in npz.files:
                    raise ValueError(f"{path} is a striate weights file: load it with "
                                     "st.training.load_weights(path, model).")
                return load_torch_state_dict(model, {k: npz[k] for k in npz.files}, key_map)
        raise ValueError(f"weights must be a .safetensors file, a striate .npz or a state dict. Received: {path!r} "
                         "(PyTorch .pth files need torch to read: convert them once with "
                         "safetensors.torch.save_file(torch.load(path), 'weights.safetensors')).")
    return load_torch_state_dict(model, weights, key_map)
