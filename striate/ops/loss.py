"""Losses fused with their output non-linearity for numerical stability."""
from __future__ import annotations

from ..tensor import Function, get_array_module
from .activation import log_softmax_array


def reduce_loss(xp, loss, reduction, dtype, count=None):
    """Per-element losses -> 'none' (as they are), 'sum', or 'mean' (over ``count``, default all;
    a mean over nothing is 0)."""
    if reduction == "none":
        return loss.astype(dtype, copy=False)
    total = loss.sum()
    if reduction == "mean":
        count = loss.size if count is None else count
        total = total / count if count else total * 0
    return xp.asarray(total, dtype=dtype)


def reduce_grad(gy, reduction, size, count=None):
    """The gradient of :func:`reduce_loss` w.r.t. each per-element loss (broadcastable)."""
    if reduction != "mean":
        return gy
    count = size if count is None else count
    return gy / count if count else gy * 0


def power(a, exponent):
    """a ** exponent, by repeated squaring for a whole exponent up to 8: NumPy's general power
    (pow per element) is far slower than a few products."""
    if float(exponent).is_integer() and 0 <= exponent <= 8:
        result, square, k = None, a, int(exponent)
        while k:
            if k & 1:
                result = square if result is None else result * square
            k >>= 1
            if k:
                square = square * square
        return get_array_module(a).ones_like(a) if result is None else result
    return a ** exponent


class CrossEntropyOp(Function):
    """Softmax cross-entropy of rows of logits ``z`` (m, k) with integer labels (m,):
    ``loss_i = -sum_k q_ik log softmax(z_i)_k``, optionally smoothed, weighted, ignoring rows.

    - Label smoothing (Szegedy et al. 2016): q = (1 - eps) * onehot + eps / K.
    - Class weights w (k,) (PyTorch's semantics): the one-hot term of row i is scaled by w[y_i],
      the smoothing term's class k by w_k, and the mean divides by ``sum_i w[y_i]``.
    - ``valid`` (m,), 1 or 0 in z's dtype: rows to count (those whose label is the ignore index
      count 0 and get no gradient).

    Backward of row i: ``(1 - eps) r_i (softmax(z_i) - onehot) + eps / K v_i (W softmax(z_i) - w)``
    with r_i = v_i w[y_i] and W = sum_k w_k; with no weights and every row valid, softmax(z) - q.
    """

    def __init__(self, labels, label_smoothing=0.0, weight=None, valid=None, reduction="mean"):
        self.labels, self.label_smoothing = labels, label_smoothing
        self.weight, self.valid, self.reduction = weight, valid, reduction

    def forward(self, z):
        xp = get_array_module(z)
        n, k = z.shape
        logp = log_softmax_array(z, axis=1)  # (n, k)
        eps, w, v = self.label_smoothing, self.weight, self.valid
        self.row_w = None  # r_i = v_i w[y_i] (n,); None when every row counts once
        if w is not None or v is not None:
            self.row_w = (xp.ones(n, z.dtype) if w is None else w[self.labels]) * (1 if v is None else v)
        nll = -logp[xp.arange(n), self.labels]  # (n,)
        loss = (1 - eps) * (nll if self.row_w is None else self.row_w * nll)
        if eps:
            smooth = -(logp.sum(axis=1) if w is None else logp @ w)  # (n,) = (n, k) @ (k,)
            loss = loss + (eps / k) * (smooth if v is None else v * smooth)
        self.count = None if self.row_w is None else self.row_w.sum()
        self.logp = logp
        return reduce_loss(xp, loss, self.reduction, z.dtype, self.count)

    def backward(self, gy):
        xp = get_array_module(gy)
        n, k = self.logp.shape
        eps, w, v, r = self.label_smoothing, self.weight, self.valid, self.row_w
        g = xp.exp(self.logp)  # softmax, (n, k)
        rows = xp.arange(n)
        if r is None:  # q = (1 - eps) onehot + eps / k
            g[rows, self.labels] -= 1 - eps
            if eps:
                g -= eps / k
        else:
            total_w = k if w is None else w.sum()
            g *= ((1 - eps) * r + (eps / k) * total_w * (1 if v is None else v))[:, None]
            g[rows, self.labels] -= (1 - eps) * r
            if eps:
                g -= (eps / k) * (1 if v is None else v[:, None]) * (1 if w is None else w)
        scale = reduce_grad(gy, self.reduction, n, self.count)
        return (g * (scale[:, None] if self.reduction == "none" else scale),)


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


