"""What excites a unit: the data set's top patches (Zeiler & Fergus 2014, fig. 2) and activation
maximisation (Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015's regularisers)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..random import check_random_state
from ..tensor import Tensor, no_grad
from ._model import as_image, check_channel, check_model, find_layer, inspecting, model_dtype, recording


def layer_field(model, layer: str, input_shape):
    """Receptive field ``(ReceptiveField_y, ReceptiveField_x)`` (size, jump, start) of a layer's units.

    Computed by ``st.summary``'s tracer with the recurrence of :mod:`striate.summary.receptive_field`
    (``r_out = r_in + (k - 1) d j_in``, ``j_out = j_in s``, ``start_out = start_in - p j_in``);
    unit ``(i, j)`` sees input rows ``start_y + i * jump_y ... + size_y - 1``, columns likewise.
    """
    from ..summary import trace_forward

    trace = trace_forward(model, tuple(input_shape), track_fields=True, dtype=model_dtype(model))
    for call in trace.calls:
        if call.name == layer:
            field = getattr(call.output, "_rf", None)
            if isinstance(field, tuple):
                return field
            raise ValueError(f"layer {layer!r} has no receptive field of its own ({field or 'unknown'}): "
                             "its units see the whole input.")
    raise ValueError(f"no layer named {layer!r}.")


@dataclass
class TopPatches:
    """The result of :func:`top_patches`.

    Attributes:
        patches: ``(k, rf_h, rf_w, c)`` input crops, exactly the units' receptive fields; the
            part of a field outside the image (padding) is filled with ``fill``.
        values: ``(k,)`` the activations, highest first.
        indices: ``(k,)`` which image of ``data`` each came from.
        positions: ``(k, 2)`` the unit ``(i, j)`` in the layer's feature map.
        boxes: ``(k, 4)`` ``(top, left, bottom, right)`` of each field in input pixels (bottom and
            right exclusive; may reach outside the image).
    """

    patches: np.ndarray
    values: np.ndarray
    indices: np.ndarray
    positions: np.ndarray
    boxes: np.ndarray


def _images(data, owner):
    a = data.data if isinstance(data, Tensor) else np.asarray(data)
    if a.ndim != 4 or len(a) == 0:
        raise ValueError(f"{owner}: data must be a batch of images (n, h, w, c). Received: shape {a.shape}.")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: data must be numeric images. Received: dtype {a.dtype}.")
    return a


def top_patches(model, data, layer: str, channel: int, k: int = 9, batch_size: int = 256,
                fill: float = 0.0, display=None) -> TopPatches:
    """The ``k`` input patches that excite one channel of a layer most, one per image.

    Each image counts with its strongest unit of the channel (Zeiler & Fergus's "top 9
    activations"); the patch is that unit's receptive field, from :func:`layer_field`.

    Args:
        model: a striate Module.
        data: preprocessed images ``(n, h, w, c)`` as the model takes them (uint8 is scaled to [0, 1] as the
            data loader does).
        layer: a ``st.summary`` layer name with feature maps; channel: its channel index.
        k: patches to return (at most ``n``).
        batch_size: images per forward pass.
        fill: value of field pixels outside the image.
        display: optional images ``(n, h, w, c)`` to crop from instead of ``data`` (e.g. the
            unstandardised pixels), same size.

    Example::

        >>> top = top_patches(model, x_test, "features.7", channel=5, k=9)
        >>> top.patches.shape          # features.7 sees 10 x 10 pixels
        (9, 10, 10, 1)
    """
    check_model(model, "top_patches")
    x = _images(data, "top_patches")
    src = x if display is None else _images(display, "top_patches")
    if src.shape != x.shape:
        raise ValueError(f"top_patches: display must have the shape of data {x.shape}. Received: {src.shape}.")
    as_image(x[:1], model, "top_patches", "data")  # channel check
    row, module = find_layer(model, layer, x.shape[1:], "top_patches", spatial=True)
    channel = check_channel(channel, row.output_shape[-1], layer, "top_patches")
    if not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"top_patches: k must be a positive int. Received: k={k!r}.")
    k = min(int(k), len(x))
    fy, fx = layer_field(model, layer, x.shape[1:])

    dtype = model_dtype(model)
    best = np.empty(len(x))
    where = np.empty((len(x), 2), np.int64)
    with inspecting(model), recording({layer: module}) as outs, no_grad():
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size]
            xb = xb.astype(np.float32) / np.float32(255) if xb.dtype == np.uint8 else xb
            outs.clear()
            model(Tensor(np.ascontiguousarray(xb, dtype=dtype)))
            a = outs[layer].data[..., channel]                               # (b, h', w')
            flat = a.reshape(len(a), -1)
            arg = flat.argmax(axis=1)
            best[s:s + len(a)] = flat[np.arange(len(a)), arg]
            where[s:s + len(a)] = np.stack(np.unravel_index(arg, a.shape[1:]), axis=1)
    order = np.argsort(-best, kind="stable")[:k]

    h, w, c = x.shape[1:]
    patches = np.full((k, fy.size, fx.size, c), fill, dtype=np.result_type(src.dtype, np.float32)
                      if src.dtype.kind == "f" else src.dtype)
    boxes = np.empty((k, 4), np.int64)
    for m, idx in enumerate(order):   # k crops, each one slice copy
        i, j = where[idx]
        top, left = fy.start + i * fy.jump, fx.start + j * fx.jump
        boxes[m] = (top, left, top + fy.size, left + fx.size)
        y0, y1 = max(top, 0), min(top + fy.size, h)
        x0, x1 = max(left, 0), min(left + fx.size, w)
        patches[m, y0 - top:y1 - top, x0 - left:x1 - left] = src[idx, y0:y1, x0:x1]
    return TopPatches(patches, best[order], order, where[order], boxes)


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``(1, h, w, c)``: a depthwise F.conv2d (groups = channels) of the reflect-padded image."""
    radius = max(1, int(np.ceil(2 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    c = x.shape[-1]
    kernel = np.repeat((g[:, None] * g[None, :])[:, :, None, None], c, axis=3).astype(x.dtype)  # (k, k, 1, c)
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    return F.conv2d(padded, kernel, groups=c).data


def maximize_activation(model, layer: str, channel: int, input_shape, steps: int = 200, lr: float = 0.1,
                        jitter: int = 1, l2: float = 1e-3, blur_every: int = 4, blur_sigma: float = 0.5,
                        init_std: float = 0.1, rng=None, clip=None) -> np.ndarray:
    """An input found by gradient ascent on one channel's mean activation: what the unit "wants".

    Each step: shift the image by a random offset of up to ``jitter`` pixels (and back after the
    step), take the gradient of the channel's mean activation, step by ``lr`` along the gradient
    normalised by its RMS, shrink the image by ``1 - l2`` (L2 decay), and every ``blur_every``
    steps blur it with a Gaussian of ``blur_sigma`` pixels: the regularisers of Yosinski et al.
    2015 that keep the result from being high-frequency noise.

    Args:
        model: a striate Module; layer: ``st.summary`` layer name with feature maps; channel: index.
        input_shape: ``(h, w, c)`` of the model's input.
        steps, lr, jitter, l2, blur_every, blur_sigma: the ascent and its regularisers
            (``blur_every=0`` turns blurring off).
        init_std: std of the Gaussian noise the image starts from.
        rng: seed or Generator.
        clip: optional ``(low, high)`` range the image is kept in (e.g. the data's range).

    Returns:
        ``(h, w, c)`` image in the model's input space and dtype.

    Example::

        >>> img = maximize_activation(model, "features.7", 3, (8, 8, 1), steps=100)
        >>> img.shape
        (8, 8, 1)
    """
    check_model(model, "maximize_activation")
    shape = tuple(int(s) for s in input_shape)
    row, module = find_layer(model, layer, shape, "maximize_activation", spatial=True)
    channel = check_channel(channel, row.output_shape[-1], layer, "maximize_activation")
    for name, v in (("steps", steps), ("jitter", jitter), ("blur_every", blur_every)):
        if not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"maximize_activation: {name} must be an int >= 0. Received: {name}={v!r}.")
    gen = check_random_state(rng)
    dtype = model_dtype(model)
    x = gen.normal(0.0, init_std, size=(1,) + shape).astype(dtype)
    seen = {}

    def keep_input(mod, inputs, out):
        # an element-wise layer (ReLU) keeps its input: where the channel is off everywhere its
        # output has no gradient, and the ascent climbs the pre-activation until the unit turns on
        if inputs and isinstance(inputs[0], Tensor) and inputs[0].shape == out.shape:
            seen["input"] = inputs[0]

    handle = module.register_forward_hook(keep_input)
    try:
        with inspecting(model), recording({layer: module}) as outs:
            for step in range(int(steps)):
                dy, dx = (gen.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0))
                xs = np.roll(x, (int(dy), int(dx)), axis=(1, 2))
                t = Tensor(xs, requires_grad=True)
                outs.clear()
                seen.clear()
                model(t)
                out = outs[layer]
                off = not np.any(out.data[..., channel] > 0) and "input" in seen
                (seen["input"] if off else out)[..., channel].mean().backward()
                g = np.roll(t.grad, (-int(dy), -int(dx)), axis=(1, 2))
                x = (x + lr * g / (np.sqrt(np.mean(g * g)) + 1e-8)) * (1 - l2)
                if blur_every and (step + 1) % blur_every == 0:
                    x = _gaussian_blur(x, blur_sigma)
                if clip is not None:
                    x = np.clip(x, clip[0], clip[1])
    finally:
        handle.remove()
    return x[0].astype(dtype)


def channel_activation(model, layer: str, channel: int, x) -> float:
    """Mean activation of one channel of ``layer`` for one preprocessed image (to judge a maximised input)."""
    x = as_image(x, model, "channel_activation")
    row, module = find_layer(model, layer, x.shape[1:], "channel_activation", spatial=True)
    with inspecting(model), recording({layer: module}) as outs, no_grad():
        model(Tensor(x))
    return float(outs[layer].data[..., channel].mean())
