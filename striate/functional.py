"""Stateless differentiable ops on Tensors (or arrays): the public face of :mod:`striate.ops`.

Each function validates its arguments at the door, with messages that name the argument, state the
rule and show what was received, then applies one primitive (or composes a few). Shapes use NHWC
activations ``(batch, height, width, channels)`` and HWIO conv weights
``(kernel_h, kernel_w, in_channels // groups, out_channels)``.

Output size of every sliding-window op (conv, pooling), per spatial axis::

    out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

with ``padding='same'`` giving ``out = ceil(in / stride)`` (Keras rule: the odd extra pad goes
bottom/right) and ``'valid'`` meaning no padding.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from . import ops
from .ops.geometry import cached, conv_geometry, hashable
from .random import check_random_state
from .tensor import Tensor
from .validation import check_int, check_number, check_rate, is_int, pair, positive_pair

__all__ = [
    "conv2d", "max_pool2d", "relu_max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "linear",
    "flatten", "concat",
    "relu", "add_relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "batch_norm",
    "batch_norm_relu", "local_response_norm", "cross_entropy", "mse_loss", "binary_cross_entropy_with_logits",
    "conv_transpose2d", "upsample", "max_unpool2d", "smooth_l1_loss", "huber_loss", "sigmoid_focal_loss",
    "heatmap_focal_loss", "dice_loss",
]


# --------------------------------------------------------------------------- validation helpers
def _tensor(x, name: str, op: str) -> Tensor:
    """Accept a Tensor or array-like of floats; refuse anything else with a clear message."""
    if not isinstance(x, Tensor):
        if isinstance(x, (np.ndarray, list, tuple, numbers.Number)):
            x = Tensor(x)
        else:
            raise TypeError(f"{op}: {name} must be a Tensor or a NumPy array. Received: {type(x).__name__}.")
    if x.dtype.kind != "f":
        raise TypeError(
            f"{op}: {name} must be a floating-point array (float32 or float64). Received: dtype={x.dtype}. "
            f"Convert with {name}.astype(np.float32) (and scale images to [0, 1])."
        )
    return x


def _nhwc(x, name: str, op: str) -> Tensor:
    x = _tensor(x, name, op)
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = f" If this is one image, add a batch axis with {name}[None]."
        elif x.ndim == 2:
            hint = f" If this is one grayscale image, use {name}[None, :, :, None]."
        raise ValueError(
            f"{op}: expected 4D input (batch, height, width, channels), got shape {x.shape}.{hint}"
        )
    return x


def _same_dtype(a, b, names: str, op: str):
    """Refuse mixed dtypes; ``a`` and ``b`` are Tensors or dtypes."""
    da, db = getattr(a, "dtype", a), getattr(b, "dtype", b)
    if da != db:
        raise TypeError(
            f"{op}: {names} must have the same dtype (striate never upcasts silently). "
            f"Received: {da} and {db}."
        )


# --------------------------------------------------------------------------- convolution
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation, as in every deep learning library).

    Args:
        x: input, NHWC.
        w: filters, HWIO ``(kh, kw, in_channels // groups, out_channels)``.
        b: optional bias ``(out_channels,)``.
        stride: int or (sh, sw).
        padding: ``'valid'``, ``'same'``, an int or (ph, pw) (zeros on both sides).
        dilation: int or (dh, dw): spacing between kernel taps.
        groups: split channels into this many independent convolutions; ``groups == in_channels``
            is a depthwise convolution.

    Shape:
        - x: ``(n, h, w, c)``; w: ``(kh, kw, c // groups, o)``; b: ``(o,)``
        - output: ``(n, oh, ow, o)`` with
          ``oh = floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1`` (likewise ``ow``).

    Example::

        >>> x = np.zeros((8, 28, 28, 1), np.float32); w = np.zeros((5, 5, 1, 6), np.float32)
        >>> F.conv2d(x, w, padding=2).shape
        (8, 28, 28, 6)
    """
    return _conv2d(x, w, b, stride, padding, dilation, groups)


def _conv2d(x, w, b, stride, padding, dilation, groups, fused=None) -> Tensor:
    """:func:`conv2d`; ``fused`` = (scale, shift, relu) applies an eval-mode batch norm (and ReLU)
    in the conv's own pass, for inference (:func:`striate.nn.fusion.conv_bn_relu`)."""
    op = "conv2d"
    x, w = _tensor(x, "x", op), _tensor(w, "w", op)
    b = None if b is None else _tensor(b, "b", op)
    plan = cached(_conv_plan, x.shape, x.dtype, w.shape, w.dtype,
                    None if b is None else (b.shape, b.dtype),
                    hashable(stride), hashable(padding), hashable(dilation), groups)
    fn = ops.Conv2dOp(*plan, fused=fused)
    return fn.apply(x, w) if b is None else fn.apply(x, w, b)


