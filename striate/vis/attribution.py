"""Where the model looks: saliency, SmoothGrad, gradient x input, Grad-CAM and occlusion maps.

Each function takes one preprocessed image and a class, runs striate's own forward and backward,
and returns an ``(h, w)`` NumPy map at the input's resolution. The gradient maps use the class
*score* (the logit, before the softmax), as Simonyan et al. do: the softmax couples every class, so
its gradient also reflects the other classes. Occlusion measures the drop of the *probability*, as
Zeiler & Fergus do.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..random import check_random_state
from ..tensor import Tensor, no_grad
from ._model import as_image, check_model, check_target, find_layer, inspecting, layer_rows, recording
from .grid import resize_bilinear

SALIENCY_METHODS = ("grad", "smoothgrad", "grad_x_input")


def _logits(model, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor) or out.ndim != 2:
        raise ValueError(f"the model must output class scores (n, classes). Received: shape {getattr(out, 'shape', None)}.")
    return out


def predicted_class(model, x) -> int:
    """The class with the highest score for one preprocessed image."""
    x = as_image(x, check_model(model, "predicted_class"), "predicted_class")
    with inspecting(model), no_grad():
        return int(np.argmax(_logits(model, Tensor(x)).data[0]))


def _resolve_target(model, x, target, owner):
    if target is None:
        return predicted_class(model, x)
    with inspecting(model), no_grad():
        classes = _logits(model, Tensor(x)).shape[1]
    return check_target(target, classes, owner)


def input_gradient(model, x, target=None) -> np.ndarray:
    """Gradient of the class score ``logits[target]`` with respect to the input image.

    Args:
        model: a striate Module that outputs class scores.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: class index (default: the predicted class).

    Returns:
        ``(h, w, c)`` array in the model's dtype.

    Example::

        >>> input_gradient(model, x_test[0], target=3).shape
        (8, 8, 1)
    """
    check_model(model, "input_gradient")
    x = as_image(x, model, "input_gradient")
    target = _resolve_target(model, x, target, "input_gradient")
    return _score_gradients(model, x, target)[0]


def _score_gradients(model, xb: np.ndarray, target: int) -> np.ndarray:
    """d logits[i, target] / d xb[i] for every image of a batch ``(n, h, w, c)`` in one backward:
    images do not interact in evaluation mode, so the gradient of the sum is each image's own."""
    with inspecting(model):
        t = Tensor(xb, requires_grad=True)
        logits = _logits(model, t)
        logits[:, target].sum().backward()
    return t.grad


def saliency(model, x, target=None, method: str = "grad", samples: int = 32, noise: float = 0.15,
             rng=None) -> np.ndarray:
    """Saliency map of one image for one class.

    Args:
        model: a striate Module that outputs class scores.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: class index (default: the predicted class).
        method: ``'grad'``: ``max_c |d score / d x|`` (Simonyan, Vedaldi & Zisserman 2014, sec. 3.1);
            ``'smoothgrad'``: the same of the gradient averaged over ``samples`` copies of ``x``
            with Gaussian noise of std ``noise * (max(x) - min(x))`` (Smilkov et al. 2017, who find
            10-20 % noise best); ``'grad_x_input'``: ``|sum_c x * d score / d x|`` (Shrikumar et al. 2016).
        samples, noise, rng: SmoothGrad's sample count, relative noise level and random generator.

    Returns:
        ``(h, w)`` map, >= 0, in the model's dtype.

    Example::

        >>> saliency(model, x_test[0], method="smoothgrad").shape
        (8, 8)
    """
    check_model(model, "saliency")
    if method not in SALIENCY_METHODS:
        raise ValueError(f"saliency: method must be one of {', '.join(SALIENCY_METHODS)}. Received: method={method!r}.")
    x = as_image(x, model, "saliency")
    target = _resolve_target(model, x, target, "saliency")
    if method == "grad":
        return np.abs(_score_gradients(model, x, target)[0]).max(axis=-1)
    if method == "grad_x_input":
        return np.abs((_score_gradients(model, x, target)[0] * x[0]).sum(axis=-1))
    if not isinstance(samples, numbers.Integral) or samples < 1:
        raise ValueError(f"saliency: samples must be a positive int. Received: samples={samples!r}.")
    if not isinstance(noise, numbers.Real) or noise < 0:
        raise ValueError(f"saliency: noise must be a number >= 0. Received: noise={noise!r}.")
    sigma = float(noise) * float(x.max() - x.min())
    gen = check_random_state(rng)
    noisy = x + gen.normal(0.0, sigma, size=(int(samples),) + x.shape[1:]).astype(x.dtype)   # (samples, h, w, c)
    g = _score_gradients(model, noisy, target).mean(axis=0)
    return np.abs(g).max(axis=-1)


def default_cam_layer(model, input_shape) -> str:
    """The last layer whose output still has feature maps (h, w, c) with more than one pixel."""
    rows = layer_rows(model, input_shape)
    spatial = [r for r in rows if len(r.output_shape) == 3 and r.output_shape[0] * r.output_shape[1] > 1]
    if not spatial:
        raise ValueError("grad_cam: the model has no layer with feature maps larger than 1 x 1.")
    return spatial[-1].name


