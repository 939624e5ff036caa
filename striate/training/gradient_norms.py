"""GradientNorms: a :func:`fit` callback that records the weight-gradient norm of every layer during training."""
from __future__ import annotations

import numpy as np

from ..validation import check_int
from .callbacks import Callback


class GradientNorms(Callback):
    """Record ``||dL/dW||`` (L2 norm) of every layer with a weight ``w`` (Conv2D, Dense, ...) every
    ``every`` training steps, in forward-definition order.

    After ``fit``: ``names`` (layer names as in ``st.summary``), ``steps`` (1-based step numbers,
    counted over the whole run) and ``norms``, an array ``(records, layers)``; ``epoch_of`` gives the
    epoch (from 0) of each record.

    Args:
        every: steps between records (1 = every step).

    Example::

        >>> norms = st.training.GradientNorms(every=10)
        >>> st.training.fit(model, train, epochs=3, callbacks=[norms])
        >>> norms.norms[:, 0] / norms.norms[:, -1]   # first layer against the last, over time
    """

    def __init__(self, every: int = 1):
        self.every = check_int(every, "every", owner="GradientNorms")
        self.names, self.steps, self.epoch_of, self._rows = [], [], [], []
        self._layers, self._step, self._epoch = [], 0, 0

    def on_train_begin(self, run) -> None:
        super().on_train_begin(run)
        self._layers = [(name, m) for name, m in run.model.named_modules() if "w" in m._parameters]
        self.names = [name for name, _ in self._layers]

    def on_epoch_begin(self, epoch: int) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict) -> None:
        self._step += 1
        if self._step % self.every:
            return
        grads = [m._parameters["w"].grad for _, m in self._layers]
        self._rows.append([float(np.linalg.norm(g)) if g is not None else np.nan for g in grads])
        self.steps.append(self._step)
        self.epoch_of.append(self._epoch)

    @property
    def norms(self) -> np.ndarray:
        """``(records, layers)`` gradient norms (NaN where a layer had no gradient)."""
        return np.array(self._rows, dtype=np.float64).reshape(len(self._rows), len(self.names))
