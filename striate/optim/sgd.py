"""Stochastic gradient descent with momentum (heavy ball or Nesterov) and L2 weight decay."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_number


class SGD(Optimizer):
    """SGD with PyTorch's update rule (``torch.optim.SGD``), step for step.

    For each parameter ``w`` with gradient ``g``::

        g = g + weight_decay * w                # L2 penalty folded into the gradient
        v = g                  (first step)     # momentum buffer
        v = momentum * v + (1 - dampening) * g  (later steps)
        d = g + momentum * v   if nesterov else v
        w = w - lr * d

    With ``momentum=0`` this is plain SGD, ``w -= lr * (g + weight_decay * w)``. The classic
    formulation of Sutskever et al. (2013) scales the velocity by ``lr`` instead; the two agree for
    a constant learning rate.

    Args:
        params: ``model.parameters()`` or a list of parameter-group dicts.
        lr: learning rate, >= 0.
        momentum: in [0, 1).
        weight_decay: L2 coefficient, >= 0.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        dampening: in [0, 1); scales the new gradient in the buffer update.

    Example::

        >>> opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov, dampening=dampening))

    def _validate(self, h):
        owner = "SGD"
        h["lr"] = check_number(h["lr"], "lr", low=0.0, owner=owner)
        h["momentum"] = check_number(h["momentum"], "momentum", low=0.0, high=1.0, high_open=True, owner=owner)
        h["weight_decay"] = check_number(h["weight_decay"], "weight_decay", low=0.0, owner=owner)
        h["dampening"] = check_number(h["dampening"], "dampening", low=0.0, high=1.0, high_open=True, owner=owner)
        if not isinstance(h["nesterov"], (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False. Received: nesterov={h['nesterov']!r}.")
        h["nesterov"] = bool(h["nesterov"])
        if h["nesterov"] and (h["momentum"] == 0.0 or h["dampening"] != 0.0):
            raise ValueError(
                "SGD: Nesterov momentum needs momentum > 0 and dampening = 0. "
                f"Received: momentum={h['momentum']}, dampening={h['dampening']}."
            )

    def _update(self, w, g, state, group):
        # Python-float hyper-parameters keep every product in w's dtype (float32 stays float32).
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd:
            g = g + wd * w
        if mu:
            v = state.get("momentum_buffer")
            if v is None:
                v = state["momentum_buffer"] = g.copy()
            else:
                v *= mu
                v += (1.0 - group["dampening"]) * g if group["dampening"] else g
            g = g + mu * v if group["nesterov"] else v
        w -= lr * g
