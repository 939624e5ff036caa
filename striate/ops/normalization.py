"""Batch normalisation and local response normalisation (channels are the last axis)."""
from __future__ import annotations

import numpy as np

from ..tensor import Function, get_array_module
from . import accel, parallel
from .reductions import channel_sum


class BatchNorm(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (Ioffe & Szegedy 2015).

    Training uses the batch's mean and biased variance, and updates ``running_mean`` /
    ``running_var`` in place (the running variance gets the unbiased estimate, as PyTorch does).
    Evaluation uses the running statistics.

    Written as per-channel coefficients applied in one pass: y = (x - mean) * scale + beta with
    scale = gamma / sqrt(var + eps), and in backward gx = a * gy + k * (x - mean) + e. Statistics
    are kept in float64. Each pass runs over the batch split into one part per thread, through the
    compiled kernels of :mod:`striate.ops.accel` when present (one read of x per pass instead of
    a NumPy temporary per operation), else in NumPy.
    """

    def __init__(self, running_mean, running_var, training, momentum, eps):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        c = x.shape[-1]
        count = x.size // c  # values per channel
        kernels = accel.kernels() if xp is np and x.size >= accel.MIN_SIZE else None
        parts = parallel.split(x.shape[0], x.size)
        if self.training:
            mean, var = _moments(x, parts, kernels)
            if self.running_mean is not None:
                m = self.momentum
                self.running_mean *= 1 - m
                self.running_mean += m * mean
                self.running_var *= 1 - m
                self.running_var += (m * count / max(count - 1, 1)) * var
        else:
            mean, var = self.running_mean.astype(np.float64), self.running_var.astype(np.float64)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        scale = (gamma * inv_std).astype(x.dtype)
        y = xp.empty_like(x)

        def part(s):  # y = (x - mean) * scale + beta
            if kernels is not None:
                kernels.channel_affine(_rows(x[s]), mean.astype(x.dtype), scale, beta, _rows(y[s]))
            else:
                xp.subtract(x[s], mean.astype(x.dtype), out=y[s])
                y[s] *= scale
                y[s] += beta

        parallel.map_parts(part, parts)
        self.x, self.mean, self.inv_std, self.gamma, self.count = x, mean, inv_std, gamma, count
        self.parts, self.kernels = parts, kernels
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        x, mean, inv_std, n, kernels = self.x, self.mean, self.inv_std, self.count, self.kernels
        needs = self.needs_input_grad
        # sums over the batch, per part then added: sum(gy) and sum(gy * (x - mean)), float64
        sums = parallel.map_parts(lambda s: _grad_sums(gy[s], x[s], mean, kernels), self.parts)
        sg = sum(p[0] for p in sums)
        sgx = sum(p[1] for p in sums)
        gbeta, ggamma = sg, sgx * inv_std
        gx = None
        if needs[0]:
            a = self.gamma * inv_std
            if not self.training:  # fixed statistics: an affine map
                gx = gy * a.astype(gy.dtype)
            else:
                # the batch statistics depend on x too, which projects out two directions:
                # gx = a * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat = (x - mean) * inv_std
                k, e = -a * inv_std * ggamma / n, -a * sg / n
                dt = gy.dtype
                a, k, e, m = a.astype(dt), k.astype(dt), e.astype(dt), mean.astype(dt)
                gx = xp.empty_like(gy)

                def part(s):  # gx = a * gy + k * (x - mean) + e
                    if kernels is not None:
                        kernels.bn_grad_apply(_rows(gy[s]), _rows(x[s]), m, a, k, e, _rows(gx[s]))
                    else:
                        t = x[s] - m
                        t *= k
                        t += e
                        xp.multiply(gy[s], a, out=gx[s])
                        gx[s] += t

                parallel.map_parts(part, self.parts)
        dtype = self.gamma.dtype
        return gx, (ggamma.astype(dtype) if needs[1] else None), (gbeta.astype(dtype) if needs[2] else None)


def _rows(a):
    """(..., c) -> (m, c) view (the kernels take 2-D arrays)."""
    return a.reshape(-1, a.shape[-1])


def _moments(x, parts, kernels):
    """Per-channel mean and biased variance of x (..., c), float64, from per-part sums.

    NumPy: the mean, then the mean of squared deviations (two passes). Compiled: one pass of
    sum(d) and sum(d*d) with d = x - shift around a shift (the first pixel of the batch), so that
    sum(d*d)/n - (sum(d)/n)**2 does not cancel catastrophically when the mean is large next to
    the spread.
    """
    xp = get_array_module(x)
    c = x.shape[-1]
    count = x.size // c
    if kernels is None:
        mean = sum(parallel.map_parts(lambda s: channel_sum(x[s]).astype(np.float64), parts)) / count

        def squared_deviations(s):
            d = x[s] - mean.astype(x.dtype)
            d *= d
            return channel_sum(d).astype(np.float64)

        return mean, sum(parallel.map_parts(squared_deviations, parts)) / count

    shift = _rows(x[:1])[0].astype(np.float64)

    def moments(s):
        total, squares = xp.empty(c), xp.empty(c)
        kernels.channel_moments(_rows(x[s]), shift, total, squares)
        return total, squares

    sums = parallel.map_parts(moments, parts)
    d_mean = sum(p[0] for p in sums) / count
    var = sum(p[1] for p in sums) / count - d_mean * d_mean
    return shift + d_mean, xp.maximum(var, 0.0)


def _grad_sums(gy, x, mean, kernels):
    """(sum(gy), sum(gy * (x - mean))) per channel, float64."""
    xp = get_array_module(gy)
    if kernels is not None:
        sg, sgx = xp.empty(gy.shape[-1]), xp.empty(gy.shape[-1])
        kernels.bn_grad_sums(_rows(gy), _rows(x), mean, sg, sgx)
        return sg, sgx
    d = x - mean.astype(x.dtype)
    d *= gy
    return channel_sum(gy).astype(np.float64), channel_sum(d).astype(np.float64)


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


class LocalResponseNorm(Function):
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
