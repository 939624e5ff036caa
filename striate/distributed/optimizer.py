"""Synchronous data-parallel SGD: every rank starts from rank 0's weights, and every step applies the
gradient averaged over all ranks, so all ranks hold the same weights after every step.

Averaging is exact: with the global batch split into equal local batches, the mean of the local
mean-loss gradients is the gradient of the global batch's mean loss. So R ranks with batch b/R
follow the trajectory of one process with batch b (with batch norm, when its statistics are
synchronised too: :class:`~striate.distributed.SyncBatchNorm`).

Communication per step is one ``Allreduce`` per bucket: the gradients are packed into flat
buffers of one dtype (float32 for float32 models) of up to ``bucket_mb`` megabytes each. One
collective over a large buffer pays the network latency once; one per parameter (LeNet-5 has
10 tensors, ResNet-20 65) would pay it every time.
"""
from __future__ import annotations

import numpy as np

from ..optim import Optimizer
from .comm import Communicator, get_comm

__all__ = ["DistributedOptimizer", "is_distributed", "broadcast_parameters", "broadcast_optimizer_state",
           "broadcast_model", "average_buffers"]


def _pack_groups(tensors, bucket_bytes: int):
    """Split ``tensors`` into buckets of one dtype and at most ``bucket_bytes`` (a bigger tensor
    gets a bucket of its own); the order is kept, so every rank builds the same buckets."""
    buckets, current, current_bytes = [], [], 0
    for t in tensors:
        nbytes = t.data.nbytes
        if current and (t.data.dtype != current[0].data.dtype or current_bytes + nbytes > bucket_bytes):
            buckets.append(current)
            current, current_bytes = [], 0
        current.append(t)
        current_bytes += nbytes
    if current:
        buckets.append(current)
    return buckets


class _GradientAverager:
    """Averages the gradients of a fixed list of parameters over the ranks, bucket by bucket."""

    def __init__(self, comm: Communicator, bucket_mb: float):
        self.comm = comm
        self.bucket_bytes = int(bucket_mb * 2**20)
        self._layout = None  # (ids of the parameters, buckets), rebuilt when the parameters change

    def _buckets(self, params):
        key = tuple(id(p) for p in params)
        if self._layout is None or self._layout[0] != key:
            self._layout = (key, _pack_groups(params, self.bucket_bytes))
        return self._layout[1]

    def average(self, params) -> None:
        """Replace every ``p.grad`` by the mean over the ranks (a missing gradient counts as zero)."""
        for bucket in self._buckets(params):
            dtype = bucket[0].data.dtype
            sizes = [p.data.size for p in bucket]
            # (sum(sizes) + len(bucket),): the gradients, then one "has a gradient" flag per
            # parameter, so a parameter no rank used keeps grad None (the optimiser skips it)
            buf = np.zeros(sum(sizes) + len(bucket), dtype=dtype)
            flags = buf[sum(sizes):]
            offset = 0
            for i, (p, n) in enumerate(zip(bucket, sizes)):
                if p.grad is not None:
                    buf[offset:offset + n] = p.grad.reshape(-1)
                    flags[i] = 1
                offset += n
            self.comm.allreduce_(buf)
            buf[:offset] *= dtype.type(1.0 / self.comm.size)
            offset = 0
            for i, (p, n) in enumerate(zip(bucket, sizes)):
                # a fresh buffer every step: the views handed out here never alias the next step's
                p.grad = buf[offset:offset + n].reshape(p.data.shape) if flags[i] > 0 else None
                offset += n


class _Distributed:
    """Mixed in before the optimiser's own class by :func:`DistributedOptimizer`."""

    def step(self) -> None:
        """Average the gradients over the ranks, then take the wrapped optimiser's step."""
        trainable = [p for p in self._ordered_params() if p.requires_grad]
        self._averager.average(trainable)
        super().step()

    @property
    def comm(self) -> Communicator:
        return self._averager.comm


_classes: dict = {}


