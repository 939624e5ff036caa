"""Data-parallel training throughput: R ranks x 1 thread against 1 process x R threads, the time in
allreduce, and a model of N machines from the measured allreduce cost.

    python benchmarks/bench_distributed.py            # ~3 minutes on 2 cores
    python benchmarks/bench_distributed.py --quick    # a smoke test, ~1 minute
    python benchmarks/bench_distributed.py --out /tmp/distributed.md

What it runs (each configuration in a fresh process, synthetic float32 images, SGD with momentum):

* ``mpiexec -n R`` for R = 1, 2, 4 (4 oversubscribes a 2-core machine), one thread per rank
  (striate and BLAS), the global batch split over the ranks, DistributedOptimizer, and for
  ResNet-20 SyncBatchNorm;
* one process without MPI with T = 1, 2, 4 threads (striate's threads; BLAS on one thread);
* ``mpiexec -n 2``: Allreduce of float32 buffers from 1 KiB to 16 MiB, fitted to
  ``t = alpha + beta * bytes``.

Then the scaling model: N machines, one rank each with this machine's measured one-rank step (CPU)
time on its local batch, gradients allreduced as MPI does it (each rank sends and receives
``2 (N-1)/N`` of the gradient bytes in ``2 log2 N`` rounds) over a 1 or 10 Gbit/s link, plus the
measured local latency and per-byte cost; no overlap of communication with backward (striate does
not overlap).
The report goes to stdout and, as markdown, to ``--out`` (default benchmarks/distributed.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INPUT_SHAPES = {"lenet5": (28, 28, 1), "resnet20": (32, 32, 3)}
# resnet20-localbn: ResNet-20 with plain BatchNorm (each rank normalises by its own batch, as
# Horovod does by default), to show what SyncBatchNorm's 2 x 19 small allreduces per step cost
VARIANTS = {"lenet5": "lenet5", "resnet20": "resnet20", "resnet20-localbn": "resnet20"}
BATCH = 128                     # the global batch, as in benchmarks/run.py
STEPS = {"full": {"lenet5": 30, "resnet20": 6, "resnet20-localbn": 6},
         "quick": {"lenet5": 6, "resnet20": 2, "resnet20-localbn": 2}}
WARMUP = 2                      # untimed steps (first calls compile numba kernels, fill caches)
RANKS = (1, 2, 4)
LINKS_GBIT = (1, 10)
NET_LATENCY_S = 50e-6           # assumed per-message latency of a TCP/Ethernet hop (not measurable here)
MODEL_RANKS = (1, 2, 4, 8, 16, 32, 64)


# ------------------------------------------------------------------------------------------- workers
def worker_train(model_name: str, steps: int, out: str) -> None:
    """Train ``steps`` timed steps; rank 0 writes the timings as JSON to ``out``."""
    import numpy as np

    import striate as st
    import striate.functional as F
    from striate import distributed as dist

    comm = dist.init()
    rng = np.random.default_rng(0)
    arch = VARIANTS[model_name]
    model = st.models.get(arch, num_classes=10, rng=0)
    model.build(INPUT_SHAPES[arch])
    if comm.size > 1 and model_name != "resnet20-localbn":
        model = dist.convert_sync_batchnorm(model)
    opt = dist.DistributedOptimizer(st.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), comm)
    local = BATCH // comm.size
    x = rng.normal(size=(local,) + INPUT_SHAPES[arch]).astype(np.float32)
    y = rng.integers(0, 10, size=local)
    step_times, cpu_times, grad_seconds, all_seconds, wait_seconds = [], [], 0.0, 0.0, 0.0
    for i in range(WARMUP + steps):
        comm.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        ar0 = comm.allreduce_seconds
        loss = F.cross_entropy(model(st.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        # a barrier first, so that the gradient allreduce's time is the transfer, not the wait
        # for the slower rank (which the barrier's time is)
        tw = time.perf_counter()
        comm.barrier()
        wait = time.perf_counter() - tw
        before_step = comm.allreduce_seconds
        opt.step()
        t1, c1 = time.perf_counter(), time.process_time()
        if i >= WARMUP:
            step_times.append(t1 - t0)
            cpu_times.append(c1 - c0)
            grad_seconds += comm.allreduce_seconds - before_step
            all_seconds += comm.allreduce_seconds - ar0
            wait_seconds += wait
    # CPU seconds of every rank (all its threads) per step: the work done, whatever the other
    # processes on the machine take of the cores (MPI's busy waiting counts as work)
    cpu_per_step = sum(comm.allgather_object(sum(cpu_times) / steps))
    if comm.rank == 0:
        from striate import get_num_threads
        with open(out, "w") as f:
            json.dump({"model": model_name, "ranks": comm.size, "threads": get_num_threads(), "batch": BATCH,
                       "step_times": step_times, "cpu_per_step": cpu_per_step, "grad_allreduce_s": grad_seconds / steps,
                       "bn_allreduce_s": (all_seconds - grad_seconds) / steps,
                       "wait_s": wait_seconds / steps,
                       "grad_bytes": int(sum(p.data.nbytes for p in model.parameters()))}, f)


def worker_allreduce(out: str, quick: bool) -> None:
    """Allreduce of float32 buffers, 1 KiB .. 16 MiB; rank 0 writes (bytes, fastest seconds) pairs."""
    import numpy as np

    from striate import distributed as dist

    comm = dist.init()
    results = []
    for log2 in range(10, 25, 2):
        buf = np.ones((1 << log2) // 4, np.float32)
        repeats = 5 if quick else (100 if log2 < 20 else 15)
        times = []
        for i in range(repeats + 5):  # 5 untimed: the first messages of a size set up buffers
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce_(buf)
            if i >= 5:
                times.append(time.perf_counter() - t0)
        results.append((buf.nbytes, float(np.min(times))))  # the best: the other jobs' load only adds
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)


# ------------------------------------------------------------------------------------------- driver
def _env(threads: int) -> dict:
    sys.path.insert(0, ROOT)
    from striate.distributed import mpiexec_env

    # one BLAS thread everywhere: a rank's thread or striate's threads are the only ones computing
    return mpiexec_env(PYTHONPATH=ROOT, STRIATE_NUM_THREADS=threads, OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1,
                       MKL_NUM_THREADS=1)


def _launch(ranks, args, threads, use_mpi=True, timeout=900):
    from striate.distributed import mpiexec_command

    cmd = [sys.executable, os.path.abspath(__file__)] + args
    if use_mpi:
        cmd = mpiexec_command(ranks, cmd)
    done = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def _median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _fit(points):
    """``t = alpha + beta * bytes``: alpha the fastest message of 16 KiB or less, beta the median of
    (t - alpha) / bytes over the messages of 64 KiB and more (robust to the odd message slowed down
    by the other jobs, which a least-squares line is not)."""
    alpha = min(t for b, t in points if b <= 1 << 14)
    slopes = sorted((t - alpha) / b for b, t in points if b >= 1 << 16)
    return alpha, _median(slopes)


def allreduce_seconds(nbytes, ranks, link_gbit, alpha_local, beta_local, messages=1):
    """Allreduce of ``nbytes`` over ``ranks`` machines, as MPI libraries do it (Thakur, Rabenseifner
    and Gropp 2005): large messages by reduce-scatter + allgather, in which each rank sends and
    receives 2 (N-1)/N of the bytes in 2 log2(N) rounds; small ones by recursive doubling, log2(N)
    rounds. Each round pays the network latency and the local one; each byte the link and the
    measured local reduction cost. ``messages`` such allreduces."""
    if ranks == 1:
        return 0.0
    rounds = math.ceil(math.log2(ranks))
    if nbytes == 0:  # small: latency only
        return messages * rounds * (NET_LATENCY_S + alpha_local)
    moved = 2 * (ranks - 1) / ranks * nbytes
    return messages * (2 * rounds * (NET_LATENCY_S + alpha_local) + moved * (8 / (link_gbit * 1e9) + beta_local))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few steps: a smoke test")
    p.add_argument("--out", default=os.path.join(HERE, "distributed.md"), help="markdown report")
    p.add_argument("--models", default="lenet5,resnet20,resnet20-localbn")
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "STEPS", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--allreduce-worker", metavar="OUT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_train(args.worker[0], int(args.worker[1]), args.worker[2])
        return 0
    if args.allreduce_worker:
        worker_allreduce(args.allreduce_worker, args.quick)
        return 0

    mode = "quick" if args.quick else "full"
    load = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "allreduce.json")
        _launch(2, ["--allreduce-worker", out] + (["--quick"] if args.quick else []), threads=1)
        with open(out) as f:
            allreduce = json.load(f)
        for model in args.models.split(","):
            steps = STEPS[mode][model]
            for n in RANKS:
                for kind in ("mpi", "threads"):
                    path = os.path.join(tmp, f"{model}-{kind}-{n}.json")
                    if kind == "mpi":
                        _launch(n, ["--worker", model, str(steps), path], threads=1)
                    else:
                        _launch(1, ["--worker", model, str(steps), path], threads=n, use_mpi=False)
                    with open(path) as f:
                        runs[(model, kind, n)] = json.load(f)
                    r = runs[(model, kind, n)]
                    print(f"{model} {kind} {n}: {BATCH / _median(r['step_times']):.0f} img/s", flush=True)
    alpha, beta = _fit(allreduce)
    lines = _report(runs, allreduce, alpha, beta, args.models.split(","), mode, started, load)
    text = "\n".join(lines) + "\n"
    print(text)
    sys.path.insert(0, ROOT)
    from striate.atomic import atomic_write_text
    atomic_write_text(args.out, text)
    return 0


def _report(runs, allreduce, alpha, beta, models, mode, started, load):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Data-parallel training on MPI: measured on this machine", "",
        f"{started}, {os.cpu_count()} cores ({cpu}), load average at the start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (a machine shared with other jobs: timings are inflated and "
        f"noisy), `python benchmarks/bench_distributed.py{' --quick' if mode == 'quick' else ''}`.", "",
        f"Global batch {BATCH} images (split over the ranks), SGD momentum 0.9, synthetic float32 images; median of "
        f"{STEPS[mode]['lenet5']} (LeNet-5) and {STEPS[mode]['resnet20']} (ResNet-20) steps after {WARMUP} warm-up "
        "steps. `ranks`: `mpiexec -n R`, one thread per rank (striate and BLAS), DistributedOptimizer, ResNet-20 "
        "with SyncBatchNorm. `threads`: one process, no MPI, striate on T threads. With 4 the 2 cores are "
        "oversubscribed: that row measures overheads, not scaling.", "",
        "| model | R or T | threads per rank (read back) | ranks x 1 thread img/s | 1 process x T threads img/s | ranks / threads | "
        "CPU s per 1000 images, ranks | CPU s per 1000 images, threads | "
        "wait for the slower rank ms/step | gradient allreduce ms/step | SyncBN allreduce ms/step | "
        "allreduce share of the step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for n in RANKS:
            m, t = runs[(model, "mpi", n)], runs[(model, "threads", n)]
            sm, st_ = _median(m["step_times"]), _median(t["step_times"])
            ar = m["grad_allreduce_s"] + m["bn_allreduce_s"]
            lines.append(f"| {model} | {n} | {m['threads']} | {BATCH / sm:.0f} | {BATCH / st_:.0f} | {st_ / sm:.2f} | "
                         f"{1e3 * m['cpu_per_step'] / BATCH:.2f} | {1e3 * t['cpu_per_step'] / BATCH:.2f} | "
                         f"{1e3 * m['wait_s']:.2f} | {1e3 * m['grad_allreduce_s']:.2f} | {1e3 * m['bn_allreduce_s']:.2f} | {ar / sm:.1%} |")
    lines += [
        "", "Before the gradient allreduce every rank waits at a barrier for the slowest (the wait column), so "
        "the gradient allreduce column is the transfer itself; SyncBatchNorm's allreduces sit inside forward "
        "and backward, and their time includes waiting for the slower rank at each of them.", "",
        "## Allreduce cost on this machine (2 ranks, shared memory)", "",
        "| bytes | fastest of the repeats, us |", "|---|---|",
    ]
    lines += [f"| {b:,} | {1e6 * t:.1f} |" for b, t in allreduce]
    lines += [
        "", f"Fit: t = {1e6 * alpha:.1f} us + {1e9 * beta:.3f} ns/byte ({1 / beta / 1e9:.2f} GB/s): the "
        "latency and per-byte cost of one Allreduce through shared memory.", "",
        "## Model: N machines, one rank each", "",
        "Each machine computes a local batch of 128 (weak scaling) in the CPU time of the one-rank run above "
        "(the step's time on a core of its own; the wall time is inflated by the other jobs here); the gradients then "
        "cross an allreduce as MPI does a large one (reduce-scatter + allgather: 2(N-1)/N of the bytes over the "
        f"link in 2 log2 N rounds, each with {1e6 * NET_LATENCY_S:.0f} us of network latency, an assumption for "
        "TCP over Ethernet, nothing here measures a network, plus the measured local latency and per-byte "
        "cost). ResNet-20 adds SyncBatchNorm's 2 x 19 small allreduces per step (recursive doubling, "
        "log2 N rounds of latency each). "
        "No overlap with backward. Efficiency = compute / (compute + allreduce); throughput in images/s of "
        "the whole cluster.", "",
    ]
    header = "| model | link | " + " | ".join(f"N={n}" for n in MODEL_RANKS) + " |"
    lines += [header, "|---|---|" + "---|" * len(MODEL_RANKS)]
    for model in models:
        one = runs[(model, "mpi", 1)]
        compute = one["cpu_per_step"]  # one machine's step on 128 images, one thread, on its own core
        grad_bytes = one["grad_bytes"]
        bn_messages = 2 * 19 if model == "resnet20" else 0  # SyncBatchNorm's, latency-bound
        for link in LINKS_GBIT:
            cells = []
            for n in MODEL_RANKS:
                ar = allreduce_seconds(grad_bytes, n, link, alpha, beta)
                ar += allreduce_seconds(0, n, link, alpha, 0.0, messages=bn_messages)
                eff = compute / (compute + ar)
                cells.append(f"{n * BATCH / (compute + ar):,.0f} img/s ({eff:.0%})")
            lines.append(f"| {model} ({grad_bytes / 1e6:.2f} MB of gradients) | {link} Gbit/s | " +
                         " | ".join(cells) + " |")
    lines += [
        "", "What two cores can and cannot show: 2 ranks x 1 thread against 1 process x 2 threads compares "
        "MPI's data parallelism with striate's own thread parallelism on the same 2 cores; it cannot show "
        "speed-up beyond 2, and the 4-rank row is oversubscribed. The N-machine table is a model built from "
        "the measured compute and allreduce costs and the assumed link, not a measurement.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
