"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019) with PyTorch's update rule."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer, check_number


class Adam(Optimizer):
    """Adam: per-weight step sizes from running moments of the gradient, with bias correction.

    For step ``t = 1, 2, ...`` and each parameter ``w`` with gradient ``g`` (as ``torch.optim.Adam``)::

        g = g + weight_decay * w                      # Adam: L2 in the gradient
        m = beta1 * m + (1 - beta1) * g               # first moment
        s = beta2 * s + (1 - beta2) * g * g           # second moment
        w = w - lr / (1 - beta1**t) * m / (sqrt(s) / sqrt(1 - beta2**t) + eps)

    Args:
        params: ``model.parameters()`` or parameter-group dicts.
        lr: learning rate, >= 0 (default 1e-3).
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient folded into the gradient, >= 0.

    Example::

        >>> opt = st.optim.Adam(model.parameters(), lr=1e-3)
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, h):
        owner = type(self).__name__
        h["lr"] = check_number(h["lr"], "lr", low=0.0, owner=owner)
        betas = h["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2). Received: betas={betas!r}.")
        h["betas"] = [check_number(b, f"betas[{i}]", low=0.0, high=1.0, high_open=True, owner=owner)
                      for i, b in enumerate(betas)]
        h["eps"] = check_number(h["eps"], "eps", low=0.0, owner=owner)
        h["weight_decay"] = check_number(h["weight_decay"], "weight_decay", low=0.0, owner=owner)

    def _update(self, w, g, state, group):
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        t = state["step"]
        if wd:
            if self.decoupled:
                w *= 1.0 - lr * wd  # AdamW: shrink the weights, independent of the moments
            else:
                g = g + wd * w
        m, s = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - beta1) * (g - m)          # = beta1 * m + (1 - beta1) * g, as torch's lerp
        s *= beta2
        s += (1.0 - beta2) * (g * g)
        step_size = lr / (1.0 - beta1 ** t)
        denom = np.sqrt(s) / math.sqrt(1.0 - beta2 ** t)
        denom += eps
        w -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w *= 1 - lr * weight_decay`` before the Adam step.

    Same arguments as :class:`Adam`; ``weight_decay`` defaults to 0.01 as in PyTorch.

    Example::

        >>> opt = st.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
