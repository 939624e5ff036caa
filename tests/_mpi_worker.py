"""Programs that tests/test_distributed_mpi.py runs under ``mpiexec -n 2`` (and, for references, in
one process). ``python _mpi_worker.py SCENARIO OUT_DIR``: every rank writes what it computed to
OUT_DIR/<scenario>-rank<r>.npz; the test compares those files.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import striate as st
import striate.functional as F
from striate import distributed as dist
from striate.data import DataLoader
from striate.nn import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

STEPS = 6          # optimisation steps compared in the equivalence test
GLOBAL_BATCH = 16  # 1 process x 16 == 2 ranks x 8


def toy_data(n=96, seed=0):
    """n 8x8x2 images whose pixel (0, 0, 0) holds the sample's index (to check the shards), labels 0..3."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, size=(n, 8, 8, 2)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    y = rng.integers(0, 4, size=n)
    return x, y


def bn_net(seed=0, sync=False):
    rng = np.random.default_rng(seed)
    bn = dist.SyncBatchNorm if sync else BatchNorm
    model = Sequential(Conv2D(6, 3, padding="same", rng=rng), bn(), ReLU(), MaxPool2D(2),
                       Conv2D(8, 3, padding="same", rng=rng), bn(), ReLU(), Flatten(), Dense(4, rng=rng))
    return model.build((8, 8, 2))


def train_steps(model, opt, loader, steps):
    """`steps` SGD steps over the loader's batches (epochs as needed); the losses."""
    losses = []
    while len(losses) < steps:
        for xb, yb in loader:
            xb = xb.copy()
            xb[:, 0, 0, 0] = 0.0  # the index marker is not a feature
            loss = F.cross_entropy(model(st.Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.data))
            if len(losses) == steps:
                break
    return losses


def state_arrays(model, prefix):
    return {f"{prefix}/{k}": v for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------- scenarios
def equivalence(comm, out):
    """SGD (momentum, weight decay) with SyncBatchNorm, Adam, shards, reduced evaluation, buffers."""
    x, y = toy_data()
    res = {}
    # 1. SGD + SyncBatchNorm; rank 1 starts from other weights: the broadcast must fix that
    model = bn_net(seed=comm.rank, sync=True)
    if comm.size > 1:
        dist.broadcast_model(model, comm)
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3),
                                    comm)
    loader = dist.shard(DataLoader(x, y, batch_size=GLOBAL_BATCH, rng=7), comm)
    calls = comm.allreduce_calls
    res["sgd_losses"] = np.array(train_steps(model, opt, loader, STEPS))
    res["calls_per_step"] = np.array((comm.allreduce_calls - calls) / STEPS)
    res.update(state_arrays(model, "sgd"))
    # 2. Adam, no batch norm, 2 epochs of 96 / 16 = 6 steps + the resume-compatible loader state
    rng = np.random.default_rng(3)
    mlp = Sequential(Flatten(), Dense(12, rng=rng), ReLU(), Dense(4, rng=rng)).build((8, 8, 2))
    adam = dist.DistributedOptimizer(st.optim.Adam(mlp.parameters(), lr=0.01), comm)
    loader2 = dist.shard(DataLoader(x, y, batch_size=GLOBAL_BATCH, rng=11), comm)
    res["adam_losses"] = np.array(train_steps(mlp, adam, loader2, 2 * len(loader2)))
    res.update(state_arrays(mlp, "adam"))
    # 3. the shards of one epoch: indices each rank saw, batch by batch
    seen = [xb[:, 0, 0, 0].astype(np.int64) for xb, _ in dist.shard(DataLoader(x[:90], y[:90], batch_size=12,
                                                                                rng=5), comm)]
    res["shard_indices"] = np.concatenate(seen)
    res["shard_batch_sizes"] = np.array([len(s) for s in seen])
    # 4. evaluation of 91 images (not a multiple of 2) sharded and reduced
    x_eval = x[:91].copy()
    x_eval[:, 0, 0, 0] = 0.0
    result = dist.evaluate(model, DataLoader(x_eval, y[:91], batch_size=10, shuffle=False), comm)
    for key in ("loss", "accuracy", "num_samples", "confusion_matrix"):
        res[f"eval/{key}"] = np.asarray(result[key])
    # 5. plain BatchNorm running statistics averaged over the ranks
    plain = bn_net(seed=0)
    for name, b in plain.named_buffers():
        b[...] = comm.rank + 1.0
    dist.average_buffers(plain, comm)
    res["buffers_after_average"] = np.concatenate([b.ravel() for _, b in plain.named_buffers()])
    res["threads"] = np.array(st.get_num_threads())
    np.savez(os.path.join(out, f"equivalence-rank{comm.rank}.npz"), **res)


def raise_on_rank1(comm, out):
    """Rank 1 raises in its third step; rank 0 then waits in an allreduce that never completes."""
    x, y = toy_data()
    model = bn_net(sync=True)
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.1), comm)
    step = 0
    for _ in range(1000):
        for xb, yb in dist.shard(DataLoader(x, y, batch_size=GLOBAL_BATCH, rng=1), comm):
            step += 1
            if comm.rank == 1 and step == 3:
                raise ValueError("a deliberate failure in step 3")
            loss = F.cross_entropy(model(st.Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def checkpointed(comm, out, epochs=4, kill_in_epoch=None, resume=False):
    """Train `epochs` epochs, rank 0 checkpointing after each; optionally rank 1 dies (SIGKILL)
    in the middle of epoch `kill_in_epoch` (1-based) or the run resumes from the checkpoint."""
    from striate.training import load_checkpoint, save_checkpoint

    x, y = toy_data()
    model = bn_net(sync=True)
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), comm)
    loader = dist.shard(DataLoader(x, y, batch_size=GLOBAL_BATCH, rng=2), comm)
    path = os.path.join(out, "checkpoint.npz")
    start = 0
    if resume:
        ckpt = load_checkpoint(path)
        ckpt.restore(model, opt, loader=loader)
        start = ckpt.epoch
    for epoch in range(start, epochs):
        for step, (xb, yb) in enumerate(loader):
            if epoch + 1 == kill_in_epoch and step == 2 and comm.rank == 1:
                print(f"rank 1 kills itself at {time.time():.3f}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            loss = F.cross_entropy(model(st.Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if comm.rank == 0:
            save_checkpoint(path, model, opt, epoch=epoch + 1, loader=loader)
        comm.barrier()  # the checkpoint is on disk before anyone starts the next epoch
    tag = "resumed" if resume else "full"
    np.savez(os.path.join(out, f"{tag}-rank{comm.rank}.npz"), **state_arrays(model, "model"))


SCENARIOS = {
    "equivalence": equivalence,
    "raise": raise_on_rank1,
    "full": lambda comm, out: checkpointed(comm, out),
    "killed": lambda comm, out: checkpointed(comm, out, kill_in_epoch=3),
    "resumed": lambda comm, out: checkpointed(comm, out, resume=True),
}


if __name__ == "__main__":
    scenario, out_dir = sys.argv[1], sys.argv[2]
    SCENARIOS[scenario](dist.init(), out_dir)
