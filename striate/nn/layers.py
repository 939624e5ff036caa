"""Layers: thin Modules that hold parameters and call one functional op.

Every layer infers its input channels/features on the first call (Keras style), so models read like
the layer tables in papers: ``Conv2D(96, 11, stride=4, padding=2)``.
"""
from __future__ import annotations


import numpy as np

from .. import functional as F
from ..names import did_you_mean
from ..random import check_random_state
from ..validation import check_int, check_rate, is_int, pair, positive_pair
from . import init as initializers
from .module import Module, Parameter

_ACTIVATIONS = {
    None: None, "linear": None,
    "relu": F.relu, "leaky_relu": F.leaky_relu, "sigmoid": F.sigmoid, "tanh": F.tanh,
    "softmax": F.softmax,
}


def _activation(name):
    if callable(name):
        return name
    if name not in _ACTIVATIONS:
        known = [k for k in _ACTIVATIONS if k]
        raise ValueError(f"Unknown activation {name!r}.{did_you_mean(name, known)} Available: {', '.join(known)}.")
    return _ACTIVATIONS[name]


def _layer_rng(rng):
    """An int seed becomes the layer's own Generator once: resolving it at every call would restart
    the stream each time (the same dropout mask every step, bias drawn like the kernel)."""
    return None if rng is None else check_random_state(rng)


def _padding(padding):
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or a pair of ints. Received: padding={padding!r}.")
        return padding.lower()
    if isinstance(padding, (tuple, list)) and len(padding) == 4:  # explicit (top, bottom, left, right)
        if not all(is_int(p) and p >= 0 for p in padding):
            raise ValueError(f"padding (top, bottom, left, right) must be ints >= 0. Received: padding={padding!r}.")
        return tuple(int(p) for p in padding)
    pair(padding, "padding")
    return padding


def _conv_settings(layer, filters, kernel_size, stride, dilation, groups, use_bias, kernel_initializer,
                   bias_initializer, rng) -> None:
    """The settings Conv2D and ConvTranspose2D share, checked at the door (weights come at build)."""
    layer.filters = check_int(filters, "filters")
    layer.kernel_size = positive_pair(kernel_size, "kernel_size")
    layer.stride = positive_pair(stride, "stride")
    layer.dilation = positive_pair(dilation, "dilation")
    layer.groups = check_int(groups, "groups")
    if layer.filters % layer.groups:
        raise ValueError("The number of filters must be evenly divisible by the number of groups. "
                         f"Received: groups={groups}, filters={filters}.")
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
    layer.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
    layer.rng = _layer_rng(rng)
    layer.in_channels = None


def _check_groups(in_channels: int, groups: int) -> None:
    if in_channels % groups:
        raise ValueError(
            "The number of input channels must be evenly divisible by the number of groups. "
            f"Received: groups={groups}, input channels={in_channels}."
        )


