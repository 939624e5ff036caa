"""striate.distributed in one process: the no-op communicator, gradient bucketing, SyncBatchNorm's
math, shards and metric reduction (with stand-in communicators for the multi-rank arithmetic).
The real multi-process runs are in test_distributed_mpi.py."""
from __future__ import annotations

import numpy as np
import pytest

import striate as st
import striate.functional as F
from striate import distributed as dist
from striate.data import DataLoader
from striate.distributed import comm as comm_module


class Echo(dist.SingleProcess):
    """Rank ``rank`` of ``size`` whose peers hold the same buffers as it does (sum = size x own);
    allgather returns ``others`` (the other ranks' objects) around its own."""

    def __init__(self, rank=0, size=2, others=None):
        super().__init__()
        self.rank, self.size, self.others = rank, size, others or []
        self.buffers = []

    def allreduce_(self, buffer):
        self.allreduce_calls += 1
        self.allreduce_bytes += buffer.nbytes
        self.buffers.append(buffer.copy())
        buffer *= self.size
        return buffer

    def allgather_object(self, obj):
        return self.others[:self.rank] + [obj] + self.others[self.rank:]


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    return st.nn.Sequential(st.nn.Dense(5, rng=rng), st.nn.ReLU(), st.nn.Dense(3, rng=rng)).build((4,))


def _step(model, opt, x, y):
    loss = F.cross_entropy(model(st.Tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


# ------------------------------------------------------------------------------------------ init
def test_init_without_a_launcher_is_a_single_process_no_op(monkeypatch):
    for name in comm_module._LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(comm_module, "_comm", None)
    comm = dist.init()
    assert isinstance(comm, dist.SingleProcess)
    assert (dist.rank(), dist.size(), dist.is_main()) == (0, 1, True)
    assert dist.init() is comm and dist.get_comm() is comm
    buf = np.arange(4.0)
    assert comm.allreduce_(buf) is buf and buf.tolist() == [0, 1, 2, 3]
    assert comm.allgather_object("a") == ["a"]


def test_launched_by_mpi_reads_the_launcher_variables(monkeypatch):
    for name in comm_module._LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not dist.launched_by_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert dist.launched_by_mpi()


# ------------------------------------------------------------------------------------------ optimizer
def test_distributed_optimizer_in_one_process_is_the_plain_optimizer():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8)
    plain, wrapped_model = _mlp(), _mlp()
    opt = st.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    dopt = dist.DistributedOptimizer(st.optim.SGD(wrapped_model.parameters(), lr=0.1, momentum=0.9),
                                     dist.SingleProcess())
    for _ in range(3):
        _step(plain, opt, x, y)
        _step(wrapped_model, dopt, x, y)
    for (k, a), b in zip(plain.state_dict().items(), wrapped_model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    # the same class name and state format: checkpoints move between 1 and N processes
    assert isinstance(dopt, st.optim.SGD) and dist.is_distributed(dopt) and not dist.is_distributed(opt)
    assert type(dopt).__name__ == "SGD" and dopt.state_dict()["type"] == "SGD"
    opt.load_state_dict(dopt.state_dict())


def test_gradients_go_in_buckets_of_one_dtype_and_come_back_averaged():
    model = _mlp()  # 4x5 + 5 + 5x3 + 3 = 43 float32 numbers in 4 tensors
    comm = Echo(size=2)
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.0), comm)
    x, y = np.ones((2, 4), np.float32), np.array([0, 1])
    F.cross_entropy(model(st.Tensor(x)), y).backward()
    grads = [p.grad.copy() for p in model.parameters()]
    opt.step()
    assert comm.allreduce_calls == 1                     # one bucket for the whole model
    (buf,) = comm.buffers
    assert buf.dtype == np.float32 and buf.shape == (43 + 4,)   # gradients, then one flag per tensor
    np.testing.assert_array_equal(buf[43:], 1.0)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-6)  # (g + g) / 2

    small = dist.DistributedOptimizer(st.optim.SGD(_mlp().parameters(), lr=0.0), Echo(), bucket_mb=60 / 2**20)
    for p in small._ordered_params():
        p.grad = np.ones_like(p.data)
    small.step()
    # 60-byte buckets: [w1 (80 B)], [b1 (20 B)], [w2 (60 B)], [b2 (12 B)]
    assert small.comm.allreduce_calls == 4