def DistributedOptimizer(optimizer: Optimizer, comm: Communicator | None = None, bucket_mb: float = 25.0,
                         broadcast: bool = True) -> Optimizer:
    """Make ``optimizer`` data-parallel: gradients averaged over the ranks before each step.

    The result is an optimiser of the same class and name (a checkpoint saved from it resumes a
    single-process run and back), sharing ``optimizer``'s parameter groups and state, whose
    ``step()`` first averages the gradients with one ``Allreduce`` per bucket. Make learning-rate
    schedules on the result.

    Args:
        optimizer: a striate optimiser (SGD, Adam, AdamW, ...) on the model's parameters.
        comm: the communicator (default: :func:`~striate.distributed.init`'s).
        bucket_mb: the largest gradient buffer sent in one ``Allreduce``, in megabytes.
        broadcast: first copy rank 0's parameters and optimiser state to every rank, so all
            ranks start equal (whatever their seeds); buffers such as batch-norm running
            statistics are not parameters: use :func:`broadcast_model` for them.

    Returns:
        The data-parallel optimiser.

    Example::

        >>> comm = st.distributed.init()
        >>> opt = st.distributed.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.1))
        >>> opt.zero_grad(); loss.backward(); opt.step()     # the same step on every rank
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer: optimizer must be a striate.optim optimizer. "
                        f"Received: {type(optimizer).__name__}.")
    if isinstance(optimizer, _Distributed):
        raise ValueError("DistributedOptimizer: this optimizer is already distributed; wrap the plain one once.")
    if not (isinstance(bucket_mb, (int, float)) and bucket_mb > 0):
        raise ValueError(f"DistributedOptimizer: bucket_mb must be a positive number. Received: {bucket_mb!r}.")
    comm = comm or get_comm()
    base = type(optimizer)
    cls = _classes.get(base)
    if cls is None:
        # the base's name, so that state_dict()["type"] (checked on loading) stays e.g. "SGD"
        cls = _classes[base] = type(base.__name__, (_Distributed, base),
                                    {"__module__": __name__, "__qualname__": f"Distributed{base.__name__}"})
    wrapped = object.__new__(cls)
    wrapped.__dict__.update(optimizer.__dict__)  # the same param_groups and state objects
    wrapped._averager = _GradientAverager(comm, float(bucket_mb))
    if broadcast and comm.size > 1:
        broadcast_parameters(wrapped._ordered_params(), comm)
        broadcast_optimizer_state(wrapped, comm)
    return wrapped


def is_distributed(optimizer) -> bool:
    """True for an optimiser made by :func:`DistributedOptimizer`."""
    return isinstance(optimizer, _Distributed)


# ------------------------------------------------------------------------------------------ broadcasts
def _broadcast_arrays(arrays, comm: Communicator, root: int) -> None:
    """Overwrite each array in place with root's, one Bcast per dtype bucket of a flat buffer."""
    holders = [_Holder(a) for a in arrays if a is not None]
    for bucket in _pack_groups(holders, 1 << 62):
        buf = np.concatenate([h.data.reshape(-1) for h in bucket])
        comm.broadcast_(buf, root)
        offset = 0
        for h in bucket:
            n = h.data.size
            h.data[...] = buf[offset:offset + n].reshape(h.data.shape)
            offset += n


class _Holder:
    def __init__(self, array):
        self.data = array


def broadcast_parameters(params, comm: Communicator | None = None, root: int = 0) -> None:
    """Copy ``root``'s values of ``params`` (Parameters or Tensors) into every rank's, in place."""
    comm = comm or get_comm()
    if comm.size > 1:
        _broadcast_arrays([p.data for p in params], comm, root)


def broadcast_optimizer_state(optimizer: Optimizer, comm: Communicator | None = None, root: int = 0) -> None:
    """Give every rank ``root``'s optimiser state (momentum buffers, Adam moments, step counts,
    learning rates): what a run resumed on rank 0 alone would need."""
    comm = comm or get_comm()
    if comm.size > 1:
        state = comm.broadcast_object(optimizer.state_dict() if comm.rank == root else None, root)
        if comm.rank != root:
            optimizer.load_state_dict(state)


def broadcast_model(model, comm: Communicator | None = None, root: int = 0) -> None:
    """Copy ``root``'s parameters and buffers (batch-norm running statistics) into every rank's model."""
    comm = comm or get_comm()
    if comm.size > 1:
        arrays = [p.data for p in model.parameters()]
        arrays += [b for _, b in model.named_buffers() if isinstance(b, np.ndarray)]
        _broadcast_arrays(arrays, comm, root)


def average_buffers(model, comm: Communicator | None = None) -> None:
    """Replace each floating buffer (batch-norm running mean and variance) by its mean over the ranks.

    With plain :class:`~striate.nn.BatchNorm` every rank's running statistics follow its own
    batches; call this before evaluating or saving so that every rank, and the saved file, hold
    the same model. (:class:`~striate.distributed.SyncBatchNorm` keeps them equal already.)
    """
    comm = comm or get_comm()
    if comm.size == 1:
        return
    buffers = [b for _, b in model.named_buffers()
               if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating)]
    for bucket in _pack_groups([_Holder(b) for b in buffers], 1 << 62):
        buf = np.concatenate([h.data.reshape(-1) for h in bucket])
        comm.allreduce_(buf)
        buf *= buf.dtype.type(1.0 / comm.size)
        offset = 0
        for h in bucket:
            n = h.data.size
            h.data[...] = buf[offset:offset + n].reshape(h.data.shape)
            offset += n
