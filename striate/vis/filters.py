"""Pictures of learned filters and of feature maps (Krizhevsky et al. 2012, fig. 3; Zeiler & Fergus 2014)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ._model import as_image, check_model, find_layer, inspecting, layer_rows, named_modules, recording
from .grid import normalize, tile

FILTER_MODES = ("auto", "rgb", "slices", "mean")


def _weight_array(weight, owner="filter_grid") -> np.ndarray:
    from ..nn import Module

    if isinstance(weight, Module):  # a Conv2D layer: its HWIO kernel
        w = weight._parameters.get("w")
        if w is None or w.data.ndim != 4:
            raise ValueError(f"{owner}: {type(weight).__name__} has no 4-D conv kernel 'w'; give a Conv2D layer "
                             "(built: it must have run once) or its (kh, kw, in, out) weight.")
        weight = w
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.ndim != 4:
        raise ValueError(f"{owner}: weight must be a conv kernel (kh, kw, in_channels, out_channels) (HWIO). "
                         f"Received: shape {w.shape}.")
    return w


def filter_grid(weight, mode: str = "auto", ncols: int | None = None, border: int = 1,
                max_tiles: int = 1024) -> np.ndarray:
    """One image of a conv layer's filters, each tile scaled to [0, 1] on its own.

    Args:
        weight: a conv kernel ``(kh, kw, in, out)`` (HWIO; array or Tensor) or a built Conv2D layer.
        mode: ``'rgb'``: one colour tile per filter (needs 3 input channels: the AlexNet conv1
            picture); ``'slices'``: one grayscale tile per (input, output) slice, a row per input
            channel and a column per filter; ``'mean'``: one tile per filter, averaged over its
            input channels; ``'auto'``: ``'rgb'`` for 3 input channels, else ``'slices'`` when
            there are at most ``max_tiles`` slices, else ``'mean'``.
        ncols: columns of the grid (default: ``out`` for slices of several input channels, else
            as square as possible).
        border: width of the white frame around each tile, in pixels.
        max_tiles: the most slices ``'auto'`` draws one by one.

    Returns:
        ``(H, W, 3)`` for ``'rgb'``, else ``(H, W)``; values in [0, 1], borders 1.0.

    Shape:
        tiles are ``kh x kw``; ``H = rows * (kh + border) + border``, likewise ``W``.

    Example::

        >>> filter_grid(np.random.randn(11, 11, 3, 96)).shape      # AlexNet conv1, 10 x 10 tiles
        (121, 121, 3)
    """
    w = _weight_array(weight).astype(np.float64)
    kh, kw, cin, cout = w.shape
    if mode not in FILTER_MODES:
        raise ValueError(f"filter_grid: mode must be one of {', '.join(FILTER_MODES)}. Received: mode={mode!r}.")
    if mode == "auto":
        mode = "rgb" if cin == 3 else ("slices" if cin * cout <= max_tiles else "mean")
    if mode == "rgb":
        if cin != 3:
            raise ValueError(f"filter_grid: mode='rgb' needs filters with 3 input channels. Received: {cin} "
                             "(use mode='slices' or 'mean').")
        tiles = normalize(w.transpose(3, 0, 1, 2), axis=(1, 2, 3))           # (out, kh, kw, 3)
        return tile(tiles, ncols, border)
    if mode == "mean":
        tiles = normalize(w.mean(axis=2).transpose(2, 0, 1), axis=(1, 2))     # (out, kh, kw)
        return tile(tiles, ncols, border)
    # slices: row i = input channel i, column j = filter j (one input channel: a square grid)
    tiles = normalize(w.transpose(2, 3, 0, 1).reshape(cin * cout, kh, kw), axis=(1, 2))
    return tile(tiles, ncols or (cout if cin > 1 else None), border)


def first_conv_name(model, input_shape) -> str:
    """Name of the first Conv2D layer in ``st.summary`` order."""
    for r in layer_rows(model, input_shape):
        if r.type == "Conv2D":
            return r.name
    raise ValueError("the model has no Conv2D layer.")


def activations(model, x, layers=None) -> dict:
    """The output of every layer (or of the named ones) for one image, through forward hooks.

    Args:
        model: a striate Module.
        x: one image as the model takes it (already preprocessed): ``(h, w, c)`` or ``(1, h, w, c)``.
        layers: layer names of ``st.summary`` (default: every layer).

    Returns:
        ``{name: array}`` in layer order: ``(h, w, c)`` for layers with feature maps, ``(units,)``
        for flattened / dense outputs. Model dtype (float32 or float64).

    Example::

        >>> acts = activations(model, x_test[0])
        >>> acts["features.0"].shape
        (8, 8, 32)
    """
    check_model(model, "activations")
    x = as_image(x, model, "activations")
    rows = layer_rows(model, x.shape[1:])
    known = [r.name for r in rows]
    if layers is None:
        names = known
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        for n in names:
            find_layer(model, n, x.shape[1:], "activations")
    modules = named_modules(model)
    from ..tensor import no_grad

    with inspecting(model), recording({n: modules[n] for n in names}) as outs, no_grad():
        model(Tensor(x))
    ordered = [n for n in known if n in names]
    return {n: outs[n].data[0] for n in ordered if n in outs}


def default_activation_layers(model, input_shape) -> list:
    """The outputs of the conv blocks: each spatial layer followed by a conv, a pooling layer or a
    layer without feature maps (conv -> BN -> ReLU gives the ReLU), the picture Zeiler & Fergus
    show per layer. Falls back to every layer with feature maps."""
    rows = layer_rows(model, input_shape)
    pools = ("MaxPool2D", "AvgPool2D")
    picked = []
    for i, r in enumerate(rows):
        if len(r.output_shape) != 3 or r.type in pools:
            continue
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if r.type != "Conv2D" and (nxt is None or len(nxt.output_shape) != 3 or nxt.type in ("Conv2D",) + pools):
            picked.append(r.name)
    return picked or [r.name for r in rows if len(r.output_shape) == 3]


def activation_grid(maps, ncols: int | None = None, border: int = 1, gap: int = 4) -> np.ndarray:
    """Feature maps ``(h, w, c)`` of one layer as a grid of ``c`` grayscale tiles, each scaled on its own.

    A channel that is zero everywhere (a dead ReLU on this image) stays black rather than the
    mid-gray of a constant tile, so that "nothing fired" reads as dark. Given the dict of
    :func:`activations`, the layers with feature maps are drawn one under another (``ncols``
    default 16), smaller maps enlarged to the size of the largest, ``gap`` white rows between.

    Returns:
        ``(H, W)`` in [0, 1] with white borders.

    Example::

        >>> activation_grid(activations(model, x)["features.2"]).shape   # 32 maps of 8 x 8
        (55, 55)
        >>> activation_grid(activations(model, x, ["features.2", "features.9"])).shape
        (60, 145)
    """
    if isinstance(maps, dict):
        layers = [np.asarray(a) for a in maps.values() if np.ndim(a) == 3]
        if not layers:
            raise ValueError("activation_grid: none of the layers has feature maps (h, w, c).")
        size = max(a.shape[0] for a in layers)
        grids = [activation_grid(np.repeat(np.repeat(a, max(1, size // a.shape[0]), 0), max(1, size // a.shape[1]), 1),
                                 ncols or 16, border) for a in layers]
        width = max(g.shape[1] for g in grids)
        parts = []
        for g in grids:
            parts += [np.pad(g, ((0, 0), (0, width - g.shape[1])), constant_values=1.0), np.ones((gap, width))]
        return np.concatenate(parts[:-1], axis=0)
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"activation_grid expects feature maps (h, w, c) of one layer. Received: shape {a.shape}.")
    tiles = a.transpose(2, 0, 1)                                          # (c, h, w)
    scaled = normalize(tiles, axis=(1, 2))
    dead = np.abs(tiles).max(axis=(1, 2)) == 0
    scaled[dead] = 0.0
    return tile(scaled, ncols, border)