def test_a_gradient_absent_everywhere_stays_none():
    model = _mlp()
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1), Echo())
    params = model.parameters()
    for p in params[:2]:
        p.grad = np.ones_like(p.data)
    before = params[2].data.copy()
    opt.step()
    assert params[2].grad is None and params[3].grad is None
    np.testing.assert_array_equal(params[2].data, before)  # no weight decay without a gradient


def test_distributed_optimizer_errors():
    opt = st.optim.SGD(_mlp().parameters(), lr=0.1)
    with pytest.raises(TypeError, match="must be a striate.optim optimizer. Received: list"):
        dist.DistributedOptimizer([1, 2])
    with pytest.raises(ValueError, match="bucket_mb must be a positive number. Received: 0"):
        dist.DistributedOptimizer(opt, dist.SingleProcess(), bucket_mb=0)
    wrapped = dist.DistributedOptimizer(opt, dist.SingleProcess())
    with pytest.raises(ValueError, match="already distributed"):
        dist.DistributedOptimizer(wrapped)


# ------------------------------------------------------------------------------------------ SyncBatchNorm
@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (7, 5)])
def test_sync_batchnorm_function_in_one_process_is_batch_norm(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=shape)
    gamma, beta = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    gy = rng.normal(size=shape)
    results = []
    for sync in (False, True):
        rm, rv = np.full(shape[-1], 0.5), np.full(shape[-1], 2.0)
        xt, gt, bt = st.Tensor(x, requires_grad=True), st.Tensor(gamma, requires_grad=True), st.Tensor(beta,
                                                                                                      requires_grad=True)
        if sync:
            y = dist.SyncBatchNormFunction(rm, rv, 0.1, 1e-5, dist.SingleProcess()).apply(xt, gt, bt)
        else:
            y = F.batch_norm(xt, gt, bt, rm, rv, training=True)
        y.backward(gy)
        results.append([y.data, xt.grad, gt.grad, bt.grad, rm, rv])
    for name, a, b in zip(["y", "gx", "ggamma", "gbeta", "running_mean", "running_var"], *results):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10, err_msg=name)


def test_sync_batchnorm_function_gradcheck():
    rng = np.random.default_rng(1)
    x = st.Tensor(rng.normal(size=(4, 2, 2, 3)), requires_grad=True)
    gamma = st.Tensor(rng.normal(size=3), requires_grad=True)
    beta = st.Tensor(rng.normal(size=3), requires_grad=True)

    def f(x, gamma, beta):
        return dist.SyncBatchNormFunction(None, None, 0.1, 1e-5, dist.SingleProcess()).apply(x, gamma, beta)

    assert st.gradcheck(f, (x, gamma, beta))


def test_sync_batchnorm_sums_statistics_over_ranks():
    # two ranks holding the same batch: the global batch is that batch twice, same mean and
    # biased variance, but the running variance's Bessel factor is 2n / (2n - 1), not n / (n - 1)
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, size=(5, 3))
    rm, rv = np.zeros(3), np.ones(3)
    comm = Echo(size=2)
    y = dist.SyncBatchNormFunction(rm, rv, 1.0, 1e-5, comm).apply(st.Tensor(x), st.Tensor(np.ones(3)),
                                                                  st.Tensor(np.zeros(3)))
    np.testing.assert_allclose(y.data, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-9)
    np.testing.assert_allclose(rm, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, x.var(0) * 10 / 9, rtol=1e-12)
    (sums,) = comm.buffers
    assert sums.shape == (2 * 3 + 1,) and sums[-1] == 5