@functools.lru_cache(maxsize=1024)
def _conv_plan(x_shape, x_dtype, w_shape, w_dtype, b_spec, stride, padding, dilation, groups):
    """Validate a conv2d call; return the arguments of ``ops.Conv2dOp``: (stride, pads, dilation,
    groups, out_hw). Called through :func:`striate.ops.geometry.cached`; raises, caching nothing, on bad
    arguments."""
    op = "conv2d"
    if len(x_shape) != 4:
        _nhwc(Tensor(np.empty(x_shape, x_dtype)), "x", op)  # raises with the shape-specific hint
    if len(w_shape) != 4:
        raise ValueError(
            f"{op}: expected 4D weights (kernel_h, kernel_w, in_channels // groups, out_channels), "
            f"got shape {w_shape}."
        )
    _same_dtype(x_dtype, w_dtype, "x and w", op)
    check_int(groups, "groups", owner=op)
    kh, kw, cg, o = w_shape
    c = x_shape[3]
    if c % groups:
        raise ValueError(
            f"{op}: the number of input channels must be evenly divisible by groups. "
            f"Received: groups={groups}, input channels={c}."
        )
    if o % groups:
        raise ValueError(
            f"{op}: the number of filters must be evenly divisible by groups. "
            f"Received: groups={groups}, filters={o}."
        )
    if cg * groups != c:
        raise ValueError(
            f"{op}: channel mismatch between input and weights: x has {c} channels, but w of shape "
            f"{w_shape} (HWIO) with groups={groups} expects {cg * groups}."
        )
    if b_spec is not None:
        b_shape, b_dtype = b_spec
        _same_dtype(x_dtype, b_dtype, "x and b", op)
        if b_shape != (o,):
            raise ValueError(f"{op}: bias must have shape (out_channels,) = ({o},). Received: b.shape={b_shape}.")
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    pads, out_hw = conv_geometry(x_shape[1:3], (kh, kw), stride, padding, dilation, op)
    return stride, pads, dilation, int(groups), out_hw


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1) -> Tensor:
    """Transposed convolution: the adjoint of :func:`conv2d` with the same weight and geometry
    (Dumoulin & Visin 2016, sec. 4; the "deconvolution" of FCN and Zeiler & Fergus).

    ``w`` is the weight of the convolution whose adjoint this is, in HWIO ``(kh, kw, c_out //
    groups, c_in)``: that conv maps ``c_out`` channels to ``c_in``, this op maps ``c_in`` back to
    ``c_out``. So ``conv_transpose2d(gy, w, stride=s, padding=p, dilation=d, groups=g)`` is exactly
    the input gradient of ``conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)`` at ``gy``, with
    ``output_padding`` choosing among the input sizes that conv maps to the same output size.

    PyTorch's ``ConvTranspose2d`` weight ``(c_in, c_out // groups, kh, kw)`` is ``w.transpose(3, 2,
    0, 1)``, for every ``groups``: in both, input channel ``i`` belongs to group
    ``i // (c_in // groups)`` and the third axis of ``w`` (PyTorch's second) counts the output
    channels of that group.

    Args:
        x: input, NHWC.
        w: HWIO weight ``(kh, kw, c_out // groups, c_in)``.
        b: optional bias ``(c_out,)``.
        stride, dilation: int or pair, as in the conv.
        padding: int, ``(ph, pw)`` or ``(top, bottom, left, right)``: the conv's padding, cut off
            the output here.
        output_padding: int or pair: rows/columns added at the bottom/right of the output (zeros
            before the bias), each smaller than the stride or the dilation along its axis.
        groups: as in :func:`conv2d`.

    Shape:
        - x: ``(n, h, w, c_in)``; w: ``(kh, kw, c_out // groups, c_in)``; b: ``(c_out,)``
        - output: ``(n, H, W, c_out)`` with
          ``H = (h - 1) * sh - pt - pb + dh * (kh - 1) + output_padding_h + 1`` (likewise ``W``).

    Example::

        >>> x = np.zeros((1, 16, 16, 21), np.float32); w = np.zeros((4, 4, 21, 21), np.float32)
        >>> F.conv_transpose2d(x, w, stride=2, padding=1).shape     # FCN's 2x upsampling
        (1, 32, 32, 21)
    """
    op = "conv_transpose2d"
    x, w = _nhwc(x, "x", op), _tensor(w, "w", op)
    b = None if b is None else _tensor(b, "b", op)
    plan = cached(_conv_transpose_plan, x.shape, x.dtype, w.shape, w.dtype,
                  None if b is None else (b.shape, b.dtype), hashable(stride), hashable(padding),
                  hashable(output_padding), hashable(dilation), groups)
    fn = ops.ConvTranspose2dOp(*plan)
    return fn.apply(x, w) if b is None else fn.apply(x, w, b)


@functools.lru_cache(maxsize=1024)
def _conv_transpose_plan(x_shape, x_dtype, w_shape, w_dtype, b_spec, stride, padding, output_padding,
                         dilation, groups):
    """Validate a conv_transpose2d call; return the arguments of ``ops.ConvTranspose2dOp``:
    (stride, pads, dilation, groups, out_hw)."""
    op = "conv_transpose2d"
    if len(w_shape) != 4:
        raise ValueError(f"{op}: expected 4D weights (kernel_h, kernel_w, out_channels // groups, in_channels), "
                         f"got shape {w_shape}.")
    _same_dtype(x_dtype, w_dtype, "x and w", op)
    groups = check_int(groups, "groups", owner=op)
    kh, kw, cg, c_in = w_shape
    if x_shape[3] != c_in:
        raise ValueError(f"{op}: channel mismatch between input and weights: x has {x_shape[3]} channels, but w of "
                         f"shape {w_shape} (kh, kw, out_channels // groups, in_channels) expects {c_in}.")
    if c_in % groups:
        raise ValueError(f"{op}: the number of input channels must be evenly divisible by groups. "
                         f"Received: groups={groups}, input channels={c_in}.")
    if b_spec is not None:
        _same_dtype(x_dtype, b_spec[1], "x and b", op)
        if b_spec[0] != (cg * groups,):
            raise ValueError(f"{op}: bias must have shape (out_channels,) = ({cg * groups},). Received: "
                             f"b.shape={b_spec[0]}.")
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    if isinstance(padding, tuple) and len(padding) == 4 and all(is_int(p) for p in padding):
        pads = padding
    else:
        ph, pw = pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    out_pad = pair(output_padding, "output_padding")
    if min(pads) < 0 or min(out_pad) < 0:
        raise ValueError(f"{op}: padding and output_padding must be >= 0. Received: padding={padding!r}, "
                         f"output_padding={output_padding!r}.")
    for axis in range(2):
        if out_pad[axis] >= max(stride[axis], dilation[axis]):
            raise ValueError(f"{op}: output_padding must be smaller than the stride or the dilation along each axis. "
                             f"Received: output_padding={output_padding!r}, stride={stride}, dilation={dilation}.")
    out_hw = tuple((x_shape[1 + a] - 1) * stride[a] - pads[2 * a] - pads[2 * a + 1]
                   + dilation[a] * (w_shape[a] - 1) + out_pad[a] + 1 for a in range(2))
    if min(out_hw) <= 0:
        raise ValueError(f"{op}: the padding is larger than the output, so the computed output size would be zero or "
                         f"negative. Received: input (height, width)={tuple(x_shape[1:3])}, kernel={(kh, kw)}, "
                         f"stride={stride}, padding={padding!r}; output would be {out_hw}.")
    return stride, pads, dilation, groups, out_hw