class SmoothL1Op(Function):
    """``scale *`` smooth L1 of d = pred - target (Fast R-CNN, Girshick 2015, eq. 3):
    ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``; beta = 0 is the L1 loss.

    Huber's loss with threshold delta is ``delta *`` smooth L1 with beta = delta. The gradient is
    ``scale * d / beta`` inside and ``scale * sign(d)`` outside (the two meet at |d| = beta).
    """

    def __init__(self, beta=1.0, scale=1.0, reduction="mean"):
        self.beta, self.scale, self.reduction = beta, scale, reduction

    def forward(self, pred, target):
        xp = get_array_module(pred)
        d = pred - target
        self.d = d
        ad = xp.abs(d)
        if self.beta:
            loss = xp.where(ad < self.beta, (0.5 / self.beta) * d * d, ad - 0.5 * self.beta)
        else:
            loss = ad
        return reduce_loss(xp, self.scale * loss, self.reduction, pred.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        d = self.d
        g = xp.sign(d) if not self.beta else xp.where(xp.abs(d) < self.beta, d / self.beta, xp.sign(d))
        g = g * (self.scale * reduce_grad(gy, self.reduction, d.size))
        needs = self.needs_input_grad
        return (g if needs[0] else None), (-g if needs[1] else None)


class SigmoidFocalLossOp(Function):
    """Focal loss (Lin et al. 2017, RetinaNet, eq. 5) of logits z against targets t in [0, 1]:

        p = sigmoid(z),  ce = -[t log p + (1 - t) log(1 - p)],  p_t = p t + (1 - p)(1 - t)
        loss = a_t * (1 - p_t)^gamma * ce,  a_t = alpha t + (1 - alpha)(1 - t)  (a_t = 1 if alpha < 0)

    With m = 1 - p_t, dm/dz = -(2t - 1) p (1 - p) and dm/dt = 1 - 2p, the product rule gives
    the backward below; ce is computed without overflow as max(z, 0) - z t + log(1 + exp(-|z|)).
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction="none"):
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, z, t):
        xp = get_array_module(z)
        e = xp.exp(-xp.abs(z))
        p = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        ce = xp.maximum(z, 0) - z * t + xp.log1p(e)
        m = 1 - (p * t + (1 - p) * (1 - t))
        a_t = 1 if self.alpha < 0 else self.alpha * t + (1 - self.alpha) * (1 - t)
        self.z, self.t, self.p, self.ce, self.m, self.a_t = z, t, p, ce, m, a_t
        return reduce_loss(xp, a_t * m ** self.gamma * ce, self.reduction, z.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        z, t, p, ce, m, a_t, gamma = self.z, self.t, self.p, self.ce, self.m, self.a_t, self.gamma
        m_gamma = m ** gamma
        # d(m^gamma)/dm = gamma m^(gamma - 1): 0 at m = 0 for gamma > 1 (taken as 0 for gamma < 1)
        dm_gamma = gamma * (m ** (gamma - 1) if gamma >= 1 else xp.where(m > 0, m, 1) ** (gamma - 1) * (m > 0))
        scale = reduce_grad(gy, self.reduction, z.size)
        needs = self.needs_input_grad
        gz = gt = None
        if needs[0]:  # d ce/dz = p - t
            gz = a_t * ((p - t) * m_gamma - dm_gamma * ce * (2 * t - 1) * p * (1 - p)) * scale
        if needs[1]:  # d ce/dt = -z, d a_t/dt = 2 alpha - 1
            gt = a_t * (-z * m_gamma + dm_gamma * ce * (1 - 2 * p))
            if self.alpha >= 0:
                gt = gt + (2 * self.alpha - 1) * m_gamma * ce
            gt = gt * scale
        return gz, gt


class HeatmapFocalLossOp(Function):
    """The penalty-reduced focal loss of keypoint heatmaps (CornerNet, Law & Deng 2018, eq. 1;
    CenterNet, Zhou et al. 2019, eq. 1), per element, of logits z against a heatmap y in [0, 1]
    that is 1 at the objects' centres and a Gaussian bump around them:

        p = sigmoid(z)
        loss = -(1 - p)^a log p                      where y = 1
        loss = -(1 - y)^b p^a log(1 - p)             elsewhere

    With d log p/dz = 1 - p, d log(1 - p)/dz = -p and dp/dz = p (1 - p):

        dloss/dz = a p (1 - p)^a log p - (1 - p)^(a + 1)                  where y = 1
        dloss/dz = (1 - y)^b (p^(a + 1) - a p^a (1 - p) log(1 - p))       elsewhere
        dloss/dy = b (1 - y)^(b - 1) p^a log(1 - p)                       elsewhere (0 where y = 1)

    log p = min(z, 0) - log(1 + e^-|z|) and log(1 - p) = -max(z, 0) - log(1 + e^-|z|) stay finite
    for any z. One op instead of some thirty element-wise ones: it is on every detector step.
    """

    def __init__(self, alpha=2.0, beta=4.0, reduction="sum"):
        self.alpha, self.beta, self.reduction = alpha, beta, reduction

    def forward(self, z, y):
        xp = get_array_module(z)
        e = xp.exp(-xp.abs(z))
        log1p_e = xp.log1p(e)
        below = xp.minimum(z, 0)
        p = xp.exp(below) / (1 + e)  # 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below (np.where is slower)
        log_p, log_q = below - log1p_e, -xp.maximum(z, 0) - log1p_e  # log p, log(1 - p)
        pos = (y == 1).astype(z.dtype)  # 1 at the centres; the two cases blend by it (np.where is slower)
        q = 1 - p
        p_a, q_a, y_b = power(p, self.alpha), power(q, self.alpha), power(1 - y, self.beta) * (1 - pos)
        loss = -(pos * q_a * log_p + y_b * p_a * log_q)
        self.saved = p, q, log_p, log_q, pos, p_a, q_a, y_b, y
        return reduce_loss(xp, loss, self.reduction, z.dtype)

    def backward(self, gy):
        p, q, log_p, log_q, pos, p_a, q_a, y_b, y = self.saved
        a, b = self.alpha, self.beta
        scale = reduce_grad(gy, self.reduction, p.size)
        needs = self.needs_input_grad
        gz = gt = None
        if needs[0]:
            gz = (pos * q_a * (a * p * log_p - q) + y_b * p_a * (p - a * q * log_q)) * scale
        if needs[1]:
            away = 1 - y + 0.5 * pos  # (a stand-in 0.5 where y = 1: no 0 ** negative for beta < 1)
            gt = (1 - pos) * b * power(away, b - 1) * p_a * log_q * scale
        return gz, gt