def grad_cam_parts(model, x, target, layer):
    """Activations ``A`` ``(h', w', K)`` of ``layer`` and ``dA = d score / d A``, hooked in one pass."""
    row, module = find_layer(model, layer, x.shape[1:], "grad_cam", spatial=True)
    with inspecting(model), recording({layer: module}, retain_grad=True) as outs:
        t = Tensor(x, requires_grad=True)  # the graph must reach the hooked layer
        _logits(model, t)[:, target].sum().backward()
    a = outs[layer]
    return a.data[0], a.grad[0]


def grad_cam(model, x, target=None, layer: str | None = None) -> np.ndarray:
    """Grad-CAM map (Selvaraju et al. 2017): where the feature maps of ``layer`` support ``target``.

    ``alpha_k = mean_{i,j} d score / d A_k[i, j]`` weighs each feature map ``A_k`` of the layer;
    the map is ``relu(sum_k alpha_k A_k)``, resized bilinearly to the input (half-pixel centres).
    It is not normalised: divide by its maximum to draw it.

    Args:
        model: a striate Module that outputs class scores.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: class index (default: the predicted class).
        layer: a ``st.summary`` layer name with feature maps (default: the last such layer).

    Returns:
        ``(h, w)`` map, >= 0, at the input's resolution.

    Example::

        >>> grad_cam(model, x_test[0]).shape
        (8, 8)
    """
    check_model(model, "grad_cam")
    x = as_image(x, model, "grad_cam")
    target = _resolve_target(model, x, target, "grad_cam")
    layer = default_cam_layer(model, x.shape[1:]) if layer is None else layer
    a, ga = grad_cam_parts(model, x, target, layer)                  # (h', w', K) each
    alpha = ga.mean(axis=(0, 1))                                      # (K,)
    cam = np.maximum((a * alpha).sum(axis=-1), 0)                     # (h', w')
    return resize_bilinear(cam, x.shape[1:3]).astype(x.dtype)


def _pair(v, name):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 1 for i in v)):
        raise ValueError(f"occlusion: {name} must be a positive int or a pair of them. Received: {name}={v!r}.")
    return int(v[0]), int(v[1])


def _starts(size, window, stride):
    """Window offsets 0, s, 2s, ... and the last one flush with the border, so every pixel is covered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def occlusion(model, x, target=None, window=4, stride=2, baseline=0.0, batch_size: int = 256) -> np.ndarray:
    """Drop of the target's probability when a window of the image is covered (Zeiler & Fergus 2014, 4.2).

    The window slides with ``stride`` (the last position flush with the border); each covered copy
    has the window's pixels set to ``baseline`` (a number, e.g. 0 = the mean pixel of standardised
    data, or an image of ``x``'s shape). A pixel's value is the mean drop ``p(x) - p(covered)`` over
    the windows that cover it.

    Args:
        model: a striate Module that outputs class scores.
        x: one preprocessed image ``(h, w, c)`` or ``(1, h, w, c)``.
        target: class index (default: the predicted class).
        window, stride: int or (height, width), in pixels.
        baseline: the covering value: a number or an array of the image's shape.
        batch_size: covered images per forward pass.

    Returns:
        ``(h, w)`` map in the model's dtype; positive where covering hurts the class.

    Example::

        >>> occlusion(model, x_test[0], window=2, stride=1).shape
        (8, 8)
    """
    check_model(model, "occlusion")
    x = as_image(x, model, "occlusion")
    target = _resolve_target(model, x, target, "occlusion")
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    _, h, w, c = x.shape
    if wh > h or ww > w:
        raise ValueError(f"occlusion: the window must fit in the image. Received: window=({wh}, {ww}) "
                         f"for an image of {h} x {w}.")
    if isinstance(baseline, numbers.Real):
        fill = np.full(x.shape[1:], baseline, dtype=x.dtype)
    else:
        fill = np.asarray(baseline, dtype=x.dtype).reshape(np.shape(baseline))
        if fill.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"occlusion: baseline must be a number or an array of the image's shape {x.shape[1:]}. "
                             f"Received: shape {fill.shape}.")
        fill = fill.reshape(x.shape[1:])
    positions = [(i, j) for i in _starts(h, wh, sh) for j in _starts(w, ww, sw)]
    probs = []
    with inspecting(model), no_grad():
        p0 = float(F.softmax(_logits(model, Tensor(x))).data[0, target])
        for k in range(0, len(positions), batch_size):
            chunk = positions[k:k + batch_size]
            xb = np.repeat(x, len(chunk), axis=0)                             # (b, h, w, c)
            for m, (i, j) in enumerate(chunk):
                xb[m, i:i + wh, j:j + ww] = fill[i:i + wh, j:j + ww]
            probs.append(F.softmax(_logits(model, Tensor(xb))).data[:, target])
    drops = p0 - np.concatenate(probs)
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for d, (i, j) in zip(drops, positions):
        total[i:i + wh, j:j + ww] += d
        count[i:i + wh, j:j + ww] += 1
    return (total / count).astype(x.dtype)