# --------------------------------------------------------------------------- pooling
def _pool_args(x, kernel_size, stride, padding, op, dilation=1, ceil_mode=False, count_include_pad=True):
    x = _nhwc(x, "x", op)
    return (x,) + cached(_pool_plan, x.shape[1:3], hashable(kernel_size), hashable(stride),
                         hashable(padding), hashable(dilation), bool(ceil_mode), bool(count_include_pad), op)


def _ceil_extra(size, kernel, stride, before, after, dilation):
    """Rows (or columns) to add after the input so that floor division gives ceil_mode's output
    size: ceil((size + before + after - dilation * (kernel - 1) - 1) / stride) + 1, less one when the
    last window would start past the input and its leading padding (PyTorch's and ONNX's rule)."""
    span = size + before + after - dilation * (kernel - 1) - 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + before:
        out -= 1
    return max(0, (out - 1) * stride - span)


@functools.lru_cache(maxsize=1024)
def _pool_plan(in_hw, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, op):
    """Validate a pooling window; return (kernel, stride, pads, out_hw, dilation, divisor). Called
    through :func:`striate.ops.geometry.cached` (cached). ``pads`` include the rows ceil_mode adds at the bottom/right;
    ``divisor`` is None (every window averages over kh*kw cells) or the per-window count."""
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else positive_pair(stride, "stride")
    dilation = positive_pair(dilation, "dilation")
    pads, out_hw = conv_geometry(in_hw, kernel, stride, padding, dilation, op)
    # The padding rule: every window must reach the input with at least one tap, i.e. a pad of at
    # most dilation * (kernel - 1) cells per side (ONNX's "pad smaller than the kernel"); more would
    # make windows of padding only (-inf for max pooling, 0 / 0 for an average without the pads).
    # PyTorch is stricter (pad <= kernel // 2); 'same' padding always satisfies both.
    reach = (dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1))
    if max(pads[:2]) > reach[0] or max(pads[2:]) > reach[1]:
        raise ValueError(
            f"{op}: padding must not exceed dilation * (kernel_size - 1) = {reach} per side, or some windows "
            f"would cover only padding. Received: kernel_size={kernel}, dilation={dilation}, padding={padding!r} "
            f"(top, bottom, left, right = {pads}). Use smaller padding or padding='same'."
        )
    extra = (0, 0)
    if ceil_mode:
        extra = tuple(_ceil_extra(in_hw[i], kernel[i], stride[i], pads[2 * i], pads[2 * i + 1], dilation[i])
                      for i in range(2))
        pads = (pads[0], pads[1] + extra[0], pads[2], pads[3] + extra[1])
        out_hw = tuple((in_hw[i] + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                       for i in range(2))
    divisor = None
    if (not count_include_pad and any(pads)) or any(extra):
        # count the cells each window averages over: an image of ones where cells count (the input,
        # and its padding with count_include_pad), zeros in the padding that does not count
        h, w = in_hw
        counted = np.zeros((1, h + pads[0] + pads[1], w + pads[2] + pads[3], 1))
        if count_include_pad:
            counted[:, :pads[0] + h + pads[1] - extra[0], :pads[2] + w + pads[3] - extra[1]] = 1
        else:
            counted[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w] = 1
        divisor = sum(ops.offset_view(counted, i, j, stride, out_hw, dilation)
                      for i in range(kernel[0]) for j in range(kernel[1]))
        if np.all(divisor == kernel[0] * kernel[1]):
            divisor = None
    return kernel, stride, pads, out_hw, dilation, divisor


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max pooling. Padded cells are -inf, so they never win.

    Overlapping windows (stride < kernel, AlexNet's 3x3 stride 2) are supported. On ties the
    gradient goes to the first maximum in row-major window order (deterministic, as PyTorch CPU).

    Args:
        padding: as in :func:`conv2d`; at most ``dilation * (kernel_size - 1)`` per side, so that
            every window covers at least one input cell.
        dilation: int or (dh, dw): spacing between the window's taps.
        ceil_mode: round the output size up (PyTorch's and ONNX's ``ceil_mode``: torchvision's
            GoogLeNet), adding windows that hang over the bottom/right edge; a window that would
            start past the input and its leading padding is dropped.
        return_indices: also return the "switches" (Zeiler & Fergus 2014) for
            :func:`max_unpool2d`: an int64 array ``(n, oh, ow, c)`` holding, for each output, the
            input position of its window's (first) maximum as ``row * w + col`` in its image's
            ``(h, w)`` plane. These are PyTorch's indices, in NHWC order.

    Shape:
        - x: ``(n, h, w, c)``; output: ``(n, oh, ow, c)``,
          ``oh = floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1`` (``ceil`` with ceil_mode);
          ``stride`` defaults to ``kernel_size``.

    Returns:
        The pooled Tensor, or ``(pooled, indices)`` with ``return_indices``.
    """
    x, kernel, stride, pads, out_hw, dilation, _ = _pool_args(x, kernel_size, stride, padding, "max_pool2d",
                                                              dilation, ceil_mode)
    fn = ops.MaxPool2dOp(kernel, stride, pads, out_hw, dilation=dilation, return_indices=bool(return_indices))
    y = fn.apply(x)
    return (y, fn.indices) if return_indices else y


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """Max unpooling: the partial inverse of :func:`max_pool2d` (Zeiler & Fergus 2014's deconvnet,
    sec. 2.1). Each value returns to where its window's maximum was; every other cell is 0.

    Where overlapping windows (stride < kernel) share a maximum, their values are added, as max
    pooling's backward adds their gradients: unpooling is that backward pass. (PyTorch's
    ``max_unpool2d`` keeps one of them; without overlap the two agree.)

    Args:
        x: pooled maps (or what a deconvnet projects back through them), NHWC.
        indices: the switches of ``max_pool2d(..., return_indices=True)``, x's shape.
        kernel_size, stride, padding: the pooling's (stride defaults to kernel_size; padding an
            int or (ph, pw)), which give the output size when ``output_size`` is None.
        output_size: ``(h, w)`` (or ``(n, h, w, c)``) of the pooling's input: needed when the
            pooling dropped rows or columns (a 7-row input pooled by 2).

    Shape:
        - x, indices: ``(n, oh, ow, c)``; output: ``(n, h, w, c)`` with
          ``h = (oh - 1) * sh - 2 * ph + kh`` unless ``output_size`` is given (likewise w).

    Example::

        >>> y, switches = F.max_pool2d(np.random.rand(1, 8, 8, 3), 2, return_indices=True)
        >>> F.max_unpool2d(y, switches, 2).shape
        (1, 8, 8, 3)
    """
    op = "max_unpool2d"
    x = _nhwc(x, "x", op)
    idx = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if idx.shape != x.shape or idx.dtype.kind not in "iu":
        raise ValueError(f"{op}: indices must be integers of x's shape {x.shape}, as max_pool2d(..., "
                         f"return_indices=True) returns them. Received: indices.shape={idx.shape}, dtype={idx.dtype}.")
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else positive_pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if output_size is None:
        out_hw = ((x.shape[1] - 1) * stride[0] - 2 * ph + kernel[0], (x.shape[2] - 1) * stride[1] - 2 * pw + kernel[1])
    else:
        size = tuple(output_size)
        out_hw = positive_pair(size[-3:-1] if len(size) == 4 else size, "output_size")
    if min(out_hw) < 1 or (idx.size and (idx.min() < 0 or idx.max() >= out_hw[0] * out_hw[1])):
        raise ValueError(f"{op}: indices must lie in [0, h * w) of the output (h, w) = {out_hw}. Received: "
                         f"min={idx.min() if idx.size else None}, max={idx.max() if idx.size else None}. "
                         "Give output_size, the (h, w) of the pooling's input.")
    return ops.MaxUnpool2dOp(idx.astype(np.int64, copy=False), out_hw).apply(x)


def relu_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """``max_pool2d(relu(x), ...)`` as one op, with the same values and gradients.

    ReLU and max pooling commute, so this computes relu(max_pool2d(x)): the ReLU touches only
    the pooled output and relu(x) is never made (:class:`striate.nn.Sequential` runs a ReLU
    layer followed by a MaxPool2D layer this way).

    Shape: as :func:`max_pool2d`.
    """
    x, kernel, stride, pads, out_hw, dilation, _ = _pool_args(x, kernel_size, stride, padding, "relu_max_pool2d",
                                                              dilation, ceil_mode)
    return ops.MaxPool2dOp(kernel, stride, pads, out_hw, relu=True, dilation=dilation).apply(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               dilation=1) -> Tensor:
    """Average pooling.

    Args:
        count_include_pad: True (default, PyTorch's default): padded cells count as zeros in the
            mean. False: each window averages over its input cells only — what Keras and TensorFlow
            compute for ``padding='same'`` average pooling, and ONNX's default.
        ceil_mode, dilation, padding: as in :func:`max_pool2d`; the windows ceil_mode adds average
            over their cells inside the (padded) input, as in PyTorch.

    Shape:
        - x: ``(n, h, w, c)``; output: ``(n, oh, ow, c)``, same formula as :func:`max_pool2d`.
    """
    x, kernel, stride, pads, out_hw, dilation, divisor = _pool_args(
        x, kernel_size, stride, padding, "avg_pool2d", dilation, ceil_mode, count_include_pad)
    return ops.AvgPool2dOp(kernel, stride, pads, out_hw, dilation, divisor).apply(x)


def global_avg_pool2d(x) -> Tensor:
    """Mean over the spatial axes (NiN, GoogLeNet, ResNet heads).

    Shape:
        - x: ``(n, h, w, c)``; output: ``(n, c)``.
    """
    x = _nhwc(x, "x", "global_avg_pool2d")
    return x.mean(axis=(1, 2))


def global_max_pool2d(x) -> Tensor:
    """Maximum over the spatial axes (the gradient goes to the maximum; split evenly among ties).

    Shape:
        - x: ``(n, h, w, c)``; output: ``(n, c)``.
    """
    x = _nhwc(x, "x", "global_max_pool2d")
    return x.max(axis=(1, 2))


# --------------------------------------------------------------------------- resizing
def upsample(x, scale_factor=None, size=None, mode: str = "nearest", align_corners: bool = False) -> Tensor:
    """Resize feature maps by interpolation, as PyTorch's ``F.interpolate`` (2-D, NHWC).

    Args:
        x: input, NHWC.
        scale_factor: number or (sh, sw) > 0; the output is ``floor(in * scale)``. Give this or
            ``size``, not both.
        size: int or (oh, ow): the output's height and width.
        mode: ``'nearest'``: output pixel p copies input ``min(floor(p * s), in - 1)``;
            ``'bilinear'``: weighted mean of the two nearest input pixels along each axis.
            s is ``1 / scale_factor`` when a scale was given, else ``in / out``.
        align_corners: bilinear only. False (default): pixels are areas, and output pixel p samples
            input coordinate ``(p + 0.5) * s - 0.5``. True: the centres of the corner pixels meet,
            and p samples ``p * (in - 1) / (out - 1)``.

    Shape:
        - x: ``(n, h, w, c)``; output: ``(n, oh, ow, c)``, ``oh = size[0]`` or
          ``floor(h * scale_factor[0])`` (likewise ``ow``).

    Example::

        >>> F.upsample(np.zeros((1, 7, 7, 512), np.float32), scale_factor=2).shape
        (1, 14, 14, 512)
    """
    op = "upsample"
    x = _nhwc(x, "x", op)
    taps_h, taps_w, scales = cached(_upsample_plan, x.shape[1:3], hashable(scale_factor), hashable(size), mode,
                                    align_corners)
    return ops.UpsampleOp(taps_h, taps_w, mode, bool(align_corners), scales).apply(x)


def _upsample_args(scale_factor, size, mode, align_corners, op):
    """Check upsample's settings; return ``(scales, size)``: a pair of floats and None, or None and
    a pair of ints."""
    if (scale_factor is None) == (size is None):
        raise ValueError(f"{op}: give exactly one of scale_factor and size. "
                         f"Received: scale_factor={scale_factor!r}, size={size!r}.")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear'. Received: mode={mode!r}.")
    if align_corners and mode == "nearest":
        raise ValueError(f"{op}: align_corners applies to mode='bilinear' only. Received: mode='nearest', "
                         "align_corners=True.")
    if size is not None:
        return None, positive_pair(size, "size")
    values = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) and len(scale_factor) == 2 \
        else (scale_factor,) * 2
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{op}: scale_factor must be a number > 0 or a pair of them. "
                         f"Received: scale_factor={scale_factor!r}.")
    return tuple(float(v) for v in values), None


@functools.lru_cache(maxsize=256)
def _upsample_plan(in_hw, scale_factor, size, mode, align_corners):
    """Validate an upsample call; return the interpolation taps of rows and of columns, and the
    scale factors (None when a size was given)."""
    op = "upsample"
    scales, out_hw = _upsample_args(scale_factor, size, mode, align_corners, op)
    if scales is not None:
        out_hw = tuple(int(np.floor(in_hw[a] * scales[a])) for a in range(2))
        if min(out_hw) < 1:
            raise ValueError(f"{op}: the output would be empty: floor({tuple(in_hw)} * {scales}) = {out_hw}. "
                             f"Received: scale_factor={scale_factor!r}. Use a larger scale_factor or give size.")
    given = scales or (None, None)
    if mode == "nearest":
        return (*(ops.resize.nearest_taps(in_hw[a], out_hw[a], given[a]) for a in range(2)), scales)
    return (*(ops.resize.bilinear_taps(in_hw[a], out_hw[a], bool(align_corners), given[a]) for a in range(2)), scales)


# --------------------------------------------------------------------------- dense and shape ops
def linear(x, w, b=None) -> Tensor:
    """Fully connected layer ``y = x @ w + b``.

    Shape:
        - x: ``(n, in_features)``; w: ``(in_features, out_features)``; b: ``(out_features,)``
        - output: ``(n, out_features)``
    """
    op = "linear"
    x, w = _tensor(x, "x", op), _tensor(w, "w", op)
    if x.ndim != 2:
        raise ValueError(
            f"{op}: expected 2D input (batch, features), got shape {x.shape}. "
            "Flatten feature maps first with F.flatten(x)."
        )
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise ValueError(
            f"{op}: w must have shape (in_features, out_features) with in_features = x.shape[1] = "
            f"{x.shape[1]}. Received: w.shape={w.shape}."
        )
    _same_dtype(x, w, "x and w", op)
    if b is None:
        return ops.LinearOp().apply(x, w)
    b = _tensor(b, "b", op)
    if b.shape != (w.shape[1],):
        raise ValueError(f"{op}: bias must have shape ({w.shape[1]},). Received: b.shape={b.shape}.")
    _same_dtype(x, b, "x and b", op)
    return ops.LinearOp().apply(x, w, b)


def flatten(x) -> Tensor:
    """Flatten every axis but the batch axis.

    Shape:
        - x: ``(n, *dims)``; output: ``(n, prod(dims))`` (NHWC order: channels vary fastest).
    """
    x = _tensor(x, "x", "flatten")
    return x.reshape(x.shape[0], -1)


def concat(tensors, axis: int = -1) -> Tensor:
    """Concatenate along ``axis`` (default: channels in NHWC, as GoogLeNet's inception module).

    Shape:
        - inputs agree on every axis but ``axis``; output's ``axis`` is the sum of theirs.
    """
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise ValueError("concat: tensors must be a non-empty list of Tensors.")
    ts = [_tensor(t, f"tensors[{i}]", "concat") for i, t in enumerate(tensors)]
    first = ts[0]
    for i, t in enumerate(ts[1:], 1):
        _same_dtype(first, t, "all tensors", "concat")
        rest = lambda s: s[:axis % len(s)] + s[axis % len(s) + 1:]  # noqa: E731
        if t.ndim != first.ndim or rest(t.shape) != rest(first.shape):
            raise ValueError(
                f"concat: all shapes must match except along axis {axis}. "
                f"Received: tensors[0].shape={first.shape}, tensors[{i}].shape={t.shape}."
            )
    return ops.ConcatOp(axis).apply(*ts)


# --------------------------------------------------------------------------- activations
def relu(x) -> Tensor:
    """max(x, 0), element-wise. Shape: any; output has the input's shape."""
    return ops.ReLUOp().apply(_tensor(x, "x", "relu"))


def add_relu(a, b) -> Tensor:
    """``relu(a + b)`` as one op, with the same values and gradients: the end of a residual block
    (the ResNet blocks run their last sum and ReLU this way). a and b must have one shape.

    Shape: any (a and b the same); output has their shape.
    """
    a, b = _tensor(a, "a", "add_relu"), _tensor(b, "b", "add_relu")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"add_relu: a and b must have the same shape and dtype (no broadcasting). "
                         f"Received: {a.shape} {a.dtype} and {b.shape} {b.dtype}; use relu(a + b) to broadcast.")
    return ops.AddReLUOp().apply(a, b)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x. Shape: any; output has the input's shape."""
    return ops.LeakyReLUOp(negative_slope).apply(_tensor(x, "x", "leaky_relu"))


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow. Shape: any; output has the input's shape."""
    return ops.SigmoidOp().apply(_tensor(x, "x", "sigmoid"))


def tanh(x) -> Tensor:
    """Hyperbolic tangent. Shape: any; output has the input's shape."""
    return ops.TanhOp().apply(_tensor(x, "x", "tanh"))


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis`` (shifted by the max: no overflow).

    Shape: any; output has the input's shape and sums to 1 along ``axis``.
    """
    return ops.SoftmaxOp(axis).apply(_tensor(x, "x", "softmax"))


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed stably as x - max - log(sum(exp(x - max))).

    Shape: any; output has the input's shape.
    """
    return ops.LogSoftmaxOp(axis).apply(_tensor(x, "x", "log_softmax"))


# --------------------------------------------------------------------------- regularisation, normalisation
def dropout(x, rate: float, training: bool = True, rng=None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014): zero each unit with probability ``rate`` and scale
    the survivors by 1 / (1 - rate) in training; identity in evaluation.

    Args:
        rng: a ``numpy.random.Generator`` or seed; default: striate's default generator.

    Shape: any; output has the input's shape.
    """
    x = _tensor(x, "x", "dropout")
    rate = check_rate(rate, "rate")
    if not training or rate == 0.0:
        return x
    return ops.DropoutOp(rate, check_random_state(rng)).apply(x)


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every axis but the last (channels).

    In training the batch's statistics normalise ``x`` and the running statistics (arrays, updated
    in place) move towards them: ``running = (1 - momentum) * running + momentum * batch`` (the
    variance with Bessel's correction). In evaluation the running statistics are used.

    Shape:
        - x: ``(n, h, w, c)`` or ``(n, c)``; gamma, beta, running_mean, running_var: ``(c,)``
        - output: same as x.
    """
    return _batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps, "batch_norm", False)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, training: bool, momentum: float = 0.1,
                    eps: float = 1e-5) -> Tensor:
    """``relu(batch_norm(x, ...))`` as one op, with the same values and gradients: the ReLU is
    applied in batch norm's own pass, and its gradient mask in batch norm's backward passes
    (:class:`striate.nn.Sequential` runs a BatchNorm layer followed by a ReLU layer this way).

    Arguments and shapes: as :func:`batch_norm`.
    """
    return _batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps, "batch_norm_relu", True)


