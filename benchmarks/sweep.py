"""How cost grows: striate and PyTorch side by side against batch size, image size, depth, and memory.

    python benchmarks/sweep.py --quick     # a few points, few repeats: ~10 minutes on 2 busy cores
    python benchmarks/sweep.py             # every point, more repeats
    python benchmarks/sweep.py --only batch,memory --out /tmp/cost.md

Four sweeps of a training step (forward, cross-entropy, backward, SGD momentum), each point timed for
both frameworks in the same run, interleaved (striate block, torch block, striate block, ...), the
figure being the median of the timed runs:

* ``batch``: ResNet-20 at 32x32, batch 1 to 512 — images/s;
* ``image``: ResNet-20 on 32, 64 and 128-pixel images (its global pooling takes any size) — images/s;
* ``depth``: ResNet-20, -32 and -56 (CIFAR, option A shortcuts) at 32x32 — images/s;
* ``memory``: peak resident memory of a ResNet-20 step against batch size, each framework in a
  fresh process (``run.py``'s memory children);
* ``ops``: where each framework's step time goes, by op, at a small and a large batch, per image —
  the per-layer evidence for the shape of the curves (striate: each op's forward and backward timed
  by wrapping them; torch: ``torch.profiler``'s self CPU time per aten op).

Both frameworks run twins (``_torch_models.py``) with the same weights, checked by ``run.check_pair``
(same outputs, same decreasing losses) at every point up to batch 64 before it is timed; PyTorch in
channels-last memory, the same thread count on both sides. Writes a markdown table and a PNG
(``--out``, default ``benchmarks/cost_growth.md`` and ``.png``; needs matplotlib).

On a shared machine absolute numbers mean little; the ratio striate / PyTorch at each point, taken
from runs interleaved in time, is the figure to read, and even it moves by +-20% between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from _env import DEFAULT_THREADS, blas_env, threads_from_argv  # noqa: E402

if __name__ == "__main__":
    os.environ.update(blas_env(threads_from_argv(sys.argv[1:])))   # before numpy loads (see _env)

import run  # noqa: E402  (the suite: twins, checks, memory children, thread settings)
from bench_core import measure  # noqa: E402

from striate.atomic import atomic_write_text  # noqa: E402

SECTIONS = ("batch", "image", "depth", "memory", "ops")
# points and repeats; `runs` timed runs per framework and point, split over `rounds` interleaved blocks
PLANS = {
    "quick": dict(batches=(1, 8, 64, 512), image_batch=8, images=(32, 64, 128), depth_batch=32,
                  depths=(20, 32, 56), memory_batches=(16, 128, 512), runs=3, rounds=3, warmup=1,
                  ops_batches=(8, 256), ops_steps=2),
    "full": dict(batches=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), image_batch=32, images=(32, 64, 128),
                 depth_batch=128, depths=(20, 32, 56), memory_batches=(8, 32, 128, 512), runs=6, rounds=3,
                 warmup=2, ops_batches=(8, 512), ops_steps=3),
}
CHECK_UP_TO = 64   # the twin check runs SGD steps on the point's batch: cheap up to here


def time_point(torch, name: str, batch: int, image: int | None, plan: dict) -> dict:
    """Training img/s of striate and torch for one (model, batch, image size) point, medians."""
    pair = run.Pair(torch, name, batch, image)
    if batch <= CHECK_UP_TO:
        run.check_pair(pair, steps=2)
    # steps of ~0.1 s or more: few runs per block. Tiny steps (batch 1): enough runs that a block
    # lasts a while, so the median is not one scheduler tick
    runs = plan["runs"] if batch >= 8 else 10 * plan["runs"]
    s, t = measure([pair.s_step, pair.t_step], runs, plan["warmup"], plan["rounds"])
    return dict(model=name, batch=batch, image=image or run.INPUT_SHAPES[name][0],
                s_ips=batch / s.median, t_ips=batch / t.median, ratio=t.median / s.median)


def sweep_memory(threads: int, batches) -> list[dict]:
    """Peak MiB above baseline of one ResNet-20 step per batch, for striate, torch and striate's arrays."""
    rows = []
    for batch in batches:
        by = {m["kind"]: m for m in run.bench_memory(threads, 1, batch)}
        rows.append(dict(batch=batch, s_mb=by["striate"]["peak_mb"], t_mb=by["torch"]["peak_mb"],
                         arrays_mb=by["striate-tracemalloc"]["peak_mb"]))
        print(f"  memory batch {batch}: striate {rows[-1]['s_mb']:.0f} MiB, torch {rows[-1]['t_mb']:.0f} MiB",
              flush=True)
    return rows


