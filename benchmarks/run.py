"""striate against PyTorch CPU, side by side in one run: training, inference, latency, conv layers, memory.

    python benchmarks/run.py                      # full suite, ~3-5 minutes on 2 cores
    python benchmarks/run.py --quick              # few repeats: a smoke test, ~1 minute
    python benchmarks/run.py --only train,conv    # some sections (gemm conv train infer latency memory check)
    python benchmarks/run.py --threads 4 --out /tmp/results.md

Both frameworks run the same network (PyTorch twins in ``_torch_models.py``, given the striate model's
weights and checked to compute the same outputs and losses before anything is timed), on the same
float32 batch, with the same thread count, PyTorch in channels-last memory (the NHWC layout striate
uses). Every ratio is striate / PyTorch of the quantity in its row; tables say which way is better.
The results go to stdout and, as a markdown report with the machine's description, to ``--out``.
See ``benchmarks/README.md`` for the method and what each number means.

PyTorch is needed only here (``pip install torch==2.13.0``); the library never imports it.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECTIONS = ("check", "gemm", "conv", "train", "infer", "latency", "memory")
BATCH = 128           # the training batch of both models (and of the inference throughput)
LR, MOMENTUM = 0.01, 0.9
INPUT_SHAPES = {"lenet5": (28, 28, 1), "resnet20": (32, 32, 3), "resnet32": (32, 32, 3), "resnet56": (32, 32, 3),
                "vgg11_bn_cifar": (32, 32, 3)}
# (model, batch) timed by the train and infer sections; --extra adds EXTRA_WORKLOADS (ResNet-20 at other
# batch sizes, so that the ratios are not tuned to one shape; batch 512 alone takes ~4x batch 128's time)
WORKLOADS = [("lenet5", BATCH), ("resnet20", BATCH), ("vgg11_bn_cifar", BATCH)]
EXTRA_WORKLOADS = [("resnet20", 32), ("resnet20", 512)]

# Repeats: full ~2-3 min on 2 cores, quick < 1 min. Timed runs after `warmup` untimed ones; ResNet-20
# steps take ~0.5 s in striate, so they get fewer runs than LeNet-5's ~15 ms steps. On a shared machine
# single runs vary by +-30%, so the best of many is the figure that measures the code.
REPEATS = {
    "full": dict(warmup=2, rounds=3, gemm=20, conv=12, train_lenet5=60, train_resnet20=12, infer_lenet5=60,
                 infer_resnet20=12, train_vgg11_bn_cifar=6, infer_vgg11_bn_cifar=6, latency=300, check_steps=5,
                 memory_steps=2, conv_cases="all"),
    # quick: every code path once, a few runs each; conv only one layer of each kind
    "quick": dict(warmup=1, rounds=1, gemm=5, conv=2, train_lenet5=5, train_resnet20=2, infer_lenet5=5,
                  infer_resnet20=2, train_vgg11_bn_cifar=2, infer_vgg11_bn_cifar=2, latency=50, check_steps=2,
                  memory_steps=1, conv_cases="quick"),
}


if HERE not in sys.path:
    sys.path.insert(0, HERE)
from _env import DEFAULT_THREADS, blas_env as _blas_env, threads_from_argv as _threads_from_argv  # noqa: E402


if __name__ == "__main__":
    # OpenBLAS fixes its thread count when numpy loads, so the limit must be in the environment
    # before anything imports numpy (torch does too); threadpoolctl re-applies it later if present.
    os.environ.update(_blas_env(_threads_from_argv(sys.argv[1:])))

import numpy as np  # noqa: E402

from bench_core import bench_conv, conv_cases, gemm_rate, measure  # noqa: E402

from striate.atomic import atomic_write_text  # noqa: E402
from striate.backend.memory import keep_freed_memory  # noqa: E402


# ----------------------------------------------------------------------------- models and checks
def build_twins(name: str, seed: int = 0, image: int | None = None):
    """A striate model and its PyTorch twin with the same weights, the twin in channels-last memory.

    Args:
        name: a key of ``_torch_models.TWINS`` (``"lenet5"``, ``"resnet20"``, ``"vgg11_bn_cifar"``, ...).
        seed: initialisation seed of the striate model (the twin gets its weights).
        image: build for ``image x image`` inputs instead of the native size (the CIFAR ResNets,
            whose global pooling takes any size).

    Returns:
        ``(striate_model, torch_model)``, both in training mode.

    Example::

        >>> s, t = build_twins("resnet20")
        >>> s.num_parameters() == sum(p.numel() for p in t.parameters())
        True
    """
    import striate as st
    import torch
    from _torch_models import TWINS, copy_weights

    if name not in TWINS:
        raise ValueError(f"name must be one of {sorted(TWINS)}. Received: name={name!r}.")
    shape = None if image is None else (image, image, INPUT_SHAPES[name][2])
    if name == "vgg11_bn_cifar":
        s_model = st.models.vgg_cifar(11, rng=seed, input_shape=shape)
    else:
        s_model = getattr(st.models, name)(rng=seed, input_shape=shape)
    t_model = TWINS[name]().to(memory_format=torch.channels_last)
    copy_weights(s_model, t_model)
    return s_model, t_model


def _batch(name: str, n: int = BATCH, seed: int = 0, image: int | None = None):
    """A fixed float32 NHWC batch and integer labels (LeNet: [0, 1) pixels; others: standardised)."""
    rng = np.random.default_rng(seed)
    h, w, c = INPUT_SHAPES[name]
    shape = (n, h, w, c) if image is None else (n, image, image, c)
    x = rng.random(shape, dtype=np.float32) if name == "lenet5" else rng.standard_normal(shape, dtype=np.float32)
    return x, rng.integers(0, 10, n)


class Pair:
    """A striate model and its torch twin with optimisers and one batch: step and predict functions."""

    def __init__(self, torch, name: str, batch: int = BATCH, image: int | None = None):
        import striate as st
        import striate.functional as F
        from _torch_models import to_torch_images

        self.torch, self.st, self.F, self.name, self.batch = torch, st, F, name, batch
        self.s_model, self.t_model = build_twins(name, image=image)
        self.s_opt = st.optim.SGD(self.s_model.parameters(), lr=LR, momentum=MOMENTUM)
        self.t_opt = torch.optim.SGD(self.t_model.parameters(), lr=LR, momentum=MOMENTUM)
        self.x, self.y = _batch(name, n=max(batch, 8), image=image)
        self.x, self.y = self.x[:batch], self.y[:batch]
        self.x8 = _batch(name, n=8, image=image)[0]   # the twin check's batch, whatever ``batch`` is
        self.tx, self.ty = to_torch_images(self.x), torch.from_numpy(self.y)
        self.x1, self.tx1 = self.x[:1].copy(), to_torch_images(self.x[:1])

    def s_step(self) -> float:
        """One striate training step: forward, cross-entropy, backward, SGD momentum update."""
        self.s_opt.zero_grad()
        loss = self.F.cross_entropy(self.s_model(self.st.Tensor(self.x)), self.y)
        loss.backward()
        self.s_opt.step()
        return float(loss.data)

    def t_step(self) -> float:
        """The same step in PyTorch."""
        self.t_opt.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.t_model(self.tx), self.ty)
        loss.backward()
        self.t_opt.step()
        return float(loss.detach())

    def s_predict(self, x):
        with self.st.no_grad():
            return self.s_model(self.st.Tensor(x)).data

    def t_predict(self, tx):
        with self.torch.no_grad():
            return self.t_model(tx)

    def eval(self):
        self.s_model.eval()
        self.t_model.eval()


def check_pair(pair: Pair, steps: int) -> dict:
    """Refuse to time two different computations: same parameter count, same outputs (training and
    evaluation mode), and the same, decreasing losses over ``steps`` SGD steps on the benchmark batch.

    Raises AssertionError with the numbers when a twin drifts from its striate model.
    """
    from _torch_models import copy_weights, num_parameters

    name = pair.name
    n_s, n_t = pair.s_model.num_parameters(), num_parameters(pair.t_model)
    assert n_s == n_t, f"{name}: striate has {n_s:,} parameters, its torch twin {n_t:,}"
    from _torch_models import to_torch_images

    x8, tx8 = pair.x8, to_torch_images(pair.x8)
    diffs = {}
    for mode in ("train", "eval"):
        pair.s_model.train(mode == "train")
        pair.t_model.train(mode == "train")
        ys, yt = pair.s_predict(x8), pair.t_predict(tx8).numpy()
        assert ys.shape == yt.shape == (8, 10), f"{name}: output shapes striate {ys.shape}, torch {yt.shape}"
        diffs[mode] = float(np.abs(ys - yt).max())
        assert np.allclose(ys, yt, rtol=1e-3, atol=1e-4), f"{name} ({mode} mode): outputs differ by {diffs[mode]:.2e}"
    pair.s_model.train()
    pair.t_model.train()
    # the 8-image training-mode forwards moved the BN running statistics: give torch striate's
    # again, so that the two models stay in step for everything that follows
    copy_weights(pair.s_model, pair.t_model)
    s_losses = [pair.s_step() for _ in range(steps)]
    t_losses = [pair.t_step() for _ in range(steps)]
    for who, losses in (("striate", s_losses), ("torch", t_losses)):
        assert losses[-1] < losses[0], f"{name}: {who} loss did not decrease over {steps} steps: {losses}"
    assert np.allclose(s_losses, t_losses, rtol=1e-3, atol=1e-4), (
        f"{name}: the two frameworks' losses diverge: striate {s_losses}, torch {t_losses}")
    return dict(model=name, batch=pair.batch, params=n_s, max_diff_train=diffs["train"], max_diff_eval=diffs["eval"],
                s_losses=s_losses, t_losses=t_losses)


def bench_folded(pairs: dict, reps: dict, warmup: int) -> list[dict]:
    """Inference with batch norm folded into the convs (``st.nn.fold_batch_norm``) for the models with
    BN, against torch's twin folded the same way (``fuse_conv_bn_eval``); the folded models are
    checked against the unfolded ones' logits first. Rows like the infer section's."""
    from _torch_models import fold_torch_twin, to_torch_images

    rows = []
    for label, pair in pairs.items():
        if pair.name == "lenet5" or pair.batch != BATCH:
            continue
        s_model = pair.st.nn.fold_batch_norm(pair.s_model)
        t_model = fold_torch_twin(copy.deepcopy(pair.t_model))
        # each folded model against its own unfolded one: after the timed training steps the two
        # frameworks' weights have drifted apart by float rounding, so not across frameworks
        tx8 = to_torch_images(pair.x8)
        with pair.st.no_grad(), pair.torch.no_grad():
            checks = (("striate", s_model(pair.st.Tensor(pair.x8)).data, pair.s_predict(pair.x8)),
                      ("torch", t_model(tx8).numpy(), pair.t_predict(tx8).numpy()))
        for who, folded, plain in checks:
            assert np.allclose(folded, plain, rtol=1e-3, atol=1e-4), f"{label}: folded {who} logits differ"

        def t_folded(model=t_model, tx=pair.tx):
            with pair.torch.no_grad():
                return model(tx)

        def s_folded(model=s_model, x=pair.x):
            with pair.st.no_grad():
                return model(pair.st.Tensor(x)).data

        s, t = measure([s_folded, t_folded], _repeats(reps, "infer", pair.name, pair.batch), warmup, reps["rounds"])
        rows.append(dict(model=label + ", BN folded (both)", s_ips=pair.batch / s.best, t_ips=pair.batch / t.best,
                         s_median=s.median, t_median=t.median))
    return rows


# ----------------------------------------------------------------------------- memory (subprocess)
def _rss_reset() -> bool:
    """Reset this process's resident-set high-water mark, VmHWM (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_rss_mb():
    """``(VmRSS, VmHWM)`` of this process in MiB from /proc/self/status, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "VmHWM")))
        return tuple(int(fields[k].split()[0]) / 2 ** 10 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        return None


def _maxrss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10   # bytes on macOS, KiB on Linux


def memory_child(kind: str, threads: int, steps: int, batch: int = BATCH) -> dict:
    """Peak memory of ResNet-20 training steps at ``batch`` (128), measured in this (fresh) process.

    ``kind`` is ``"striate"`` or ``"torch"`` — peak resident set size during the steps minus the
    resident set before them — or ``"striate-tracemalloc"``: the peak of the bytes numpy reported to
    tracemalloc during the steps (striate's arrays alone).

    Before the baseline is taken, imports are done, the model, optimiser and batch exist, and one
    warm-up step has run at batch 2: it loads the code the step needs (libtorch's kernels are
    file-backed pages that count in the resident set too) and creates the momentum buffers, while
    its activations are too small to leave freed memory in the allocator for the measured step.

    On Linux the peak is VmHWM after resetting it through /proc/self/clear_refs. ``ru_maxrss`` is the
    same counter in ``getrusage``, but it cannot be reset and a spawned child inherits its parent's
    value through exec, so in a child of a big process it would report the parent's size; it is the
    fallback elsewhere (macOS), where the child's baseline must then exceed the parent's peak.
    """
    import torch

    torch.set_num_threads(threads)
    x, y = _batch("resnet20", n=batch)
    x2, y2 = _batch("resnet20", n=2)
    if kind.startswith("striate"):
        import striate as st
        import striate.functional as F

        model = st.models.resnet20(rng=0)
        opt = st.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step(x, y):
            opt.zero_grad()
            F.cross_entropy(model(st.Tensor(x)), y).backward()
            opt.step()
    elif kind == "torch":
        from _torch_models import to_torch_images, torch_resnet20

        model = torch_resnet20().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

        def step(x, y):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(to_torch_images(x)), torch.from_numpy(y)).backward()
            opt.step()
    else:
        raise ValueError(f"kind must be 'striate', 'torch' or 'striate-tracemalloc'. Received: kind={kind!r}.")
    step(x2, y2)
    gc.collect()
    if kind == "striate-tracemalloc":
        import tracemalloc

        tracemalloc.start()
        for _ in range(steps):
            step(x, y)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        return dict(kind=kind, method="tracemalloc peak", peak_mb=peak)
    if _rss_reset() and _proc_rss_mb() is not None:
        baseline = _proc_rss_mb()[0]
        for _ in range(steps):
            step(x, y)
        peak, method = _proc_rss_mb()[1], "VmHWM - VmRSS before (HWM reset)"
    else:
        baseline = _maxrss_mb()
        for _ in range(steps):
            step(x, y)
        peak, method = _maxrss_mb(), "ru_maxrss - ru_maxrss before"
    return dict(kind=kind, method=method, baseline_mb=baseline, peak_mb=peak - baseline)


def bench_memory(threads: int, steps: int, batch: int = BATCH) -> list[dict]:
    """Run :func:`memory_child` for each kind in a fresh interpreter (this script, hidden flag).

    The children run at the same time: each measures only its own resident set, so they do not
    disturb one another's numbers, and the section takes one child's time instead of three.
    """
    env = dict(os.environ, **_blas_env(threads))
    procs = {}
    for kind in ("striate", "torch", "striate-tracemalloc"):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", kind, "--threads", str(threads),
               "--memory-steps", str(steps), "--memory-batch", str(batch)]
        procs[kind] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    rows = []
    for kind, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"memory measurement '{kind}' failed:\n{err[-2000:]}")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


# ----------------------------------------------------------------------------- machine description
def _striate_threads() -> int:
    import striate as st

    return st.get_num_threads()


def machine_info(torch, threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            i = libs[0]
            blas = f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
    except ImportError:
        try:
            dep = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            blas = f"{dep.get('name')} {dep.get('version')}"
        except Exception:  # noqa: BLE001  (best effort: the description is informative only)
            pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "threads": f"{threads} (torch.set_num_threads; striate.set_num_threads: "
                   f"{_striate_threads()}, numpy's BLAS one thread inside each)",
        "numpy / BLAS": f"{np.__version__} / {blas}",
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads, channels-last)",
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at start": f"{load:.2f}",
    }


def _limit_threads(threads: int, torch):
    """``threads`` threads for PyTorch and for striate. striate splits its ops over its own threads
    and sets numpy's BLAS to one thread during its calls (striate.backend.threads); without threadpoolctl it
    runs on one thread and BLAS keeps ``threads`` (from the environment set at start-up)."""
    import striate as st

    torch.set_num_threads(threads)
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads, user_api="blas")   # keep the object: it holds the limit
    except ImportError:
        pass
    try:
        st.set_num_threads(threads)
    except ImportError:
        st.set_num_threads(1)
    return limiter


class _blas_threads:
    """Give numpy's BLAS its own threads back for a while (the GEMM-rate measurement): the machine's
    GEMM rate is that of the multi-threaded BLAS, whatever striate does with it."""

    def __enter__(self):
        import striate as st

        self.threads = st.get_num_threads()
        st.set_num_threads(1)

    def __exit__(self, *exc):
        import striate as st

        st.set_num_threads(self.threads)


# ----------------------------------------------------------------------------- report
def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict) -> dict:
    """Markdown for each section present in ``results``: ``{section: text}``, in report order."""
    out = {}
    if "machine" in results:
        out["machine"] = _table(["", ""], list(results["machine"].items()))
    if "gemm" in results:
        g = results["gemm"]
        runs = results["repeats"]["gemm"] * g.get("measurements", 1)
        out["gemm"] = (f"float32 GEMM 1024x1024 @ 1024x1024, best of {runs}: "
                       f"numpy **{g['numpy']:.1f} GFLOP/s**" + (f", torch.mm {g['torch']:.1f} GFLOP/s" if "torch" in g else "")
                       + ". This numpy rate is the 100% of the conv table.")
    if "check" in results:
        rows = [(_label(c["model"], c["batch"]), f"{c['params']:,}", f"{c['max_diff_train']:.1e} / {c['max_diff_eval']:.1e}",
                 " -> ".join(f"{v:.4f}" for v in c["s_losses"]), " -> ".join(f"{v:.4f}" for v in c["t_losses"]))
                for c in results["check"]]
        out["check"] = _table(["model", "params (both)", "max logit diff train / eval",
                               "striate loss", "torch loss"], rows)
    if "train" in results:
        out["train"] = _table(
            ["model", "striate img/s", "torch img/s", "striate / torch", "ratio of medians"],
            [(r["model"], f"{r['s_ips']:,.0f}", f"{r['t_ips']:,.0f}", f"{r['s_ips'] / r['t_ips']:.2f}",
              f"{r['t_median'] / r['s_median']:.2f}") for r in results["train"]])
    if "infer" in results:
        out["infer"] = _table(
            ["model (eval, no_grad)", "striate img/s", "torch img/s", "striate / torch", "ratio of medians"],
            [(r["model"], f"{r['s_ips']:,.0f}", f"{r['t_ips']:,.0f}", f"{r['s_ips'] / r['t_ips']:.2f}",
              f"{r['t_median'] / r['s_median']:.2f}") for r in results["infer"]])
    if "latency" in results:
        r = results["latency"]
        out["latency"] = _table(
            ["model (batch 1, eval, no_grad)", "striate ms (median)", "torch ms (median)", "striate / torch",
             "striate ms (best)", "torch ms (best)"],
            [("lenet5", f"{r['s_median'] * 1e3:.3f}", f"{r['t_median'] * 1e3:.3f}",
              f"{r['s_median'] / r['t_median']:.2f}", f"{r['s_best'] * 1e3:.3f}", f"{r['t_best'] * 1e3:.3f}")])
    if "conv" in results:
        gemm = results["gemm"]["numpy"]
        rows = []
        for r in results["conv"]:
            c = r.case
            f_fwd, f_bwd = c.forward_flops, 2 * c.forward_flops
            sf, tf = f_fwd / r.striate_forward.best / 1e9, f_fwd / r.torch_forward.best / 1e9
            sb, tb = f_bwd / r.striate_backward.best / 1e9, f_bwd / r.torch_backward.best / 1e9
            rows.append((c.name, f"{sf:.1f} ({100 * sf / gemm:.0f}%)", f"{tf:.1f} ({100 * tf / gemm:.0f}%)",
                         f"{sf / tf:.2f}", f"{sb:.1f} ({100 * sb / gemm:.0f}%)", f"{tb:.1f} ({100 * tb / gemm:.0f}%)",
                         f"{sb / tb:.2f}", f"{r.striate_forward.best * 1e3:.2f} / {r.striate_backward.best * 1e3:.2f}"))
        out["conv"] = _table(["layer (NHWC input)", "fwd striate GFLOP/s (% GEMM)", "fwd torch", "fwd s/t",
                              "bwd striate GFLOP/s (% GEMM)", "bwd torch", "bwd s/t", "striate ms fwd / bwd"], rows)
    if "memory" in results:
        by = {m["kind"]: m for m in results["memory"]}
        s, t = by["striate"], by["torch"]
        rows = [("striate", f"{s['peak_mb']:.0f}", f"{s['baseline_mb']:.0f}", s["method"]),
                ("torch", f"{t['peak_mb']:.0f}", f"{t['baseline_mb']:.0f}", t["method"]),
                ("striate / torch", f"{s['peak_mb'] / t['peak_mb']:.2f}" if t["peak_mb"] > 0 else "n/a", "",
                 "lower is better")]
        if "striate-tracemalloc" in by:
            rows.append(("striate numpy arrays", f"{by['striate-tracemalloc']['peak_mb']:.0f}", "", "tracemalloc peak"))
        out["memory"] = _table(["ResNet-20 training step, batch 128", "peak MiB above baseline",
                                "baseline RSS MiB", "method"], rows)
    return out


TITLES = {
    "machine": "Machine",
    "gemm": "GEMM rate (the ceiling of im2col + GEMM)",
    "check": "Twin checks (same parameters, same outputs, same decreasing losses before timing)",
    "train": "Training throughput (forward + cross-entropy + backward + SGD momentum; higher is better)",
    "infer": "Inference throughput (higher is better)",
    "latency": "Batch-1 latency (lower is better)",
    "conv": "conv2d per layer: forward, and backward (input + weight gradients = 2x forward FLOPs)",
    "memory": "Peak memory of a training step (each in a fresh process; lower is better)",
}


def write_report(results: dict, path: str, command: str) -> None:
    """Write the markdown report atomically (temp file in the same folder, then ``os.replace``)."""
    parts = ["# striate vs PyTorch CPU", "",
             f"Generated by `{command}` ({results['mode']} mode). Ratios are striate / PyTorch of each "
             "row's quantity; see benchmarks/README.md for the method.", ""]
    for key, text in render(results).items():
        parts += [f"## {TITLES[key]}", "", text, ""]
    atomic_write_text(path, "\n".join(parts))


# ----------------------------------------------------------------------------- the suite
def _repeats(reps: dict, kind: str, name: str, batch: int) -> int:
    """Timed runs of ``kind`` ("train" / "infer") for ``name`` at ``batch``: the batch-128 count scaled
    by 128 / batch (same total images), between 2 and 3x the batch-128 count."""
    base = reps[f"{kind}_{name}"]
    return int(min(3 * base, max(2, round(base * BATCH / batch))))


def _label(name: str, batch: int) -> str:
    return f"{name} (batch {batch})"


def run_suite(torch, sections: set, reps: dict, threads: int, workloads=None) -> dict:
    """Run the chosen sections, printing each table as it is done; return the raw results.

    ``workloads``: ``(model, batch)`` pairs for the train and infer sections (default ``WORKLOADS``).
    """
    workloads = WORKLOADS if workloads is None else workloads
    start = time.perf_counter()

    def _show(results, key):
        print(f"\n== {TITLES[key]}  [{time.perf_counter() - start:.0f} s]\n{render(results)[key]}", flush=True)

    results = {"repeats": reps}
    results["machine"] = machine_info(torch, threads)
    _show(results, "machine")
    warmup = reps["warmup"]
    if sections & {"gemm", "conv"}:
        with _blas_threads():
            results["gemm"] = gemm_rate(reps["gemm"], torch=torch)
        _show(results, "gemm")

    if sections & {"check", "train", "infer", "latency"}:
        # latency alone needs LeNet-5 only
        chosen = workloads if sections & {"check", "train", "infer"} else [("lenet5", BATCH)]
        pairs = {_label(name, batch): Pair(torch, name, batch) for name, batch in chosen}
        results["check"] = [check_pair(pair, reps["check_steps"]) for pair in pairs.values()]
        _show(results, "check")
        if "train" in sections:
            results["train"] = []
            for label, pair in pairs.items():
                # the check's SGD steps have warmed both models up already: one warm-up run fewer
                s, t = measure([pair.s_step, pair.t_step], _repeats(reps, "train", pair.name, pair.batch),
                               warmup - 1, reps["rounds"])
                results["train"].append(dict(model=label, s_ips=pair.batch / s.best, t_ips=pair.batch / t.best,
                                             s_median=s.median, t_median=t.median))
            _show(results, "train")
        for pair in pairs.values():
            pair.eval()
        if "infer" in sections:
            results["infer"] = []
            for label, pair in pairs.items():
                s, t = measure([lambda p=pair: p.s_predict(p.x), lambda p=pair: p.t_predict(p.tx)],
                               _repeats(reps, "infer", pair.name, pair.batch), warmup, reps["rounds"])
                results["infer"].append(dict(model=label, s_ips=pair.batch / s.best, t_ips=pair.batch / t.best,
                                             s_median=s.median, t_median=t.median))
            results["infer"] += bench_folded(pairs, reps, warmup)
            _show(results, "infer")
        if "latency" in sections:
            p = pairs[_label("lenet5", BATCH)]
            s, t = measure([lambda: p.s_predict(p.x1), lambda: p.t_predict(p.tx1)], reps["latency"],
                           warmup=10, rounds=reps["rounds"])
            results["latency"] = dict(s_median=s.median, t_median=t.median, s_best=s.best, t_best=t.best)
            _show(results, "latency")
        del pairs
        gc.collect()

    if "conv" in sections:
        results["conv"] = []
        for case in conv_cases(quick=reps["conv_cases"] == "quick"):
            results["conv"].append(bench_conv(torch, case, reps["conv"], warmup, reps["rounds"]))
            print(f"  conv {case.name}: done", flush=True)
        # the GEMM ceiling once more, after the convs: load from other processes only lowers a rate,
        # so the higher of the two measurements is the better estimate of what BLAS can do here
        with _blas_threads():
            again = gemm_rate(reps["gemm"], torch=torch)
        results["gemm"] = {k: max(v, again[k]) for k, v in results["gemm"].items()}
        results["gemm"]["measurements"] = 2
        _show(results, "gemm")
        _show(results, "conv")

    if "memory" in sections:
        results["memory"] = bench_memory(threads, reps["memory_steps"])
        _show(results, "memory")
    return results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="striate vs PyTorch CPU benchmark suite.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"sections: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke test, ~1 minute)")
    parser.add_argument("--only", default=None, help="comma-separated sections to run (default: all)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"threads for PyTorch and numpy's BLAS (default {DEFAULT_THREADS})")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"),
                        help="markdown report to write (default benchmarks/results.md)")
    # hidden: one memory measurement in this fresh process (used by the memory section)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--extra", action="store_true",
                        help="also time ResNet-20 at batch 32 and 512 in the train and infer sections")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1. Received: --threads {args.threads}.")
    if args.only is None:
        args.sections = set(SECTIONS)
    else:
        args.sections = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = sorted(args.sections - set(SECTIONS))
        if unknown or not args.sections:
            parser.error(f"--only takes sections among {', '.join(SECTIONS)}. Received: --only {args.only}.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("benchmarks/run.py compares striate with PyTorch, which is not installed.\n"
              "Install the CPU build with: pip install torch==2.13.0", file=sys.stderr)
        return 2
    limiter = _limit_threads(args.threads, torch)  # noqa: F841  (held for the whole run)
    keep_freed_memory()  # as the striate command does: malloc keeps freed memory (opt-in)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.threads, args.memory_steps, args.memory_batch)))
        return 0
    mode = "quick" if args.quick else "full"
    workloads = WORKLOADS + (EXTRA_WORKLOADS if args.extra else [])
    results = run_suite(torch, args.sections, dict(REPEATS[mode]), args.threads, workloads)
    results["mode"] = mode
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(results, args.out, command.strip())
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
