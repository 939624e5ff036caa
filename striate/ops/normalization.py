"""Batch normalisation and local response normalisation (channels are the last axis)."""
from __future__ import annotations

from ..tensor import Function, get_array_module
from .reductions import channel_sum


class BatchNorm(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel (Ioffe & Szegedy 2015).

    Training uses the batch's mean and biased variance, and updates ``running_mean`` /
    ``running_var`` in place (the running variance gets the unbiased estimate, as PyTorch does).
    Evaluation uses the running statistics.
    """

    def __init__(self, running_mean, running_var, training, momentum, eps):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        count = x.size // x.shape[-1]  # values per channel
        if self.training:
            mean = channel_sum(x) * (1.0 / count)
            centered = x - mean
            var = channel_sum(centered * centered) * (1.0 / count)  # biased, as used to normalise
            if self.running_mean is not None:
                m = self.momentum
                self.running_mean *= 1 - m
                self.running_mean += m * mean
                self.running_var *= 1 - m
                self.running_var += (m * count / max(count - 1, 1)) * var
        else:
            mean, var = self.running_mean, self.running_var
            centered = x - mean
        inv_std = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)
        centered *= inv_std  # now x-hat, in place: one array of x's size is kept for backward
        self.xhat, self.inv_std, self.gamma, self.count = centered, inv_std, gamma, count
        y = centered * gamma
        y += beta
        return y

    def backward(self, gy):
        xhat, n = self.xhat, self.count
        needs = self.needs_input_grad
        gbeta = channel_sum(gy)
        ggamma = channel_sum(gy * xhat)
        gx = None
        if needs[0]:
            scale = self.inv_std * self.gamma
            if self.training:
                # the batch statistics depend on x too, which projects out two directions:
                # gx = gamma * inv_std * (gy - mean(gy) - xhat * mean(gy * xhat))
                gx = xhat * (-ggamma / n)
                gx += gy
                gx -= gbeta / n
                gx *= scale
            else:
                gx = gy * scale
        return gx, (ggamma if needs[1] else None), (gbeta if needs[2] else None)


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