class Conv2D(Module):
    """2-D convolution layer: ``filters`` kernels of ``kernel_size`` sliding over the input.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        stride, padding, dilation, groups: as in :func:`striate.functional.conv2d`.
        use_bias: add a learned bias per filter.
        activation: optional name ('relu', ...) or callable applied to the output.
        kernel_initializer, bias_initializer: names ('he_normal', 'glorot_uniform', 'zeros'),
            numbers (constants) or initializer objects.
        in_channels: give it to create the weights now instead of at the first call.
        rng: Generator or seed for the initialisation (default: striate's default generator).

    Shape:
        - input ``(n, h, w, c)``; output ``(n, oh, ow, filters)``,
          ``oh = floor((h + pt + pb - dilation * (kh - 1) - 1) / stride) + 1``.
        - weight ``w``: ``(kh, kw, c // groups, filters)``; bias ``b``: ``(filters,)``.
        - parameters: ``kh * kw * c / groups * filters + filters`` (AlexNet conv1: 34,944).

    Example::

        >>> conv = Conv2D(96, 11, stride=4, padding=2)
        >>> conv(st.Tensor(np.zeros((1, 224, 224, 3), np.float32))).shape
        (1, 55, 55, 96)
    """

    def __init__(self, filters, kernel_size, stride=1, padding="valid", dilation=1, groups=1,
                 use_bias=True, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", in_channels=None, rng=None):
        super().__init__()
        _conv_settings(self, filters, kernel_size, stride, dilation, groups, use_bias, kernel_initializer,
                       bias_initializer, rng)
        self.padding = _padding(padding)
        self.activation = _activation(activation)
        self.w = None
        self.b = None
        if in_channels is not None:
            self._build(check_int(in_channels, "in_channels"), np.float32)

    def _build(self, in_channels, dtype):
        _check_groups(in_channels, self.groups)
        kh, kw = self.kernel_size
        self.in_channels = in_channels
        self.w = Parameter(self.kernel_initializer((kh, kw, in_channels // self.groups, self.filters), dtype, self.rng))
        if self.use_bias:
            self.b = Parameter(self.bias_initializer((self.filters,), dtype, self.rng))

    def forward(self, x):
        if self.w is None:
            x = F._nhwc(x, "x", "Conv2D")
            self._build(x.shape[-1], x.dtype)
        y = F.conv2d(x, self.w, self.b, self.stride, self.padding, self.dilation, self.groups)
        return self.activation(y) if self.activation else y

    _head_rank = 1  # Module.replace_head: a conv heads a classifier that has no Dense layer (NiN)

    def _new_head(self, num_classes, rng=None):
        """A fresh conv like this one with ``num_classes`` filters (Module.replace_head)."""
        return Conv2D(num_classes, self.kernel_size, self.stride, self.padding, self.dilation, 1, self.use_bias,
                      in_channels=self.in_channels, rng=rng)

    def extra_repr(self):
        s = f"{self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s


class ConvTranspose2D(Module):
    """Transposed convolution layer (learned upsampling): the adjoint of a :class:`Conv2D` with the
    same kernel and geometry; see :func:`striate.functional.conv_transpose2d`.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        stride, padding, output_padding, dilation, groups: as in
            :func:`striate.functional.conv_transpose2d` (padding: int, (ph, pw) or
            (top, bottom, left, right)).
        use_bias: add a learned bias per filter.
        kernel_initializer, bias_initializer: as in :class:`Conv2D`; ``'bilinear'`` makes each
            channel a bilinear upsampler (needs ``filters`` equal to the input channels), FCN's
            initial upsampling: kernel ``2s``, stride ``s``, padding ``s // 2`` scales by s.
        in_channels: give it to create the weights now instead of at the first call.
        rng: Generator or seed for the initialisation.

    Shape:
        - input ``(n, h, w, c)``; output ``(n, H, W, filters)``,
          ``H = (h - 1) * stride - pt - pb + dilation * (kh - 1) + output_padding + 1``.
        - weight ``w``: ``(kh, kw, filters // groups, c)`` (the HWIO weight of the conv whose
          adjoint this is); bias ``b``: ``(filters,)``.

    Example::

        >>> up = ConvTranspose2D(21, 4, stride=2, padding=1, kernel_initializer="bilinear")
        >>> up(st.Tensor(np.zeros((1, 16, 16, 21), np.float32))).shape
        (1, 32, 32, 21)
    """

    def __init__(self, filters, kernel_size, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros", in_channels=None,
                 rng=None):
        super().__init__()
        _conv_settings(self, filters, kernel_size, stride, dilation, groups, use_bias, kernel_initializer,
                       bias_initializer, rng)
        self.padding = _transpose_padding(padding)
        self.output_padding = pair(output_padding, "output_padding")
        self.bilinear = isinstance(kernel_initializer, str) and kernel_initializer.lower() == "bilinear"
        self.w = None
        self.b = None
        if in_channels is not None:
            self._build(check_int(in_channels, "in_channels"), np.float32)

    def _build(self, in_channels, dtype):
        _check_groups(in_channels, self.groups)
        if self.bilinear and in_channels != self.filters:
            raise ValueError(
                "Bilinear initialisation upsamples each channel on its own, so filters must equal the input "
                f"channels. Received: filters={self.filters}, input channels={in_channels}."
            )
        kh, kw = self.kernel_size
        self.in_channels = in_channels
        self.w = Parameter(self.kernel_initializer((kh, kw, self.filters // self.groups, in_channels), dtype,
                                                   self.rng))
        if self.use_bias:
            self.b = Parameter(self.bias_initializer((self.filters,), dtype, self.rng))

    def forward(self, x):
        if self.w is None:
            x = F._nhwc(x, "x", "ConvTranspose2D")
            self._build(x.shape[-1], x.dtype)
        return F.conv_transpose2d(x, self.w, self.b, self.stride, self.padding, self.output_padding,
                                  self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s


def _transpose_padding(padding):
    """A transposed conv's padding: an int, (ph, pw) or (top, bottom, left, right), ints >= 0."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return _padding(padding)
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0. Received: padding={padding!r}.")
    return ph, pw


class Dense(Module):
    """Fully connected layer ``y = x @ w + b``.

    Args:
        units: output features. Other arguments as in :class:`Conv2D`; ``in_features`` builds now.

    Shape:
        - input ``(n, in_features)``; output ``(n, units)``.
        - weight ``w``: ``(in_features, units)``; bias ``b``: ``(units,)``.
    """

    def __init__(self, units, use_bias=True, activation=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", in_features=None, rng=None):
        super().__init__()
        self.units = check_int(units, "units")
        self.use_bias = bool(use_bias)
        self.activation = _activation(activation)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.rng = _layer_rng(rng)
        self.in_features = None
        self.w = None
        self.b = None
        if in_features is not None:
            self._build(check_int(in_features, "in_features"), np.float32)

    def _build(self, in_features, dtype):
        self.in_features = in_features
        self.w = Parameter(self.kernel_initializer((in_features, self.units), dtype, self.rng))
        if self.use_bias:
            self.b = Parameter(self.bias_initializer((self.units,), dtype, self.rng))

    def forward(self, x):
        if self.w is None:
            x = F._tensor(x, "x", "Dense")
            if x.ndim != 2:
                raise ValueError(
                    f"Dense: expected 2D input (batch, features), got shape {x.shape}. "
                    "Put a Flatten() layer before it."
                )
            self._build(x.shape[-1], x.dtype)
        y = F.linear(x, self.w, self.b)
        return self.activation(y) if self.activation else y

    _head_rank = 2  # Module.replace_head: the last Dense layer is a classifier's head

    def _new_head(self, num_classes, rng=None):
        """A fresh Dense layer like this one with ``num_classes`` units (Module.replace_head)."""
        return Dense(num_classes, use_bias=self.use_bias, in_features=self.in_features, rng=rng)

    def extra_repr(self):
        return f"{self.units}"


class _Pool(Module):
    def __init__(self, pool_size=2, stride=None, padding="valid", dilation=1, ceil_mode=False):
        super().__init__()
        self.pool_size = positive_pair(pool_size, "pool_size")
        self.stride = self.pool_size if stride is None else positive_pair(stride, "stride")
        self.padding = _padding(padding)
        self.dilation = positive_pair(dilation, "dilation")
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        s = f"{self.pool_size}, stride={self.stride}, padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2D(_Pool):
    """Max pooling over ``pool_size`` windows (stride defaults to ``pool_size``); ``dilation`` and
    ``ceil_mode`` as in :func:`striate.functional.max_pool2d`.

    Shape: ``(n, h, w, c)`` -> ``(n, oh, ow, c)``, ``oh = floor((h + pt + pb - dh * (kh - 1) - 1) / stride) + 1``.
    """

    def forward(self, x):
        return F.max_pool2d(x, self.pool_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2D(_Pool):
    """Average pooling. ``count_include_pad=True`` (default): padded cells count as zeros;
    False: Keras/TensorFlow's average over the window's input cells. Shape as :class:`MaxPool2D`."""

    def __init__(self, pool_size=2, stride=None, padding="valid", dilation=1, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(pool_size, stride, padding, dilation, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.pool_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.dilation)


class Upsample(Module):
    """Resize by interpolation: :func:`striate.functional.upsample` (PyTorch's ``nn.Upsample``).

    Args:
        scale_factor: number or (sh, sw); or ``size``: int or (oh, ow). Exactly one of them.
        mode: ``'nearest'`` or ``'bilinear'``; align_corners: bilinear only.

    Shape: ``(n, h, w, c)`` -> ``(n, oh, ow, c)``, ``oh = size[0]`` or ``floor(h * scale_factor[0])``.

    Example::

        >>> Upsample(scale_factor=2, mode="bilinear")(st.Tensor(np.zeros((1, 8, 8, 3), np.float32))).shape
        (1, 16, 16, 3)
    """

    def __init__(self, scale_factor=None, size=None, mode="nearest", align_corners=False):
        super().__init__()
        self.scale_factor, self.size, self.mode, self.align_corners = scale_factor, size, mode, bool(align_corners)
        F._upsample_args(scale_factor, size, mode, self.align_corners, "Upsample")  # refused now, not at the first call

    def forward(self, x):
        return F.upsample(x, self.scale_factor, self.size, self.mode, self.align_corners)

    def extra_repr(self):
        s = f"scale_factor={self.scale_factor!r}" if self.size is None else f"size={self.size!r}"
        return s + f", mode={self.mode!r}" + (", align_corners=True" if self.align_corners else "")


class GlobalAvgPool2D(Module):
    """Mean over height and width. Shape: ``(n, h, w, c)`` -> ``(n, c)``."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class GlobalMaxPool2D(Module):
    """Maximum over height and width. Shape: ``(n, h, w, c)`` -> ``(n, c)``."""

    def forward(self, x):
        return F.global_max_pool2d(x)


class Flatten(Module):
    """Flatten all but the batch axis. Shape: ``(n, h, w, c)`` -> ``(n, h * w * c)``."""

    def forward(self, x):
        return F.flatten(x)


class Identity(Module):
    def forward(self, x):
        return x


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        return F.softmax(x, self.axis)


class Dropout(Module):
    """Inverted dropout with probability ``rate`` in training; identity in evaluation."""

    def __init__(self, rate=0.5, rng=None):
        super().__init__()
        self.rate = check_rate(rate, "rate")
        self.rng = _layer_rng(rng)

    def forward(self, x):
        return F.dropout(x, self.rate, self.training, self.rng)

    def extra_repr(self):
        return f"rate={self.rate}"


class BatchNorm(Module):
    """Batch normalisation of the last (channel) axis, for conv ``(n, h, w, c)`` or dense ``(n, c)``.

    Parameters gamma (ones) and beta (zeros); buffers running_mean (zeros) and running_var (ones).
    ``momentum`` follows PyTorch: running = (1 - momentum) * running + momentum * batch.

    Shape: input and output the same, ``(n, h, w, c)`` or ``(n, c)``; parameters ``(c,)``.
    """

    def __init__(self, momentum=0.1, eps=1e-5, num_features=None):
        super().__init__()
        self.momentum, self.eps = float(momentum), float(eps)
        self.num_features = None
        self.gamma = None
        self.beta = None
        self.register_buffer("running_mean", None)
        self.register_buffer("running_var", None)
        if num_features is not None:
            self._build(check_int(num_features, "num_features"), np.float32)

    def _build(self, c, dtype):
        self.num_features = c
        self.gamma = Parameter(np.ones(c, dtype=dtype))
        self.beta = Parameter(np.zeros(c, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(c, dtype=dtype))
        self.register_buffer("running_var", np.ones(c, dtype=dtype))

    def forward(self, x):
        return self.normalize(x)

    def eval_affine(self):
        """(scale, shift), float64 (c,): evaluation mode's batch norm as the affine map
        ``z * scale + shift``, scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale."""
        scale = self.gamma.data.astype(np.float64) / np.sqrt(self.running_var.astype(np.float64) + self.eps)
        return scale, self.beta.data - self.running_mean * scale

    def normalize(self, x, relu: bool = False):
        """This layer's batch norm of ``x``; with ``relu``, followed by a ReLU in the same op
        (:func:`F.batch_norm_relu`, what :mod:`striate.nn.fusion` calls)."""
        if self.gamma is None:
            x = F._tensor(x, "x", "BatchNorm")
            self._build(x.shape[-1], x.dtype)
        # a frozen layer (trainable=False) normalises with its running statistics, even in training
        fn = F.batch_norm_relu if relu else F.batch_norm
        return fn(x, self.gamma, self.beta, self.running_mean, self.running_var,
                  self.training and self.trainable, self.momentum, self.eps)


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet defaults: size 5, alpha 1e-4, beta 0.75, k 2)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