def _batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps, op, relu) -> Tensor:
    x = _tensor(x, "x", op)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: expected (batch, channels) or (batch, height, width, channels) input, got shape {x.shape}.")
    c = x.shape[-1]
    gamma, beta = _tensor(gamma, "gamma", op), _tensor(beta, "beta", op)
    for name, t in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for {c} channels. Received: {name}.shape={tuple(t.shape)}.")
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    if not training and (rm is None or rv is None):
        raise ValueError(f"{op}: evaluation mode needs running_mean and running_var.")
    if training and x.size // c < 2:
        raise ValueError(
            f"{op}: training needs more than one value per channel to compute a variance. "
            f"Received: x.shape={x.shape}. Use a batch of 2 or more, or evaluation mode."
        )
    return ops.BatchNormOp(rm, rv, bool(training), float(momentum), float(eps), relu).apply(x, gamma, beta)


def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> Tensor:
    """Local response normalisation across channels (AlexNet, Krizhevsky et al. 2012, sec. 3.3).

    ``b_c = a_c / (k + alpha / size * sum_{c'} a_{c'}^2) ** beta`` with the sum over channels
    ``c - size // 2 .. c + (size - 1) // 2`` (Caffe/PyTorch convention: alpha is divided by size).

    Shape: ``(n, h, w, c)`` (or any array with channels last); output has the input's shape.
    """
    x = _tensor(x, "x", "local_response_norm")
    check_int(size, "size", owner="local_response_norm")
    return ops.LocalResponseNormOp(int(size), float(alpha), float(beta), float(k)).apply(x)