def test_sync_batchnorm_sends_one_message_each_way_and_computes_as_batch_norm_does(monkeypatch):
    # a batch big enough for the local batch norm's strategy (threads, compiled loops): the synchronised
    # layer runs the same passes, with one allreduce of [sum, sum of squares, count] forward and one
    # of the two gradient sums backward
    from striate.backend import normalization as fast
    used = []
    for name in ("shifted_sums", "affine", "grad_sums", "grad_apply"):
        original = getattr(fast.FastBatchNorm, name)
        monkeypatch.setattr(fast.FastBatchNorm, name,
                            lambda self, *a, _f=original, _n=name: used.append(_n) or _f(self, *a))
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, size=(32, 16, 16, 8)).astype(np.float32)
    gy = rng.normal(size=x.shape).astype(np.float32)
    gamma, beta = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    comm = Echo(size=2)  # the other rank holds the same batch: the global statistics are the local ones
    xt, gt = st.Tensor(x, requires_grad=True), st.Tensor(gamma, requires_grad=True)
    y = dist.SyncBatchNormFunction(None, None, 0.1, 1e-5, comm).apply(xt, gt, st.Tensor(beta, requires_grad=True))
    y.backward(gy)
    assert [b.shape for b in comm.buffers] == [(2 * 8 + 1,), (2 * 8,)]
    assert used == ["shifted_sums", "affine", "grad_sums", "grad_apply"]
    xr, gr = st.Tensor(x, requires_grad=True), st.Tensor(gamma, requires_grad=True)
    ref = F.batch_norm(xr, gr, st.Tensor(beta), None, None, training=True)
    ref.backward(gy)
    np.testing.assert_allclose(y.data, ref.data, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad, xr.grad, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gt.grad, gr.grad, rtol=1e-4, atol=1e-3)  # local sums: each rank its own


def test_convert_sync_batchnorm_keeps_order_parameters_and_results():
    model = st.models.resnet20(rng=0)
    model.build((8, 8, 3))
    params = model.parameters()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    before = model(st.Tensor(x)).data
    n_bn = sum(type(m) is st.nn.BatchNorm for m in model.modules())
    assert dist.convert_sync_batchnorm(model) is model
    assert n_bn == 19 and sum(type(m) is dist.SyncBatchNorm for m in model.modules()) == n_bn
    assert not any(type(m) is st.nn.BatchNorm for m in model.modules())
    assert all(a is b for a, b in zip(model.parameters(), params))
    # fresh running statistics were updated by the first call: compare in evaluation mode too
    model.eval()
    reference = st.models.resnet20(rng=0)
    reference.build((8, 8, 3))
    reference.load_state_dict(model.state_dict())
    reference.eval()
    np.testing.assert_allclose(model(st.Tensor(x)).data, reference(st.Tensor(x)).data, rtol=1e-6)
    assert before.shape == (2, 10)
    seq = st.nn.Sequential(st.nn.Dense(3), st.nn.BatchNorm(), st.nn.ReLU())
    dist.convert_sync_batchnorm(seq)
    assert [type(m).__name__ for m in seq] == ["Dense", "SyncBatchNorm", "ReLU"]