def _striate_op_times(pair, steps: int) -> dict:
    """Seconds per step spent in each striate op's forward and backward (``ConvOp.forward`` ...).

    Wraps ``forward`` and ``backward`` of every Function subclass for the duration; a call made inside
    another wrapped call counts for the outer one only, so the times add up to (at most) the step.
    """
    from striate.tensor import Function

    totals, depth, originals = {}, [0], []
    classes, todo = [], list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo += cls.__subclasses__()

    def wrap(cls, method):
        inner = cls.__dict__[method]

        def timed(self, *args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return inner(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    key = f"{type(self).__name__}.{method}"
                    totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
        return timed

    for cls in classes:
        for method in ("forward", "backward"):
            if method in cls.__dict__:
                originals.append((cls, method, cls.__dict__[method]))
                setattr(cls, method, wrap(cls, method))
    try:
        pair.s_step()   # warm-up, not counted
        totals.clear()
        start = time.perf_counter()
        for _ in range(steps):
            pair.s_step()
        totals["(whole step)"] = time.perf_counter() - start
    finally:
        for cls, method, inner in originals:
            setattr(cls, method, inner)
    return {k: v / steps for k, v in totals.items()}


def _torch_op_times(torch, pair, steps: int) -> dict:
    """Seconds per step of self CPU time per aten op (``aten::convolution_backward`` ...)."""
    from torch.profiler import ProfilerActivity, profile

    pair.t_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            pair.t_step()
        whole = time.perf_counter() - start
    times = {e.key: e.self_cpu_time_total / 1e6 / steps for e in prof.key_averages()}
    times["(whole step)"] = whole / steps
    return times


def sweep_ops(torch, plan: dict) -> list[dict]:
    """Per-op time per image of a ResNet-20 step at each of ``plan["ops_batches"]``, both frameworks."""
    rows = []
    for batch in plan["ops_batches"]:
        pair = run.Pair(torch, "resnet20", batch)
        for who, times in (("striate", _striate_op_times(pair, plan["ops_steps"])),
                           ("torch", _torch_op_times(torch, pair, plan["ops_steps"]))):
            rows += [dict(who=who, batch=batch, op=op, ms_per_image=1e3 * t / batch) for op, t in times.items()]
        print(f"  ops: batch {batch} done", flush=True)
    return rows


def run_sweeps(torch, sections: set, plan: dict, threads: int) -> dict:
    """Every chosen sweep, printing each point as it is measured; the raw results by sweep."""
    points = {"batch": [("resnet20", b, None) for b in plan["batches"]],
              "image": [("resnet20", plan["image_batch"], px) for px in plan["images"]],
              "depth": [(f"resnet{d}", plan["depth_batch"], None) for d in plan["depths"]]}
    results = {}
    for key in ("batch", "image", "depth"):
        if key not in sections:
            continue
        results[key] = []
        for name, batch, image in points[key]:
            start = time.perf_counter()
            results[key].append(time_point(torch, name, batch, image, plan))
            r = results[key][-1]
            print(f"  {key}: {name} batch {batch} {r['image']} px: striate {r['s_ips']:.0f} img/s, "
                  f"torch {r['t_ips']:.0f} img/s, ratio {r['ratio']:.2f}  [{time.perf_counter() - start:.0f} s]",
                  flush=True)
    if "memory" in sections:
        results["memory"] = sweep_memory(threads, plan["memory_batches"])
    if "ops" in sections:
        results["ops"] = sweep_ops(torch, plan)
    return results


def render(results: dict) -> dict:
    """Markdown table per sweep: ``{sweep: text}``."""
    out = {}
    header = ["striate img/s", "torch img/s", "striate / torch"]
    axis = {"batch": ("batch (ResNet-20, 32 px)", "batch"), "image": ("image px (ResNet-20)", "image"),
            "depth": ("model (32 px)", "model")}
    for key, (title, field) in axis.items():
        if key in results:
            rows = [(r[field] if field != "image" else f"{r['image']} (batch {r['batch']})",
                     f"{r['s_ips']:,.1f}", f"{r['t_ips']:,.1f}", f"{r['ratio']:.2f}") for r in results[key]]
            if key == "depth":
                rows = [(f"{row[0]} (batch {r['batch']})",) + row[1:] for row, r in zip(rows, results[key])]
            out[key] = run._table([title] + header, rows)
    if "memory" in results:
        rows = [(r["batch"], f"{r['s_mb']:.0f}", f"{r['t_mb']:.0f}",
                 f"{r['s_mb'] / r['t_mb']:.2f}" if r["t_mb"] > 0 else "n/a", f"{r['arrays_mb']:.0f}")
                for r in results["memory"]]
        out["memory"] = run._table(["batch (ResNet-20 step)", "striate MiB", "torch MiB", "striate / torch",
                                    "striate numpy arrays MiB (tracemalloc)"], rows)
    if "ops" in results:
        out["ops"] = _ops_table(results["ops"])
    return out


def _ops_table(rows: list, top: int = 8) -> str:
    """The ``top`` ops of each framework by time at the largest batch, ms per image at each batch."""
    batches = sorted({r["batch"] for r in rows})
    at = {(r["who"], r["batch"], r["op"]): r["ms_per_image"] for r in rows}
    lines = []
    for who in ("striate", "torch"):
        ops = sorted({r["op"] for r in rows if r["who"] == who and r["batch"] == batches[-1]},
                     key=lambda op: -at[(who, batches[-1], op)])
        ops = [op for op in ops if op != "(whole step)"][:top] + ["(whole step)"]
        for op in ops:
            per = [at.get((who, b, op), 0.0) for b in batches]
            growth = f"{per[-1] / per[0]:.2f}" if per[0] > 0 else "n/a"
            lines.append((who, op, *(f"{v:.3f}" for v in per), growth))
    return run._table(["framework", "op (ResNet-20 step)", *(f"ms/image at batch {b}" for b in batches),
                       f"batch {batches[-1]} / batch {batches[0]}"], lines)


TITLES = {"batch": "Training throughput against batch size (higher is better)",
          "image": "Training throughput against image size",
          "depth": "Training throughput against depth",
          "memory": "Peak memory of a training step against batch size (above the baseline; lower is better)",
          "ops": "Where the time goes: ms per image by op, small and large batch (1.0 in the last column: "
                 "cost linear in the batch)"}


def plot(results: dict, path: str) -> None:
    """One panel per sweep: both frameworks' curves, the ratio striate / torch written at each point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    keys = [k for k in SECTIONS if k in results and k != "ops"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = results[key]
        if key == "memory":
            xs, s, t = [r["batch"] for r in rows], [r["s_mb"] for r in rows], [r["t_mb"] for r in rows]
            ax.set_ylabel("peak MiB above baseline")
        else:
            xs = [r["batch"] if key == "batch" else r["image"] if key == "image" else int(r["model"][6:])
                  for r in rows]
            s, t = [r["s_ips"] for r in rows], [r["t_ips"] for r in rows]
            ax.set_ylabel("training images/s")
        ax.plot(xs, s, "o-", color="tab:blue", label="striate")
        ax.plot(xs, t, "s--", color="tab:orange", label="PyTorch")
        for x, a, b in zip(xs, s, t):
            ax.annotate(f"{a / b:.2f}" if b else "", (x, a), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8, color="tab:blue")
        if key in ("batch", "memory"):
            ax.set_xscale("log", base=2)
        if key in ("image", "memory"):   # these span decades
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            ax.set_ylim(bottom=0)
        ax.margins(y=0.12)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.set_xlabel({"batch": "batch size (ResNet-20, 32 px)", "image": "image size, px (ResNet-20)",
                       "depth": "depth (CIFAR ResNet, 32 px)", "memory": "batch size (ResNet-20 step)"}[key])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("How cost grows, striate vs PyTorch CPU (numbers: striate / PyTorch; busy shared machine)",
                 fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(results: dict, machine: dict, path: str, command: str, mode: str) -> None:
    parts = ["# How cost grows: striate vs PyTorch CPU", "",
             f"Generated by `{command}` ({mode} mode). Each point: median of the timed runs of a training "
             "step, both frameworks interleaved in time; ratios are striate / PyTorch. The machine is "
             "shared (load average below): absolute numbers are inflated by other processes, ratios "
             "are noisy (+-20%).", "", run._table(["", ""], list(machine.items())), ""]
    for key, text in render(results).items():
        parts += [f"## {TITLES[key]}", "", text, ""]
    png = os.path.splitext(path)[0] + ".png"
    parts += [f"![cost growth]({os.path.basename(png)})", ""]
    atomic_write_text(path, "\n".join(parts))
    # the raw numbers too, to re-plot or compare runs without measuring again
    atomic_write_text(os.path.splitext(path)[0] + ".json", json.dumps(dict(machine=machine, results=results), indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="How striate's and PyTorch's cost grow with batch, image "
                                                 "size, depth; and memory with batch.")
    parser.add_argument("--quick", action="store_true", help="few points and repeats (~10 minutes)")
    parser.add_argument("--only", default=None, help=f"comma-separated sweeps among {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads of both frameworks")
    parser.add_argument("--out", default=os.path.join(HERE, "cost_growth.md"),
                        help="markdown report; the PNG goes next to it (default benchmarks/cost_growth.md)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1. Received: --threads {args.threads}.")
    args.sections = set(SECTIONS) if args.only is None else {s.strip() for s in args.only.split(",") if s.strip()}
    if not args.sections or args.sections - set(SECTIONS):
        parser.error(f"--only takes sweeps among {', '.join(SECTIONS)}. Received: --only {args.only}.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("benchmarks/sweep.py compares striate with PyTorch, which is not installed.\n"
              "Install the CPU build with: pip install torch==2.13.0", file=sys.stderr)
        return 2
    limiter = run._limit_threads(args.threads, torch)  # noqa: F841  (held for the whole run)
    run.keep_freed_memory()
    mode = "quick" if args.quick else "full"
    machine = run.machine_info(torch, args.threads)
    results = run_sweeps(torch, args.sections, PLANS[mode], args.threads)
    command = ("python benchmarks/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    plot(results, os.path.splitext(args.out)[0] + ".png")
    write_report(results, machine, args.out, command, mode)
    print("\n".join(f"\n## {TITLES[k]}\n{v}" for k, v in render(results).items()))
    print(f"\nwrote {args.out} and {os.path.splitext(args.out)[0]}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
