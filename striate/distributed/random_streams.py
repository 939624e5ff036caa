"""Different random draws on every rank (dropout masks), reproducibly, also after resuming.

Every rank builds the model from the same seed, so the layers' generators (dropout's) start equal on
every rank, and a checkpoint stores rank 0's states only. Equal generators would drop the same units
of every rank's images: the ranks' halves of the global batch would not get independent masks as one
process's batch does. So at the start of training (after a resume has restored the saved states)
rank r jumps each such generator ``r`` times ahead (``bit_generator.jumped``: 2^127 draws of PCG64,
far beyond any run), giving disjoint streams that follow from the seed and the rank alone. Rank 0
keeps its stream, so its checkpoints resume bit-exactly. The data loader's generator is left alone:
the shards need the same permutation on every rank.
"""
from __future__ import annotations

import numpy as np

from .. import random as st_random
from ..training import Callback
from .comm import Communicator, get_comm

__all__ = ["RankRandomStreams"]


class RankRandomStreams(Callback):
    """A callback for :func:`striate.training.fit` on every rank: distinct random streams per rank for
    the model's generators (e.g. ``Dropout(rng=...)``) and striate's default generator.

    Args:
        comm: the communicator (default: :func:`~striate.distributed.init`'s).

    Example::

        >>> fit(model, dist.shard(loader), optimizer=opt, callbacks=[dist.RankRandomStreams()] + rank0_callbacks)
    """

    def __init__(self, comm: Communicator | None = None):
        self.comm = comm

    def on_train_begin(self, run) -> None:
        super().on_train_begin(run)
        rank = (self.comm or get_comm()).rank
        if rank == 0:
            return
        keep = {id(getattr(run.train, "rng", None)), id(getattr(run.val, "rng", None))}  # the shards' order
        generators = [st_random.default_generator()]
        generators += [m.rng for m in run.model.modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]
        done = set()
        for g in generators:
            if id(g) in keep or id(g) in done:
                continue
            done.add(id(g))
            g.bit_generator.state = g.bit_generator.jumped(rank).state