# ------------------------------------------------------------------------------------------ shards
def _indexed(n):
    x = np.zeros((n, 2, 2, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    return x, np.arange(n) % 3


def _seen(loader):
    return [xb[:, 0, 0, 0].astype(int).tolist() for xb, _ in loader]


def test_a_one_rank_shard_is_the_loader_itself():
    x, y = _indexed(23)
    noise = lambda xb, rng: xb + rng.normal(size=xb.shape).astype(xb.dtype)  # noqa: E731
    a = DataLoader(x, y, batch_size=5, rng=3, transform=noise)
    b = dist.shard(DataLoader(x, y, batch_size=5, rng=3, transform=noise), dist.SingleProcess())
    assert len(a) == len(b) == 5
    for _ in range(2):  # two epochs: the generator advances alike
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert b.state_dict()["rng"] == a.state_dict()["rng"]


def test_training_shards_of_three_ranks_are_equal_disjoint_and_reproducible():
    x, y = _indexed(50)
    shares = [_seen(dist.shard(DataLoader(x, y, batch_size=12, rng=4), Echo(rank=r, size=3))) for r in range(3)]
    lengths = [[len(b) for b in s] for s in shares]
    assert lengths[0] == lengths[1] == lengths[2] == [4, 4, 4, 4]  # 50 = 4 x 12 + 2: the last 2 dropped
    flat = [i for s in shares for b in s for i in b]
    assert len(flat) == len(set(flat)) == 48
    again = _seen(dist.shard(DataLoader(x, y, batch_size=12, rng=4), Echo(rank=1, size=3)))
    assert again == shares[1]
    assert len(dist.shard(DataLoader(x, y, batch_size=12), Echo(rank=0, size=3))) == 4


def test_evaluation_shards_cover_every_sample_once():
    x, y = _indexed(23)
    shares = [_seen(dist.shard(DataLoader(x, y, batch_size=4, shuffle=False), Echo(rank=r, size=3),
                               evaluation=True)) for r in range(3)]
    flat = sorted(i for s in shares for b in s for i in b)
    assert flat == list(range(23))
    assert [sum(map(len, s)) for s in shares] == [7, 8, 8]


def test_shard_errors():
    x, y = _indexed(20)
    with pytest.raises(ValueError, match=r"multiple of the number of ranks.*Received: batch_size=10 on 3 ranks; "
                                         r"use e.g. batch_size=9"):
        dist.shard(DataLoader(x, y, batch_size=10), Echo(size=3))
    with pytest.raises(TypeError, match="must be a striate.data.DataLoader. Received: list"):
        dist.shard([(x, y)])


# ------------------------------------------------------------------------------------------ metrics
def test_reduce_metrics_weights_means_and_sums_counts():
    cm0 = np.array([[2, 1], [0, 1]])
    cm1 = np.array([[1, 0], [1, 4]])
    mine = {"loss": 1.0, "accuracy": 0.75, "num_samples": 4, "confusion_matrix": cm0,
            "per_class_accuracy": np.array([2 / 3, 1.0])}
    other = (6, {"loss": 2.0, "accuracy": 5 / 6, "num_samples": 6, "confusion_matrix": cm1,
                 "per_class_accuracy": np.array([1.0, 0.8])})
    out = dist.reduce_metrics(mine, comm=Echo(rank=0, size=2, others=[other]))
    assert out["num_samples"] == 10
    assert out["loss"] == pytest.approx((4 * 1.0 + 6 * 2.0) / 10)
    assert out["accuracy"] == pytest.approx(0.8)
    np.testing.assert_array_equal(out["confusion_matrix"], cm0 + cm1)
    np.testing.assert_allclose(out["per_class_accuracy"], [3 / 4, 5 / 6])
    # a rank without data contributes nothing
    assert dist.reduce_metrics(None, comm=Echo(rank=1, size=2, others=[(4, mine)]))["loss"] == 1.0
    with pytest.raises(ValueError, match="give count="):
        dist.reduce_metrics({"loss": 1.0}, comm=Echo())


# ------------------------------------------------------------------------------------------ launcher
def test_mpiexec_command_adds_open_mpi_flags():
    pytest.importorskip("mpi4py")
    if dist.find_mpiexec() is None:
        pytest.fail("mpiexec missing although mpi4py is installed: install the mpi extra")
    cmd = dist.mpiexec_command(3, ["python", "x.py"])
    assert cmd[1:3] == ["-n", "3"] and cmd[-2:] == ["python", "x.py"]
    if dist.launch._is_open_mpi(cmd[0]):
        assert "--oversubscribe" in cmd
    env = dist.mpiexec_env(A=1)
    assert env["A"] == "1" and env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"


# ------------------------------------------------------------------------------------------ random streams
def test_rank_random_streams_differ_per_rank_but_spare_the_loader():
    from striate.training import Run

    def states(rank):
        model = st.nn.Sequential(st.nn.Dense(4, rng=0), st.nn.Dropout(0.5, rng=7)).build((3,))
        x, y = _indexed(8)
        loader = dist.shard(DataLoader(x, y, batch_size=4, rng=1), Echo(rank=rank, size=2))
        run = Run(model=model, optimizer=st.optim.SGD(model.parameters(), lr=0.1), train=loader)
        dist.RankRandomStreams(Echo(rank=rank, size=2)).on_train_begin(run)
        dropout = model.modules()[-1]
        masks = dropout(st.Tensor(np.ones((2, 4), np.float32))).data
        return masks, loader.rng.bit_generator.state

    saved = st.random.get_state()  # rank 1 jumps the process's default generator too
    try:
        masks0, loader0 = states(0)
        again0, _ = states(0)
        masks1, loader1 = states(1)
        assert st.random.get_state() != saved
    finally:
        st.random.set_state(saved)
    np.testing.assert_array_equal(masks0, again0)      # reproducible
    assert not np.array_equal(masks0, masks1)          # rank 1 draws other masks
    assert loader0 == loader1                          # the shards' permutation stays common