# --------------------------------------------------------------------------- losses
def cross_entropy(logits, labels, label_smoothing: float = 0.0, weight=None, ignore_index=None,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from raw scores and integer class labels, per row or per pixel.

    Args:
        logits: unnormalised scores, classes on the last axis.
        labels: integer class indices in ``[0, num_classes)`` (or ``ignore_index``).
        label_smoothing: eps in ``[0, 1)``: targets become (1 - eps) * one-hot + eps / num_classes.
        weight: optional ``(num_classes,)`` class weights >= 0 (rare classes weigh more).
        ignore_index: a label value that counts nowhere (255 for segmentation masks); None: none.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (one loss per label).

    The mean follows PyTorch: a weighted mean, ``sum_i w[y_i] loss_i / sum_i w[y_i]`` over the
    labels that are not ignored (a plain mean without weights). Where every label is ignored the
    mean is 0 with a zero gradient (PyTorch gives NaN).

    Shape:
        - logits: ``(n, num_classes)`` with labels ``(n,)``, or per pixel ``(n, h, w,
          num_classes)`` with labels ``(n, h, w)``; output: scalar, or labels' shape with 'none'.

    Example::

        >>> logits, masks = np.zeros((2, 8, 8, 11), np.float32), np.full((2, 8, 8), 255)
        >>> F.cross_entropy(logits, masks, ignore_index=255, reduction="none").shape
        (2, 8, 8)
    """
    op = "cross_entropy"
    logits = _tensor(logits, "logits", op)
    if logits.ndim < 2:
        raise ValueError(f"{op}: expected logits of shape (batch, num_classes), got shape {logits.shape}. "
                         "Per-pixel logits (batch, height, width, num_classes) take labels (batch, height, width).")
    y = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: labels must be integer class indices. Received: dtype={y.dtype}. "
            "For one-hot or soft targets, convert with labels.argmax(axis=1)."
        )
    if y.shape != logits.shape[:-1]:
        raise ValueError(
            f"{op}: labels must have one entry per row of logits. Received: logits.shape={logits.shape}, "
            f"labels.shape={y.shape}; labels' shape must be logits.shape[:-1] = {logits.shape[:-1]}."
        )
    k = logits.shape[-1]
    y = y.reshape(-1)
    valid = None if ignore_index is None else y != ignore_index
    counted = y if valid is None else y[valid]
    if counted.size and (counted.min() < 0 or counted.max() >= k):
        ignoring = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        raise ValueError(f"{op}: labels must lie in [0, {k}) for {k} classes{ignoring}. "
                         f"Received: min={counted.min()}, max={counted.max()}.")
    if valid is not None:
        y = np.where(valid, y, 0)  # any class: those rows weigh 0
        valid = valid.astype(logits.dtype)
    fn = ops.CrossEntropyOp(y, check_rate(label_smoothing, "label_smoothing"),
                            _class_weights(weight, k, logits.dtype, op), valid, _reduction(reduction, op))
    out = fn.apply(logits.reshape(-1, k) if logits.ndim > 2 else logits)
    return out.reshape(*logits.shape[:-1]) if reduction == "none" and logits.ndim > 2 else out


def _reduction(reduction, op):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none'. Received: reduction={reduction!r}.")
    return reduction


def _class_weights(weight, k, dtype, op):
    """Class weights as a ``(k,)`` array of ``dtype`` (constants: no gradient), or None."""
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w.shape != (k,) or w.dtype.kind not in "iuf" or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"{op}: weight must hold one finite weight >= 0 per class, shape ({k},). "
                         f"Received: weight={weight!r}.")
    return w.astype(dtype)


def _pair_loss_args(a, b, names, op):
    a = _tensor(a, names[0], op)
    b = _tensor(b, names[1], op)
    if a.shape != b.shape:
        raise ValueError(f"{op}: {names[0]} and {names[1]} must have the same shape. Received: {a.shape} and {b.shape}.")
    _same_dtype(a, b, f"{names[0]} and {names[1]}", op)
    return a, b


def mse_loss(pred, target) -> Tensor:
    """Mean squared error, mean over every element.

    Shape: pred and target the same shape; output: scalar.
    """
    pred, target = _pair_loss_args(pred, target, ("pred", "target"), "mse_loss")
    diff = pred - target
    return (diff * diff).mean()


def binary_cross_entropy_with_logits(logits, target) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op, mean over every element.

    Shape: logits and target (probabilities in [0, 1]) the same shape; output: scalar.
    """
    logits, target = _pair_loss_args(logits, target, ("logits", "target"), "binary_cross_entropy_with_logits")
    return ops.BinaryCrossEntropyWithLogitsOp().apply(logits, target)


def smooth_l1_loss(pred, target, beta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Smooth L1 loss (Fast R-CNN's box regression loss, Girshick 2015, eq. 3), as PyTorch's.

    Element-wise, with d = pred - target: ``0.5 d^2 / beta`` if ``|d| < beta``, else
    ``|d| - 0.5 beta``; ``beta = 0`` is the L1 loss. Quadratic near 0, so small errors get small
    gradients; linear beyond beta, so outliers do not dominate.

    Args:
        beta: >= 0, where the loss turns from quadratic to linear.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.

    Shape: pred and target the same shape; output: scalar, or their shape with 'none'.
    """
    op = "smooth_l1_loss"
    pred, target = _pair_loss_args(pred, target, ("pred", "target"), op)
    beta = check_number(beta, "beta", low=0.0, owner=op)
    return ops.SmoothL1Op(beta, 1.0, _reduction(reduction, op)).apply(pred, target)


def huber_loss(pred, target, delta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Huber's loss (1964), as PyTorch's: ``0.5 d^2`` if ``|d| <= delta``, else
    ``delta * (|d| - 0.5 delta)``, d = pred - target; equal to ``delta * smooth_l1_loss(beta=delta)``.

    Args:
        delta: > 0. reduction: ``'mean'``, ``'sum'`` or ``'none'``.

    Shape: pred and target the same shape; output: scalar, or their shape with 'none'.
    """
    op = "huber_loss"
    pred, target = _pair_loss_args(pred, target, ("pred", "target"), op)
    delta = check_number(delta, "delta", low=0.0, low_open=True, owner=op)
    return ops.SmoothL1Op(delta, delta, _reduction(reduction, op)).apply(pred, target)


def sigmoid_focal_loss(logits, targets, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> Tensor:
    """Focal loss for dense detection (Lin et al. 2017, RetinaNet), as torchvision's
    ``sigmoid_focal_loss``: binary cross-entropy scaled down where the prediction is already good.

    ``loss = a_t (1 - p_t)^gamma ce`` with p = sigmoid(logits), ce the binary cross-entropy,
    ``p_t = p t + (1 - p)(1 - t)`` and ``a_t = alpha t + (1 - alpha)(1 - t)``. The many easy
    background anchors then add little to the loss; RetinaNet sums it and divides by the number of
    anchors assigned to objects.

    Args:
        logits: raw scores; targets: the same shape, 1 for the class present, 0 otherwise.
        alpha: weight of the positives in [0, 1], or < 0 for no weighting.
        gamma: >= 0; 0 is the (alpha-weighted) binary cross-entropy.
        reduction: ``'none'`` (default, as torchvision), ``'mean'`` or ``'sum'``.

    Shape: logits and targets the same shape; output: their shape, or a scalar.
    """
    op = "sigmoid_focal_loss"
    logits, targets = _pair_loss_args(logits, targets, ("logits", "targets"), op)
    alpha = check_number(alpha, "alpha", high=1.0, owner=op)
    gamma = check_number(gamma, "gamma", low=0.0, owner=op)
    return ops.SigmoidFocalLossOp(alpha, gamma, _reduction(reduction, op)).apply(logits, targets)


def heatmap_focal_loss(logits, heatmap, alpha: float = 2.0, beta: float = 4.0, reduction: str = "sum") -> Tensor:
    """The penalty-reduced focal loss of CornerNet and CenterNet (Law & Deng 2018; Zhou et al.
    2019, eq. 1), for keypoint heatmaps: with p = sigmoid(logits) and y the target heatmap (1 at an
    object's centre, a Gaussian bump around it, 0 far away)::

        loss = -(1 - p)^alpha log p                 where y = 1
        loss = -(1 - y)^beta p^alpha log(1 - p)     elsewhere

    The bump lowers the penalty for a near miss; CenterNet divides the sum by the number of objects.

    Args:
        logits: raw scores; heatmap: the same shape, values in [0, 1].
        alpha: >= 0, the focusing exponent (2 in both papers); beta: >= 0, how fast the penalty
            returns away from a centre (4).
        reduction: ``'sum'`` (default, as the papers), ``'mean'`` or ``'none'``.

    Shape: logits and heatmap the same shape, e.g. ``(n, h, w, classes)``; output: a scalar, or
    their shape.
    """
    op = "heatmap_focal_loss"
    logits, heatmap = _pair_loss_args(logits, heatmap, ("logits", "heatmap"), op)
    alpha = check_number(alpha, "alpha", low=0.0, owner=op)
    beta = check_number(beta, "beta", low=0.0, owner=op)
    low, high = (float(heatmap.data.min()), float(heatmap.data.max())) if heatmap.size else (0.0, 0.0)
    if not 0 <= low <= high <= 1:
        raise ValueError(f"{op}: heatmap values must lie in [0, 1]. Received values from {low} to {high}.")
    return ops.HeatmapFocalLossOp(alpha, beta, _reduction(reduction, op)).apply(logits, heatmap)


def dice_loss(logits, labels, smooth: float = 1.0, from_logits: bool = True, ignore_index=None) -> Tensor:
    """Multi-class soft Dice loss (Milletari et al. 2016, V-Net; Sudre et al. 2017), for segmentation.

    With p the class probabilities (softmax of the logits, or given with ``from_logits=False``)
    and q the one-hot labels, per class c over every counted pixel of the batch::

        dice_c = (2 sum p_c q_c + smooth) / (sum p_c + sum q_c + smooth)
        loss = 1 - mean_c dice_c

    It measures overlap, so a small object counts as much as the background. ``smooth`` keeps a
    class absent from both prediction and labels at dice 1 and the gradient finite.

    Args:
        logits: scores (or probabilities), classes on the last axis.
        labels: integer class indices, logits' shape without the last axis.
        smooth: > 0 (1 by default).
        from_logits: True: apply softmax over the last axis first.
        ignore_index: a label value whose pixels count nowhere (255 for masks); None: none.

    Shape:
        - logits: ``(n, h, w, num_classes)`` (or ``(n, num_classes)``); labels: ``(n, h, w)``
          (or ``(n,)``); output: scalar.
    """
    op = "dice_loss"
    logits = _tensor(logits, "logits", op)
    y = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    if logits.ndim < 2 or y.shape != logits.shape[:-1] or y.dtype.kind not in "iu":
        raise ValueError(f"{op}: expected logits (..., num_classes) and integer labels of shape logits.shape[:-1]. "
                         f"Received: logits.shape={logits.shape}, labels.shape={y.shape}, labels dtype={y.dtype}.")
    k = logits.shape[-1]
    keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    if keep.any() and (y[keep].min() < 0 or y[keep].max() >= k):
        raise ValueError(f"{op}: labels must lie in [0, {k}) for {k} classes. Received: min={y[keep].min()}, "
                         f"max={y[keep].max()}.")
    smooth = check_number(smooth, "smooth", low=0.0, low_open=True, owner=op)
    mask = keep[..., None].astype(logits.dtype)  # (..., 1): 0 at ignored pixels
    onehot = (np.where(keep, y, -1)[..., None] == np.arange(k)).astype(logits.dtype)  # (..., k)
    p = (softmax(logits) if from_logits else logits) * mask
    axes = tuple(range(logits.ndim - 1))  # every axis but the classes
    inter = (p * onehot).sum(axis=axes)  # (k,)
    dice = (2 * inter + smooth) / (p.sum(axis=axes) + onehot.sum(axis=axes) + smooth)
    return 1 - dice.mean()
