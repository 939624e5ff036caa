"""Gradient flow: per-layer gradient norms and activation statistics of one training step.

Why deep plain networks are hard to train is often told as products of many Jacobians whose norms
vanish or explode with depth. These numbers let that account be checked on a real model: for every
weighted layer (Conv2D, Dense), in the order the forward runs them,

* ``grad_norm``: the L2 norm of the loss gradient with respect to its weight, ``||dL/dW||``;
* ``output_grad_norm``: the L2 norm of the gradient reaching its output, ``||dL/dy||`` (the signal
  backpropagation carries to that depth), summed over the batch;
* ``weight_norm``: ``||W||``, so that ``grad_norm / weight_norm`` reads as the relative size of a step;
* ``act_mean``, ``act_std``, ``act_zero``: mean, standard deviation and fraction of exact zeros of
  the layer's activation: the output of the first ReLU after it (before the next weighted layer),
  or its own output where none follows (the last dense layer).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import functional as F
from ..nn import Conv2D, Dense, ReLU
from ..tensor import Tensor
from ._model import check_model, model_dtype

FIELDS = ("weight_norm", "grad_norm", "output_grad_norm", "act_mean", "act_std", "act_zero")


@dataclass
class GradientFlow:
    """Per-layer statistics of one forward and backward (see :func:`gradient_flow`); every field
    but ``names``, ``types`` and ``loss`` is an array with one value per weighted layer."""

    names: list
    types: list
    weight_norm: np.ndarray
    grad_norm: np.ndarray
    output_grad_norm: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray
    act_zero: np.ndarray
    loss: float
    extra: dict = field(default_factory=dict)

    def table(self) -> str:
        """A text table, one row per weighted layer."""
        head = f"{'#':>3}  {'layer':<20} {'type':<7} {'|W|':>9} {'|dL/dW|':>10} {'|dL/dy|':>10} {'act std':>8} {'zeros':>6}"
        rows = [head, "-" * len(head)]
        for i, name in enumerate(self.names):
            rows.append(f"{i + 1:>3}  {name:<20} {self.types[i]:<7} {self.weight_norm[i]:9.3g} {self.grad_norm[i]:10.3g} "
                        f"{self.output_grad_norm[i]:10.3g} {self.act_std[i]:8.3g} {self.act_zero[i]:6.1%}")
        return "\n".join(rows)


def gradient_flow(model, x, y, training: bool = True, loss="cross_entropy") -> GradientFlow:
    """Gradient norms and activation statistics per weighted layer for one batch.

    The step runs on a copy of ``model``: its weights, batch-norm statistics and ``p.grad`` stay as
    they are.

    Args:
        model: a built Module.
        x: a batch ``(n, h, w, c)``, preprocessed as the model was trained.
        y: integer labels ``(n,)``.
        training: True (default) runs the copy in training mode, as a training step sees it
            (batch norm with the batch's statistics); False in evaluation mode.
        loss: ``'cross_entropy'`` or a callable ``loss(logits, labels)``.

    Returns:
        :class:`GradientFlow` (layers in forward order, named as in ``st.summary``).

    Example::

        >>> flow = st.vis.gradient_flow(st.models.plain56(rng=0), x, y)
        >>> flow.grad_norm[0] / flow.grad_norm[-2]   # first conv vs last conv
    """
    check_model(model, "gradient_flow")
    a = np.asarray(x.data if isinstance(x, Tensor) else x)
    if a.ndim != 4 or a.dtype.kind != "f":
        raise ValueError(f"gradient_flow: x must be a float batch (n, h, w, c). Received: shape {a.shape}, "
                         f"dtype {a.dtype}.")
    labels = np.asarray(y)
    if labels.shape != (a.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"gradient_flow: y must hold one integer label per image, shape ({a.shape[0]},). "
                         f"Received: shape {labels.shape}, dtype {labels.dtype}.")
    if loss == "cross_entropy":
        loss_fn = F.cross_entropy
    elif callable(loss):
        loss_fn = loss
    else:
        raise ValueError(f"gradient_flow: loss must be 'cross_entropy' or a callable. Received: loss={loss!r}.")
    twin = copy.deepcopy(model)
    twin.train(training)
    names = {id(m): n for n, m in twin.named_modules()}
    order, handles = [], []

    def record(module, args, out):
        if isinstance(out, Tensor) and out.requires_grad:
            out.retain_grad()
        order.append((module, out))

    for m in twin.modules():
        if isinstance(m, (Conv2D, Dense, ReLU)):
            handles.append(m.register_forward_hook(record))
    try:
        out = loss_fn(twin(Tensor(np.ascontiguousarray(a, dtype=model_dtype(twin)))), labels)
        out.backward()
    finally:
        for h in handles:
            h.remove()
    rows = []
    for i, (m, y_out) in enumerate(order):
        if not isinstance(m, (Conv2D, Dense)):
            continue
        act = y_out
        for later, later_out in order[i + 1:]:  # the first ReLU before the next weighted layer
            if isinstance(later, (Conv2D, Dense)):
                break
            if isinstance(later, ReLU):
                act = later_out
                break
        w = m.w
        g = y_out.grad
        v = np.asarray(act.data, np.float64)
        rows.append((names.get(id(m), type(m).__name__), type(m).__name__,
                     float(np.linalg.norm(w.data)), float(np.linalg.norm(w.grad)) if w.grad is not None else 0.0,
                     float(np.linalg.norm(g)) if g is not None else 0.0,
                     float(v.mean()), float(v.std()), float(np.mean(v == 0))))
    if not rows:
        raise ValueError("gradient_flow: the model has no Conv2D or Dense layer to measure.")
    cols = list(zip(*rows))
    return GradientFlow(list(cols[0]), list(cols[1]), *(np.array(c) for c in cols[2:]), loss=float(out.data))


def gradient_flow_figure(flows, title: str | None = None):
    """A matplotlib figure of one or several :class:`GradientFlow` (a dict ``label -> flow``, e.g.
    plain-56 against ResNet-56): per layer (x = depth, 1 = first weighted layer), the weight-gradient
    norm and the output-gradient norm on log axes, the activations' standard deviation and their
    fraction of zeros."""
    from . import draw

    if not isinstance(flows, dict):
        flows = {"": flows}
    plt = draw.pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=False)
    panels = (("grad_norm", "|dL/dW| per layer (weight gradient)", True),
              ("output_grad_norm", "|dL/dy| per layer (gradient reaching the output)", True),
              ("act_std", "activation std per layer", True),
              ("act_zero", "fraction of zero activations", False))
    for ax, (key, label, log) in zip(axes.flat, panels):
        for name, flow in flows.items():
            depth = np.arange(1, len(flow.names) + 1)
            ax.plot(depth, getattr(flow, key), "-o", ms=2.5, lw=1.2, label=name or None)
        if log:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("layer (forward order)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    if any(flows):
        axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_gradient_flow_plot(flows, path, title: str | None = None) -> None:
    """Write :func:`gradient_flow_figure` as a PNG file, atomically."""
    from ..atomic import atomic_open
    from . import draw

    plt = draw.pyplot()
    fig = gradient_flow_figure(flows, title)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
