"""Batch normalisation over the global batch: the statistics are summed over all ranks.

With plain batch norm each rank normalises by its local batch's mean and variance, so R ranks with
batch b/R do not compute what one process with batch b does (and small local batches give noisy
statistics). Synchronised batch norm (as in Peng et al. 2018, MegDet, sec. 3.3) sums the per-channel
moments over the ranks in the forward pass, and the two per-channel gradient sums in the backward
pass: two small Allreduces of (2c + 1) and 2c float64 numbers per layer and step. Between them the
layer computes what a local batch norm does, with the same passes (threads, compiled loops).
"""
from __future__ import annotations

import numpy as np

from ..backend import normalization as fast
from ..nn import BatchNorm, Module
from ..ops.normalization import BatchNormOp, update_running_stats
from ..tensor import Function, as_tensor
from .comm import Communicator, get_comm

__all__ = ["SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm"]


class SyncBatchNormFunction(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta with mean and var over every rank's batch.

    Forward: each rank sums d = x - shift and d * d per channel, with ``shift`` the running mean
    (equal on every rank, and near the batch mean, so that E[d^2] - E[d]^2 does not cancel), and
    its count; one Allreduce gives the global sums, hence the global mean and biased variance.
    The running statistics get the global mean and the unbiased variance (N / (N - 1)), N the
    global count, as :class:`~striate.nn.BatchNorm` does for one batch.

    Backward: with xhat = (x - mean) * inv_std, a = gamma * inv_std and sums over the global batch,
    ``gx = a * (gy - sum(gy) / N - xhat * sum(gy * xhat) / N)``, the single-process formula with the
    two sums allreduced. gamma and beta get the local sums; the optimiser's average of them over
    the ranks then gives the global batch's gradient.
    """

    def __init__(self, running_mean, running_var, momentum: float, eps: float, comm: Communicator):
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps, self.comm = momentum, eps, comm

    def forward(self, x, gamma, beta):
        # the passes of the local batch norm (threads, compiled loops), the sums allreduced between them
        self.passes = fast.batch_norm_strategy(x, BatchNormOp) or BatchNormOp
        c = x.shape[-1]
        shift = np.zeros(c) if self.running_mean is None else self.running_mean.astype(np.float64)
        # (2c + 1,) = [sum d, sum d*d, count] with d = x - shift, summed over the ranks in one message
        sums = np.concatenate([*self.passes.shifted_sums(x, shift), [x.size // c]])
        self.comm.allreduce_(sums)
        count = sums[-1]
        d_mean = sums[:c] / count
        var = np.maximum(sums[c:2 * c] / count - d_mean * d_mean, 0.0)
        mean = shift + d_mean
        if self.running_mean is not None:
            update_running_stats(self.running_mean, self.running_var, mean, var, count, self.momentum)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        y = np.empty_like(x)
        self.passes.affine(x, mean.astype(x.dtype), (gamma * inv_std).astype(x.dtype), beta, False, y)
        self.x, self.mean, self.inv_std, self.gamma, self.count = x, mean, inv_std, gamma, count
        return y

    def backward(self, gy):
        c = gy.shape[-1]
        # (2c,) = [sum gy, sum gy * (x - mean)] over this rank's batch
        local = np.concatenate(self.passes.grad_sums(gy, self.x, self.mean, None))
        sg_local, sgx_local = local[:c].copy(), local[c:].copy()
        needs = self.needs_input_grad
        gx = None
        if needs[0]:
            total = self.comm.allreduce_(local)                      # the same sums over the global batch
            sg, sgx = total[:c], total[c:]
            inv_std, n = self.inv_std, self.count
            a = self.gamma * inv_std
            k, e = -a * inv_std * inv_std * sgx / n, -a * sg / n     # gx = a * gy + k * (x - mean) + e
            dt = gy.dtype
            gx = np.empty_like(gy)
            self.passes.grad_apply(gy, self.x, None, self.mean.astype(dt), a.astype(dt), k.astype(dt),
                                   e.astype(dt), gx)
        dtype = self.gamma.dtype
        ggamma = (sgx_local * self.inv_std).astype(dtype) if needs[1] else None
        gbeta = sg_local.astype(dtype) if needs[2] else None
        return gx, ggamma, gbeta


class SyncBatchNorm(BatchNorm):
    """:class:`~striate.nn.BatchNorm` whose training statistics are those of the global batch.

    In training with more than one rank it runs :class:`SyncBatchNormFunction`; otherwise (one
    process, or evaluation with the running statistics) it is ``F.batch_norm``, the plain op.
    Every rank must call it the same number of times per step (they do, running the same model).

    Args:
        momentum, eps, num_features: as for :class:`~striate.nn.BatchNorm`.
        comm: the communicator (default: :func:`~striate.distributed.get_comm` at each call).

    Shape: input and output ``(n, h, w, c)`` or ``(n, c)``; parameters ``(c,)``.

    Example::

        >>> model = st.distributed.convert_sync_batchnorm(st.models.resnet20())
    """

    def __init__(self, momentum=0.1, eps=1e-5, num_features=None, comm: Communicator | None = None):
        super().__init__(momentum=momentum, eps=eps, num_features=num_features)
        self.comm = comm

    def forward(self, x):
        comm = self.comm or get_comm()
        if not self.training or comm.size == 1:
            return super().forward(x)
        x = as_tensor(x)
        if x.ndim not in (2, 4):
            raise ValueError(f"SyncBatchNorm: expected (batch, channels) or (batch, height, width, channels) "
                             f"input, got shape {x.shape}.")
        if self.gamma is None:
            self._build(x.shape[-1], x.dtype)
        if x.shape[-1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: the input has {x.shape[-1]} channels, the layer "
                             f"{self.num_features}. Received: x.shape={x.shape}.")
        return SyncBatchNormFunction(self.running_mean, self.running_var, self.momentum, self.eps,
                                     comm).apply(x, self.gamma, self.beta)

    def extra_repr(self):
        return f"momentum={self.momentum}, eps={self.eps}, synchronised"


def convert_sync_batchnorm(model: Module, comm: Communicator | None = None) -> Module:
    """Replace every :class:`~striate.nn.BatchNorm` of ``model`` by a :class:`SyncBatchNorm`.

    The new layers take over the old ones' parameters (the same Parameter objects, so an optimiser
    made before still trains them) and running statistics. Returns the model (a new layer if
    ``model`` itself is a BatchNorm).
    """
    def convert(bn: BatchNorm) -> SyncBatchNorm:
        sync = SyncBatchNorm(momentum=bn.momentum, eps=bn.eps, comm=comm)
        if bn.gamma is not None:
            sync.num_features = bn.num_features
            sync.gamma, sync.beta = bn.gamma, bn.beta
            sync.register_buffer("running_mean", bn.running_mean)
            sync.register_buffer("running_var", bn.running_var)
        sync.train(bn.training)
        return sync

    if type(model) is BatchNorm:
        return convert(model)
    for module in model.modules():
        # assigned in the parent's table directly: setattr would move a Sequential's layer to the end
        for name, child in list(module._modules.items()):
            if type(child) is BatchNorm:
                module._modules[name] = convert(child)
    return model
