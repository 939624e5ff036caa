"""The figures of ``striate visualize``, for Python users too: each lays out maps already computed by
:mod:`striate.vis` into one captioned picture (a PIL image; save it with :func:`save_figure`).

Every figure is drawn with Pillow and matplotlib (the ``striate[viz]`` extra). Pixels shown are the
image as read, in [0, 1]; maps are scaled for display as each caption says.

Example::

    >>> x, shown = ...                                   # the standardised image and its pixels in [0, 1]
    >>> m = st.vis.saliency(model, x, target=3)
    >>> fig = st.vis.saliency_figure(model, x, shown, m, target=3, class_names=names)
    >>> st.vis.save_figure(fig, "saliency.png")
"""
from __future__ import annotations

import numpy as np

from . import draw
from ._model import find_layer, inspecting, layer_rows
from .filters import activation_grid, filter_grid, first_conv_name
from .patches import channel_activation

__all__ = ["conv_layer", "class_label", "class_probabilities", "filters_figure", "activations_figure",
           "saliency_figure", "grad_cam_figure", "occlusion_figure", "top_patches_figure", "maximize_figure",
           "deconvnet_figure", "guided_backprop_figure", "signed_image", "save_figure"]

PANEL = 224          # side of each panel of the attribution figures, in pixels
SALIENCY_TITLES = {"grad": "saliency |d score/d x|", "smoothgrad": "SmoothGrad", "grad_x_input": "gradient x input"}
OUTSIDE = (0.78, 0.86, 0.97)   # pale blue: the part of a receptive field beyond the image


def class_label(class_names, k: int) -> str:
    """``'name'`` (quoted) for class ``k`` when names are known, else the index."""
    names = list(class_names or [])
    return f"'{names[k]}'" if k < len(names) else str(k)


def class_probabilities(model, x) -> np.ndarray:
    """Softmax probabilities ``(k,)`` of one image ``(h, w, c)`` as the model takes it."""
    from .. import functional as F
    from ..tensor import Tensor, no_grad

    with inspecting(model), no_grad():
        return F.softmax(model(Tensor(np.asarray(x)[None]))).data[0]


def conv_layer(model, input_shape, layer: str | None = None):
    """``(name, module)`` of a Conv2D layer (default: the first one); ValueError for another kind."""
    shape = tuple(input_shape)
    name = layer or first_conv_name(model, shape)
    row, module = find_layer(model, name, shape, "filters")
    if row.type != "Conv2D":
        convs = [r.name for r in layer_rows(model, shape) if r.type == "Conv2D"]
        raise ValueError(f"filters: layer {name!r} is a {row.type}, not a Conv2D layer. Conv layers: {', '.join(convs)}.")
    return name, module


def filters_figure(model, input_shape, layer: str | None = None, mode: str = "auto"):
    """A conv layer's filters as tiles, each scaled on its own (:func:`striate.vis.filter_grid`).

    Args:
        model: the model.
        input_shape: its ``(height, width, channels)``.
        layer: a Conv2D layer's name (``striate summary``); default: the first conv layer.
        mode: ``"auto"``, ``"rgb"``, ``"slices"`` or ``"mean"`` (see :func:`striate.vis.filter_grid`).
    """
    name, module = conv_layer(model, input_shape, layer)
    grid = filter_grid(module, mode=mode)
    kh, kw, cin, cout = module.w.data.shape
    big = draw.enlarge(grid, 320)
    return draw.compose([big], [f"{cout} filters {kh}x{kw}x{cin}, each scaled on its own"], title=f"{name} filters")


