"""Batch normalisation and local response normalisation (channels are the last axis)."""
from __future__ import annotations

import numpy as np

from ..backend import normalization as fast
from ..tensor import Function, get_array_module
from .reductions import channel_sum


def update_running_stats(running_mean, running_var, mean, var, count, momentum) -> None:
    """In place: running = (1 - momentum) * running + momentum * batch statistic, the variance
    unbiased (count / (count - 1)) as PyTorch keeps it; ``count`` values per channel."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += (momentum * count / max(count - 1, 1)) * var


class BatchNormOp(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (Ioffe & Szegedy 2015).

    Training uses the batch's mean and biased variance, and updates ``running_mean`` /
    ``running_var`` in place (the running variance gets the unbiased estimate, as PyTorch does).
    Evaluation uses the running statistics.

    Written as per-channel coefficients applied in one pass: y = (x - mean) * scale + beta with
    scale = gamma / sqrt(var + eps), and in backward gx = a * gy + k * (x - mean) + e. Statistics
    are kept in float64. The passes below are the reference; :mod:`striate.backend.normalization`
    runs them over parts of the batch on several threads, or as compiled loops.

    ``relu=True`` is batch norm followed by a ReLU, in the same passes: y = max(0, ...) forward,
    and backward the output gradient counts only where y > 0 (what the ReLU would pass back).
    """

    def __init__(self, running_mean, running_var, training, momentum, eps, relu=False):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps, self.relu = training, momentum, eps, relu

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.fast = fast.batch_norm_strategy(x, self)  # None: the NumPy passes below, whole
        count = x.size // x.shape[-1]  # values per channel
        if self.training:
            mean, var = (self.fast or self).moments(x)
            if self.running_mean is not None:
                update_running_stats(self.running_mean, self.running_var, mean, var, count, self.momentum)
        else:
            mean, var = self.running_mean.astype(np.float64), self.running_var.astype(np.float64)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        scale = (gamma * inv_std).astype(x.dtype)
        y = xp.empty_like(x)
        (self.fast or self).affine(x, mean.astype(x.dtype), scale, beta, self.relu, y)
        self.x, self.mean, self.inv_std, self.gamma, self.count = x, mean, inv_std, gamma, count
        self.relu_out = y if self.relu else None  # (the next layer's input: kept alive anyway)
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        x, mean, inv_std, n = self.x, self.mean, self.inv_std, self.count
        needs = self.needs_input_grad
        # sum(gy), sum(gy * (x - mean)), float64; with the ReLU, gy is 0 where it cut the output
        sg, sgx = (self.fast or self).grad_sums(gy, x, mean, self.relu_out)
        gbeta, ggamma = sg, sgx * inv_std
        gx = None
        if needs[0]:
            a = self.gamma * inv_std
            if not self.training:  # fixed statistics: an affine map
                gx = gy * a.astype(gy.dtype)
                if self.relu:
                    gx[self.relu_out <= 0] = 0
            else:
                # the batch statistics depend on x too, which projects out two directions:
                # gx = a * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat = (x - mean) * inv_std
                k, e = -a * inv_std * ggamma / n, -a * sg / n
                dt = gy.dtype
                gx = xp.empty_like(gy)
                (self.fast or self).grad_apply(gy, x, self.relu_out, mean.astype(dt), a.astype(dt), k.astype(dt),
                                               e.astype(dt), gx)
        dtype = self.gamma.dtype
        return gx, (ggamma.astype(dtype) if needs[1] else None), (gbeta.astype(dtype) if needs[2] else None)

    # ----------------------------------------------------------------- the NumPy passes
    # Each works on any batch slice (the backend calls them per part) and returns float64 sums.
    @staticmethod
    def moments(x):
        """Per-channel mean and biased variance of x (..., c): the mean, then the mean of squared
        deviations (two passes)."""
        count = x.size // x.shape[-1]
        mean = BatchNormOp.channel_total(x) / count
        return mean, BatchNormOp.squared_deviations(x, mean) / count

    @staticmethod
    def channel_total(x):
        return channel_sum(x).astype(np.float64)

    @staticmethod
    def shifted_sums(x, shift):
        """Per-channel sum(d) and sum(d*d) with d = x - shift, float64: moments that add up over
        several processes (a ``shift`` near the mean keeps sum(d*d)/n - mean(d)**2 from cancelling)."""
        d = x - shift.astype(x.dtype)
        return channel_sum(d).astype(np.float64), channel_sum(d * d).astype(np.float64)

    @staticmethod
    def squared_deviations(x, mean):
        d = x - mean.astype(x.dtype)
        d *= d
        return channel_sum(d).astype(np.float64)

    @staticmethod
    def affine(x, mean, scale, beta, relu, y):
        """y = (x - mean) * scale + beta (then max(y, 0) if ``relu``), written into y."""
        xp = get_array_module(x)
        xp.subtract(x, mean, out=y)
        y *= scale
        y += beta
        if relu:
            xp.maximum(y, 0, out=y)

    @staticmethod
    def grad_sums(gy, x, mean, relu_out=None):
        """(sum(g), sum(g * (x - mean))) per channel, float64: g = gy, or 0 where the fused ReLU's
        output ``relu_out`` is 0."""
        if relu_out is not None:
            gy = gy * (relu_out > 0)
        d = x - mean.astype(x.dtype)
        d *= gy
        return channel_sum(gy).astype(np.float64), channel_sum(d).astype(np.float64)

    @staticmethod
    def grad_apply(gy, x, relu_out, m, a, k, e, gx):
        """gx = a * g + k * (x - m) + e, written into gx; g as in :meth:`grad_sums`."""
        if relu_out is not None:
            gy = gy * (relu_out > 0)
        t = x - m
        t *= k
        t += e
        get_array_module(gy).multiply(gy, a, out=gx)
        gx += t


def _channel_window_sum(v, before, after):
    """s[..., j] = sum of v[..., j - before : j + after + 1] along the last axis (zeros outside).

    Loops over the window's ``before + after + 1`` offsets, never over channels.
    """
    xp = get_array_module(v)
    c = v.shape[-1]
    padded = xp.zeros(v.shape[:-1] + (c + before + after,), dtype=v.dtype)
    padded[..., before:before + c] = v
    s = padded[..., 0:c].copy()
    for k in range(1, before + after + 1):
        s += padded[..., k:k + c]
    return s


class LocalResponseNormOp(Function):
    """b_c = a_c / (k + alpha/n * sum_{c' near c} a_{c'}^2) ** beta (Krizhevsky et al. 2012, sec. 3.3).

    The window of channel c is [c - n//2, c + (n-1)//2], the Caffe/PyTorch convention.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        n = self.size
        self.x = x
        self.scale = self.k + (self.alpha / n) * _channel_window_sum(x * x, n // 2, (n - 1) // 2)
        self.scale = self.scale.astype(x.dtype, copy=False)
        self.y = x * self.scale ** -self.beta
        return self.y

    def backward(self, gy):
        n, x, scale = self.size, self.x, self.scale
        # d b_j / d a_i = [i==j] s_j^-beta - 2 beta alpha/n a_i a_j s_j^(-beta-1) for i in window(j).
        # Channels j whose window holds i are [i - (n-1)//2, i + n//2]: the window mirrored.
        t = gy * self.y / scale  # gy_j * a_j * s_j^(-beta-1)
        back = _channel_window_sum(t, (n - 1) // 2, n // 2)
        return (gy * scale ** -self.beta - (2 * self.beta * self.alpha / n) * x * back,)
