"""Weight initialisers, chosen by name or passed as objects.

Fans of a weight: dense ``(in, out)`` has fan_in = in, fan_out = out; a conv kernel HWIO
``(kh, kw, cin_per_group, out)`` has fan_in = kh*kw*cin_per_group and fan_out = kh*kw*out.

* Glorot/Xavier (Glorot & Bengio 2010): variance 2 / (fan_in + fan_out) — Keras' default.
* He/Kaiming (He et al. 2015): variance 2 / fan_in — made for ReLU networks.
* ``Normal(std=0.01)`` and ``Constant(1.0)``: AlexNet's weights and its biases in conv2, 4, 5 and
  the dense layers (Krizhevsky et al. 2012, sec. 5).
"""
from __future__ import annotations

import math

import numpy as np

from ..names import did_you_mean
from ..random import check_random_state


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a dense ``(in, out)`` or conv HWIO ``(kh, kw, cin, out)`` weight."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return receptive * shape[-2], receptive * shape[-1]


def _normal(rng, mean, std, shape, dtype):
    """Gaussian draws made directly in float32 when asked: several times faster than float64 + cast
    (VGG-16 has 138M weights; ``benchmarks/notes.md``)."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    w = rng.standard_normal(shape, dtype=draw_dtype)
    w *= std
    w += mean
    return w.astype(dtype, copy=False)


def _uniform(rng, limit, shape, dtype):
    """Uniform on [-limit, limit), drawn in the target float dtype."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    w = rng.random(shape, dtype=draw_dtype)
    w *= 2 * limit
    w -= limit
    return w.astype(dtype, copy=False)


class Initializer:
    """Callable ``init(shape, dtype, rng) -> array``."""

    def __call__(self, shape, dtype=np.float32, rng=None):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=np.float32, rng=None):
        return np.full(shape, self.value, dtype=dtype)


class Normal(Initializer):
    """Gaussian with the given mean and standard deviation (AlexNet: std=0.01)."""

    def __init__(self, std=0.01, mean=0.0):
        self.std, self.mean = std, mean

    def __call__(self, shape, dtype=np.float32, rng=None):
        return _normal(check_random_state(rng), self.mean, self.std, shape, dtype)


class Uniform(Initializer):
    def __init__(self, limit=0.05):
        self.limit = limit

    def __call__(self, shape, dtype=np.float32, rng=None):
        return _uniform(check_random_state(rng), self.limit, shape, dtype)


class VarianceScaling(Initializer):
    """Zero-mean normal or uniform with variance ``scale / fan`` (fan: 'fan_in', 'fan_out', 'fan_avg')."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="normal"):
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=np.float32, rng=None):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(fan, 1)
        rng = check_random_state(rng)
        if self.distribution == "normal":
            return _normal(rng, 0.0, math.sqrt(variance), shape, dtype)
        # uniform on [-limit, limit] has variance limit^2 / 3
        return _uniform(rng, math.sqrt(3.0 * variance), shape, dtype)


class Bilinear(Initializer):
    """Bilinear interpolation kernels, one per channel: a transposed convolution of stride s with a
    ``2s x 2s`` kernel (padding ``s // 2``) so initialised upsamples by s, as FCN's upsampling
    layers start (Long, Shelhamer & Darrell 2015, sec. 3.3).

    Along each axis of a kernel of size k, tap t has weight ``1 - |t - centre| / f`` with
    ``f = ceil(k / 2)`` and centre ``f - 1`` (k odd) or ``f - 0.5`` (k even). The HWIO weight
    ``(kh, kw, cg, c)`` gets the kernel at ``[:, :, i % cg, i]`` for each channel i of its last
    axis and zeros elsewhere: channel i feeds channel i only when the layer maps c channels to c
    (``groups`` 1 or c).
    """

    def __call__(self, shape, dtype=np.float32, rng=None):
        if len(shape) != 4:
            raise ValueError(f"The bilinear initializer is for 4D conv kernels (kh, kw, in, out). Received: shape={shape}.")
        kh, kw, cg, c = shape
        kernel = np.outer(_bilinear_taps(kh), _bilinear_taps(kw))
        w = np.zeros(shape, dtype=dtype)
        channels = np.arange(c)
        w[:, :, channels % cg, channels] = kernel[:, :, None]
        return w


def _bilinear_taps(k: int):
    """The 1-D bilinear interpolation weights of a kernel of size k."""
    f = (k + 1) // 2
    centre = f - 1 if k % 2 == 1 else f - 0.5
    return 1 - np.abs(np.arange(k) - centre) / f


def glorot_uniform():
    return VarianceScaling(1.0, "fan_avg", "uniform")


def glorot_normal():
    return VarianceScaling(1.0, "fan_avg", "normal")


def he_normal():
    return VarianceScaling(2.0, "fan_in", "normal")


def he_uniform():
    return VarianceScaling(2.0, "fan_in", "uniform")


def lecun_normal():
    return VarianceScaling(1.0, "fan_in", "normal")


_BY_NAME = {
    "glorot_uniform": glorot_uniform, "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "xavier_normal": glorot_normal,
    "he_normal": he_normal, "kaiming_normal": he_normal,
    "he_uniform": he_uniform, "kaiming_uniform": he_uniform,
    "lecun_normal": lecun_normal, "bilinear": Bilinear,
    "zeros": lambda: Constant(0.0), "ones": lambda: Constant(1.0),
}


def get(spec, name: str = "initializer") -> Initializer:
    """Resolve an initializer given by name (``'he_normal'``), number (a constant) or object."""
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _BY_NAME:
            raise ValueError(f"Unknown {name} {spec!r}.{did_you_mean(spec, _BY_NAME)} "
                             f"Available: {', '.join(sorted(_BY_NAME))}.")
        return _BY_NAME[key]()
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(float(spec))
    if callable(spec):
        return spec
    raise TypeError(f"{name} must be a name, a number or a callable. Received: {spec!r}.")
