"""The model a file holds, rebuilt from the file alone: a weights file or checkpoint written by
``striate train`` / ``finetune`` (a zoo model by name and arguments), one written by ``striate import``
(an imported graph), or an ``.onnx`` file. Every command that reads a model reads it here."""
from __future__ import annotations

import os

from .checkpoint import load_checkpoint


def graph_meta(model, meta: dict) -> dict:
    """``meta`` describing an imported graph ``model`` (so the file rebuilds it without onnx)."""
    out = dict(meta)
    out["model"] = {"graph": model.current_spec()}
    if model.input_shape:
        out["input_shape"] = list(model.input_shape)
    return out


def load_model(path, allow_onnx: bool = False):
    """``(model, meta)``: the model a striate weights/checkpoint file (or, with ``allow_onnx``, an ``.onnx``
    file) describes, with its weights loaded, and the file's description (classes, input shape,
    preprocessing, data set).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a readable striate file.
        ValueError: a file that does not say which model it holds, or weights that do not fit it.
        ImportError: an ``.onnx`` file without the onnx package.

    Example::

        >>> model, meta = st.training.load_model("runs/digits-digits_cnn/weights.npz")
        >>> meta["class_names"][:3]
        ['0', '1', '2']
    """
    path = os.fspath(path)
    if allow_onnx and path.lower().endswith(".onnx"):
        from .. import onnx as st_onnx
        model = st_onnx.load(path)  # class names and preprocessing stored by export come back on the model
        meta = {k: getattr(model, k) for k in ("class_names", "preprocess") if getattr(model, k, None) is not None}
        return model, graph_meta(model, meta)
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt), dict(ckpt.meta)


def model_from_checkpoint(ckpt):
    """The model a loaded :class:`~striate.training.Checkpoint` describes (``meta["model"]``: a zoo name and
    its arguments, or an imported graph), its weights loaded; a ValueError if it describes none or the
    weights do not fit."""
    path = ckpt.path
    spec = ckpt.meta.get("model")
    if isinstance(spec, dict) and "graph" in spec:  # a graph read by `striate import` (or fine-tuned from one)
        from ..onnx import GraphModule
        model, what = GraphModule(spec["graph"]), "the recorded graph"
    elif isinstance(spec, dict) and "name" in spec:
        from .. import models
        from ..nn import is_layer_list, parse_layers

        args = dict(spec.get("args") or {})
        try:
            if is_layer_list(spec["name"]):   # a network written as a layer list (`striate train --model "conv 8 5 relu, ..."`)
                shape = args.get("input_shape")
                model = parse_layers(spec["name"], input_shape=tuple(shape) if shape else None)
            else:
                model = models.get(spec["name"], **args)
        except TypeError as e:
            raise ValueError(" ".join(str(e).split())) from None
        what = f"model {spec['name']!r}"
    else:
        raise ValueError(f"{path} does not record which model it holds (no meta['model']); it was not written by "
                         "`striate train`, `finetune` or `import`. Load it in Python with st.training.load_weights.")
    try:
        model.load_state_dict(ckpt.model_state)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: the weights do not fit {what}: {' '.join(str(e).split())}") from None
    if "graph" in spec:
        model.eval()
    return model
