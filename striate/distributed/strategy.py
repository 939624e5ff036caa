"""Data-parallel training as a strategy of :func:`striate.training.train_run`: the one place that says
what a run does differently over the processes of ``mpiexec``.

Example (``mpiexec -n 4 python train.py``)::

    >>> import striate as st
    >>> st.training.train_run(dict(dataset="mnist"), strategy=st.distributed.DataParallel())
"""
from __future__ import annotations

from .comm import init
from .metrics import evaluate, reduce_metrics


class DataParallel:
    """Synchronous data-parallel training: batch norm over the global batch, gradients averaged over the
    processes, each process its share of the data and its own dropout masks, files from the first only.

    Args:
        comm: the communicator (default: :func:`striate.distributed.init`, made when the run starts; it
            needs mpi4py, ``pip install 'striate[mpi]'``).
    """

    def __init__(self, comm=None):
        self.comm = comm

    def setup(self, batch_size: int) -> None:
        """Join the processes, once the global batch is known to split evenly over them."""
        if self.comm is None:
            try:
                self.comm = init()
            except ImportError as e:
                raise ImportError(f"--distributed: {e}") from None
        if batch_size % self.comm.size:
            raise ValueError(f"--batch-size (the global batch) must be a multiple of the {self.comm.size} processes. "
                             f"Received: {batch_size}.")

    @property
    def size(self) -> int:
        return self.comm.size

    @property
    def is_main(self) -> bool:
        return self.comm.rank == 0

    def wrap(self, model, opt, train, val, callbacks):
        """The run's pieces made data-parallel: ``(model, opt, train, val, callbacks)``."""
        from .optimizer import DistributedOptimizer
        from .random_streams import RankRandomStreams
        from .sharding import shard
        from .sync_batchnorm import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
        opt = DistributedOptimizer(opt)  # before the schedule, which must be made on it
        train = shard(train)             # batch_size / size images per step
        val = None if val is None else shard(val, evaluation=True)
        callbacks = (list(callbacks) if self.is_main else []) + [RankRandomStreams()]
        return model, opt, train, val, callbacks

    def reduce(self, metrics, count):
        """Every process's epoch metrics combined (``fit``'s ``reduce``)."""
        return reduce_metrics(metrics, count, self.comm)

    def evaluate(self, model, loader) -> dict:
        """The test set evaluated in shares, the results reduced: the same on every process."""
        return evaluate(model, loader, self.comm)
