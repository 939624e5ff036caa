"""Each rank's share of the data: equal for training (or an allreduce waits forever), complete for
evaluation.

Training. Every rank draws the epoch's permutation from the same generator (the wrapped
:class:`~striate.data.DataLoader`'s, seeded alike on every rank), cuts it into the global batches
one process would use, and takes its own contiguous part of each: batch ``b`` of an epoch is
``order[b*B : (b+1)*B]`` and rank ``r`` of ``R`` takes its ``r``-th ``B/R`` rows. So the ranks'
shares are disjoint, equally long, reproducible from the seed, and together they are exactly the
single-process batches. A last global batch that does not split evenly loses its remainder
(fewer than R images of that epoch); with fewer than R images it is dropped.

Evaluation. Every image counts once: the data set is cut into R contiguous parts as equal as
possible (they need not be equal: evaluation has no collective until the metrics are reduced).
"""
from __future__ import annotations

import numpy as np

from .comm import Communicator, get_comm

__all__ = ["ShardedLoader", "shard"]


class ShardedLoader:
    """A rank's share of a :class:`~striate.data.DataLoader` (made by :func:`shard`).

    It has the wrapped loader's interface: iterate for ``(xb, yb)`` batches, ``len()`` batches per
    epoch (the same on every rank), ``state_dict()`` / ``load_state_dict()`` of the wrapped
    loader's generator (so checkpoints work as in a single-process run, and carry over to one).

    Augmentation draws from a generator seeded by the epoch's seed and the rank: reproducible,
    and different on every rank (equal draws would augment the ranks' images alike).
    """

    def __init__(self, loader, comm: Communicator, evaluation: bool = False):
        self.loader, self.comm, self.evaluation = loader, comm, bool(evaluation)
        self.batch_size = loader.batch_size

    # ------------------------------------------------------------------------------ loader interface
    @property
    def rng(self):
        return self.loader.rng

    @property
    def num_samples(self) -> int:
        """Images this rank sees per epoch."""
        return int(sum(len(idx) for idx in self._batches(np.arange(self.loader.num_samples))))

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)

    def __len__(self) -> int:
        return len(self._batches(np.arange(self.loader.num_samples)))

    # ------------------------------------------------------------------------------ the shares
    def _batches(self, order):
        """This rank's index batches for an epoch whose (global) order is ``order``."""
        size, rank, b = self.comm.size, self.comm.rank, self.batch_size
        if self.evaluation:
            bounds = [len(order) * i // size for i in range(size + 1)]
            mine = order[bounds[rank]:bounds[rank + 1]]
            return [mine[i:i + b] for i in range(0, len(mine), b)]
        stops = range(0, len(self.loader) * b, b)
        batches = []
        for start in stops:
            batch = order[start:start + b]
            m = len(batch) // size                     # this step's local batch, equal on every rank
            if m:
                batches.append(batch[rank * m:(rank + 1) * m])
        return batches

    def __iter__(self):
        loader = self.loader
        n = loader.num_samples
        # the wrapped loader's draws, in its order: one permutation, one seed per epoch
        order = loader.rng.permutation(n) if loader.shuffle else np.arange(n)
        epoch_seed = loader.rng.integers(0, 2**63)
        epoch_rng = np.random.default_rng(epoch_seed if self.comm.size == 1 else [epoch_seed, self.comm.rank])
        for idx in self._batches(order):
            yield loader._make_batch(idx, epoch_rng)  # the loader's own scaling and transform

    def __repr__(self):
        kind = "evaluation" if self.evaluation else "training"
        return f"ShardedLoader({kind}, rank={self.comm.rank}, size={self.comm.size}, loader={self.loader!r})"


def shard(loader, comm: Communicator | None = None, evaluation: bool = False) -> ShardedLoader:
    """This rank's share of ``loader``'s batches.

    Args:
        loader: a :class:`~striate.data.DataLoader` built alike on every rank (same data, batch
            size, seed). Its ``batch_size`` is the global batch: each rank gets ``batch_size / size``
            images per step.
        comm: the communicator (default: :func:`~striate.distributed.init`'s).
        evaluation: every image once, in R contiguous parts (for evaluation; the shares may differ
            in length by one image). Default: training shares, equal on every rank.

    Returns:
        A :class:`ShardedLoader`.

    Raises:
        ValueError: for training, ``batch_size`` is not a multiple of the number of ranks.

    Example::

        >>> train = st.distributed.shard(DataLoader(x, y, batch_size=128, rng=1))   # 64 per rank on 2
    """
    for name in ("x", "batch_size", "shuffle", "rng", "transform", "dtype", "num_samples", "state_dict"):
        if not hasattr(loader, name):
            raise TypeError(f"shard: loader must be a striate.data.DataLoader. Received: {type(loader).__name__} "
                            f"(it has no {name!r}).")
    comm = comm or get_comm()
    if not evaluation and loader.batch_size % comm.size:
        raise ValueError(
            f"shard: the global batch size must be a multiple of the number of ranks, so that every rank "
            f"gets an equal share. Received: batch_size={loader.batch_size} on {comm.size} ranks; use e.g. "
            f"batch_size={max(comm.size, loader.batch_size // comm.size * comm.size)}."
        )
    return ShardedLoader(loader, comm, evaluation)
