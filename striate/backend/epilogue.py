"""What a convolution does to each output channel after its sum: the bias, or, for inference, a
batch norm in evaluation mode and a ReLU fused into it.

``y = max(sum * scale + shift, floor)`` per output channel: a plain conv has no scale, its bias as
the shift and no floor. In evaluation mode a batch norm is the affine map ``(z - mean) * s + beta``
with ``s = gamma / sqrt(var + eps)``, so ``bn(conv(x) + b) = conv(x) * s + (beta + (b - mean) * s)``,
and a ReLU after it is the floor 0: the three layers' outputs come out of the conv's own pass over
its output (:func:`striate.nn.fusion.conv_bn_relu` decides when; nothing then records a gradient).
"""
from __future__ import annotations

import numpy as np

from ..tensor import get_array_module


class Epilogue:
    """Per-channel ``y = max(y * scale + shift, floor)``; ``scale``/``shift`` arrays ``(o,)`` or
    None (1 and 0), ``relu``: floor 0 instead of none."""

    def __init__(self, scale=None, shift=None, relu=False):
        self.scale, self.shift, self.relu = scale, shift, relu

    @classmethod
    def after(cls, bias, fused):
        """The epilogue of a conv with ``bias`` (or None) and ``fused`` = None or (scale, shift,
        relu) of an eval-mode batch norm (and ReLU) after it."""
        if fused is None:
            return cls(None, bias)
        scale, shift, relu = fused  # (no scale and no shift: a ReLU alone)
        if bias is not None:
            shift = bias if shift is None else shift + bias * scale
        return cls(scale, shift, relu)

    def apply(self, y):
        """In place on y (..., o); returns y."""
        if self.scale is not None:
            y *= self.scale
        if self.shift is not None:
            y += self.shift
        if self.relu:
            get_array_module(y).maximum(y, 0, out=y)
        return y

    def coefficients(self, channels, dtype):
        """(scale, shift, floor) as arrays / a scalar of ``dtype`` for the compiled loops."""
        scale = np.ones(channels, dtype) if self.scale is None else np.asarray(self.scale, dtype)
        shift = np.zeros(channels, dtype) if self.shift is None else np.asarray(self.shift, dtype)
        return scale, shift, dtype.type(0) if self.relu else dtype.type(-np.inf)