def activations_figure(model, x, shown, acts: dict, class_names=None):
    """The input with its predicted class, then each layer's feature maps as a grid.

    Args:
        model: the model the maps come from.
        x: the image as the model takes it ``(h, w, c)``.
        shown: the same image's pixels in [0, 1], as shown.
        acts: ``{layer name: output}`` from :func:`striate.vis.activations`; vectors are left out.
        class_names: names of the classes, for the caption.
    """
    maps = {n: a for n, a in acts.items() if a.ndim == 3}
    if not maps:
        raise ValueError(f"none of the layers {', '.join(acts)} has feature maps (h, w, c) to draw.")
    # every layer's tiles drawn at the same on-screen size: small maps are enlarged more
    tile_px = min(64, max(32, max(a.shape[0] for a in maps.values()) * 4))   # 16 tiles a row fit ~1000 px
    probs = class_probabilities(model, x)
    k = int(np.argmax(probs))
    rows = [draw.compose([draw.enlarge(shown, 128)], [f"predicted {class_label(class_names, k)} (p = {probs[k]:.2f})"],
                         title="input image; below, each feature map scaled on its own (black = lowest)")]
    types = {r.name: r.type for r in layer_rows(model, x.shape)}
    for n, a in maps.items():
        factor = max(1, tile_px // a.shape[0])
        grid = activation_grid(draw.upsample_nearest(a, factor), ncols=16, border=2)
        rows.append(draw.compose([grid], title=f"{n} ({types.get(n, '?')}): {a.shape[2]} maps of "
                                               f"{a.shape[0]}x{a.shape[1]}"))
    return draw.stack(rows)


def _attribution_figure(model, x, shown, m, target: int, what: str, signed: bool, class_names):
    """Input, map and overlay side by side, titled with the class and its probability."""
    p = float(class_probabilities(model, x)[target])
    if signed:  # red where covering lowers p(target), blue where it raises it
        colour = draw.diverging(m)
        over = draw.overlay(shown, np.maximum(m, 0))
        captions = ["input", "drop of p (red +, blue -)", "overlay (drops)"]
    else:
        colour = draw.colormap(draw.heat(m))
        over = draw.overlay(shown, m)
        captions = ["input", "map", "overlay"]
    panels = [draw.enlarge(draw.as_rgb(shown), PANEL), draw.enlarge(colour, PANEL), draw.enlarge(over, PANEL)]
    title = f"{what} for class {class_label(class_names, target)} (p = {p:.2f})"
    return draw.compose(panels, captions, title=title)


def saliency_figure(model, x, shown, m, target: int, method: str = "grad", class_names=None):
    """Input, saliency map (:func:`striate.vis.saliency`) and their overlay."""
    return _attribution_figure(model, x, shown, m, target, SALIENCY_TITLES[method], False, class_names)


def grad_cam_figure(model, x, shown, m, target: int, layer: str, class_names=None):
    """Input, Grad-CAM map of ``layer`` (:func:`striate.vis.grad_cam`) and their overlay."""
    return _attribution_figure(model, x, shown, m, target, f"Grad-CAM at {layer}", False, class_names)


def occlusion_figure(model, x, shown, m, target: int, window: int, stride: int, class_names=None):
    """Input, signed probability drop (:func:`striate.vis.occlusion`: red = covering lowers p) and
    the overlay of the drops."""
    what = f"occlusion {window}x{window}, stride {stride}"
    return _attribution_figure(model, x, shown, m, target, what, True, class_names)


def top_patches_figure(results: dict, layer: str):
    """One strip per channel of its top patches (:func:`striate.vis.top_patches` with ``fill=np.nan``).

    Pixels are shown as they are in [0, 1], not rescaled per patch (the contrast between patches is the
    point); the part of a receptive field outside the image (NaN) is pale blue.

    Args:
        results: ``{channel: TopPatches}``.
        layer: the layer's name, for the title.
    """
    first = next(iter(results.values()))
    rf = first.patches.shape[1:3]
    factor = max(1, 48 // max(rf))
    rows = []
    for c, r in results.items():
        tiles = []
        for p in r.patches:
            t = np.repeat(draw.upsample_nearest(p, factor), 3 // p.shape[-1], axis=-1)    # (rf * f, rf * f, 3)
            outside = np.isnan(t).any(axis=-1)
            t = np.clip(np.nan_to_num(t), 0, 1)
            t[outside] = OUTSIDE
            tiles.append(t)
        gap = np.full((tiles[0].shape[0], 3, 3), 0.6)
        strip = np.concatenate([part for t in tiles for part in (t, gap)][:-1], axis=1)
        rows.append(draw.compose([strip], [f"channel {c}: max {r.values[0]:.2f}"]))
    head = draw.compose([np.ones((1, 1))], title=f"{layer}: top {len(first.values)} test patches per channel "
                                                 f"(receptive field {rf[0]}x{rf[1]}; blue = outside the image)")
    return draw.stack([head] + rows, gap=2)


def maximize_figure(model, layer: str, images: dict, steps: int, per_row: int = 8):
    """The inputs maximising each channel (:func:`striate.vis.maximize_activation`), captioned with the
    mean activation each reaches.

    Args:
        images: ``{channel: image (h, w, c)}``.
        steps: the gradient-ascent steps taken, for the title.
    """
    tiles = [draw.enlarge(draw.as_rgb(a), 96) for a in images.values()]
    captions = [f"ch {c}: {channel_activation(model, layer, c, a):.2f}" for c, a in images.items()]
    rows = [draw.compose(tiles[i:i + per_row], captions[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    head = draw.compose([np.ones((1, 1))], title=f"{layer}: inputs maximising each channel's mean activation "
                                                 f"({steps} steps)")
    return draw.stack([head] + rows, gap=2)


def signed_image(values) -> np.ndarray:
    """A signed map ``(h, w)`` or ``(h, w, c)`` for display, as Zeiler & Fergus show projections:
    0 is mid-grey, and the largest magnitude (over all channels) is black or white. RGB stays RGB."""
    v = np.asarray(values, np.float64)
    top = np.abs(v).max() if v.size else 0.0
    return 0.5 + 0.5 * v / top if top > 0 else np.full(v.shape, 0.5)


def _rgb(a):
    """(h, w, 1) or (h, w, 3) in [0, 1] -> RGB, values kept (no rescaling: grey stays 0)."""
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _outline(rgb, box, colour=(1.0, 0.1, 0.1)):
    """An RGB image with the rectangle ``(top, left, bottom, right)`` (pixels, bottom/right exclusive,
    clipped to the image) drawn as a one-pixel outline."""
    out = rgb.copy()
    h, w = out.shape[:2]
    top, left = max(box[0], 0), max(box[1], 0)
    bottom, right = min(box[2], h) - 1, min(box[3], w) - 1
    if bottom < top or right < left:
        return out
    out[top, left:right + 1] = out[bottom, left:right + 1] = colour
    out[top:bottom + 1, left] = out[top:bottom + 1, right] = colour
    return out


def deconvnet_figure(model, x, shown, layer: str, projections: dict, units: dict | None = None, per_row: int = 8):
    """The input, then each channel's deconvnet projection (:func:`striate.vis.deconvnet`), each
    scaled on its own (grey = 0) with the unit's receptive field outlined in red.

    Args:
        model: the model.
        x: the image as the model takes it ``(h, w, c)``.
        shown: the same image's pixels in [0, 1], as shown.
        layer: the layer projected from, for the title and the receptive fields.
        projections: ``{channel: projection (h, w, c)}``.
        units: ``{channel: ((i, j), activation)}`` (:func:`striate.vis.deconvnet_unit`), for the captions.
    """
    from .patches import layer_field

    units = units or {}
    fy, fx = layer_field(model, layer, x.shape)
    side = 128   # wide enough for a caption "ch 12 at (3,3): 4.47"
    factor = max(1, -(-side // min(x.shape[:2])))
    tiles, captions = [], []
    for c, r in projections.items():
        tile = draw.upsample_nearest(_rgb(signed_image(r)), factor)
        caption = f"ch {c}"
        if c in units:
            (i, j), value = units[c]
            top, left = fy.start + i * fy.jump, fx.start + j * fx.jump
            tile = _outline(tile, [v * factor for v in (top, left, top + fy.size, left + fx.size)])
            caption = f"ch {c} ({i},{j}): {value:.2f}"
        tiles.append(tile)
        captions.append(caption)
    k = int(np.argmax(class_probabilities(model, x)))
    head = draw.compose([draw.upsample_nearest(draw.as_rgb(shown), factor)], [f"input (predicted {k})"],
                        title=f"deconvnet from {layer}: each channel's strongest unit projected to pixels "
                              f"(grey = 0; red: its {fy.size}x{fx.size} receptive field)")
    rows = [draw.compose(tiles[i:i + per_row], captions[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    return draw.stack([head] + rows, gap=2)


def guided_backprop_figure(model, x, shown, g, target: int, class_names=None):
    """Input, guided-backprop gradient (:func:`striate.vis.guided_backprop`; grey = 0, white = positive)
    and its positive part over the image."""
    p = float(class_probabilities(model, x)[target])
    panels = [draw.enlarge(draw.as_rgb(shown), PANEL), draw.enlarge(_rgb(signed_image(g)), PANEL),
              draw.enlarge(draw.overlay(shown, np.maximum(g, 0).max(axis=-1)), PANEL)]
    captions = ["input", "guided gradient (grey = 0)", "overlay (positive part)"]
    title = f"guided backpropagation for class {class_label(class_names, target)} (p = {p:.2f})"
    return draw.compose(panels, captions, title=title)


def save_figure(figure, path) -> None:
    """Write a figure (a PIL image) to ``path`` (PNG, JPEG, ... by the extension), atomically."""
    draw.save_pil(figure, path)
