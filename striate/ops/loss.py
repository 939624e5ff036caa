"""Losses fused with their output non-linearity for numerical stability."""
from __future__ import annotations

from ..tensor import Function, get_array_module


class CrossEntropyOp(Function):
    """Mean over the batch of -sum_k q_k log softmax(z)_k, q = one-hot labels, optionally smoothed.

    Label smoothing (Szegedy et al. 2016): q = (1 - eps) * onehot + eps / K.
    Backward is (softmax(z) - q) / n.
    """

    def __init__(self, labels, label_smoothing=0.0):
        self.labels, self.label_smoothing = labels, label_smoothing

    def forward(self, z):
        xp = get_array_module(z)
        n, k = z.shape
        shifted = z - z.max(axis=1, keepdims=True)
        logsumexp = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logsumexp  # (n, k)
        eps = self.label_smoothing
        rows = xp.arange(n)
        nll = -logp[rows, self.labels]  # (n,)
        loss = (1 - eps) * nll
        if eps:
            loss = loss - (eps / k) * logp.sum(axis=1)
        self.logp = logp
        return xp.asarray(loss.mean(), dtype=z.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        n, k = self.logp.shape
        g = xp.exp(self.logp)  # softmax
        eps = self.label_smoothing
        g[xp.arange(n), self.labels] -= 1 - eps
        if eps:
            g -= eps / k
        return (g * (gy / n),)


class BinaryCrossEntropyWithLogitsOp(Function):
    """Mean of -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))], computed without overflow as
    max(z, 0) - z t + log(1 + exp(-|z|))."""

    def forward(self, z, t):
        xp = get_array_module(z)
        self.z, self.t = z, t
        loss = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
        return xp.asarray(loss.mean(), dtype=z.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        z, t = self.z, self.t
        e = xp.exp(-xp.abs(z))
        sig = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        scale = gy / z.size
        gz = (sig - t) * scale if self.needs_input_grad[0] else None
        gt = -z * scale if self.needs_input_grad[1] else None
        return gz, gt
