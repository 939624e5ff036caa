"""Synchronous data-parallel training on MPI (mpi4py): the same script on 1 or N processes.

    import striate as st
    from striate import distributed as dist

    comm = dist.init()                                   # rank 0 of 1 without mpiexec
    model = dist.convert_sync_batchnorm(st.models.resnet20())
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    train = dist.shard(st.data.DataLoader(x, y, batch_size=128, rng=1))    # 128 / comm.size per rank
    for xb, yb in train:
        loss = F.cross_entropy(model(st.Tensor(xb)), yb)
        opt.zero_grad(); loss.backward(); opt.step()     # gradients averaged over the ranks
    result = dist.evaluate(model, test_loader)           # sharded, reduced: the same on every rank
    if dist.is_main():
        st.training.save_weights("weights.npz", model)

Run with ``mpiexec -n 4 python train.py`` (``pip install 'striate[mpi]'``).
"""
from .comm import (Communicator, MPICommunicator, SingleProcess, get_comm, init, is_main, launched_by_mpi, rank,
                   size)
from .launch import find_mpiexec, mpiexec_command, mpiexec_env
from .metrics import evaluate, reduce_metrics
from .optimizer import (DistributedOptimizer, average_buffers, broadcast_model, broadcast_optimizer_state,
                        broadcast_parameters, is_distributed)
from .random_streams import RankRandomStreams
from .sharding import ShardedLoader, shard
from .strategy import DataParallel
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormFunction, convert_sync_batchnorm

__all__ = ["Communicator", "MPICommunicator", "SingleProcess", "init", "get_comm", "rank", "size", "is_main",
           "launched_by_mpi", "DistributedOptimizer", "is_distributed", "broadcast_parameters",
           "broadcast_optimizer_state", "broadcast_model", "average_buffers", "shard", "ShardedLoader",
           "SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm", "evaluate", "reduce_metrics",
           "find_mpiexec", "mpiexec_command", "mpiexec_env", "RankRandomStreams", "DataParallel"]
