"""Core-op speed against PyTorch CPU, measured side by side in the same process.

Times conv2d forward+backward over a few layer shapes and one LeNet-5 training step (batch 128),
in striate (NHWC) and PyTorch (channels-last, same thread count), and prints striate / PyTorch
throughput ratios (> 1 means striate is faster). Run:

    python benchmarks/bench_core.py [--threads 2] [--repeat 20]

PyTorch is needed only here (pip install torch==2.13.0); the library never imports it.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def best_time(fn, repeat: int, warmup: int = 2) -> float:
    """Minimum wall time of ``fn()`` over ``repeat`` runs (the least noisy statistic on a shared box)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def conv_cases():
    # (name, n, h, w, c, o, k, stride, padding)
    return [
        ("lenet conv1 28x28x1->6 k5", 128, 28, 28, 1, 6, 5, 1, 2),
        ("lenet conv2 14x14x6->16 k5", 128, 14, 14, 6, 16, 5, 1, 0),
        ("resnet 32x32x16->16 k3", 128, 32, 32, 16, 16, 3, 1, 1),
        ("resnet 16x16x32->32 k3", 128, 16, 16, 32, 32, 3, 1, 1),
        ("resnet 8x8x64->64 k3", 128, 8, 8, 64, 64, 3, 1, 1),
        ("alexnet conv3 13x13x256->384 k3", 16, 13, 13, 256, 384, 3, 1, 1),
    ]


def bench_conv(torch, repeat):
    import striate as st
    import striate.functional as F
    rows = []
    rng = np.random.default_rng(0)
    for name, n, h, w, c, o, k, s, p in conv_cases():
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        wt = (rng.standard_normal((k, k, c, o)) * 0.1).astype(np.float32)
        b = np.zeros(o, np.float32)
        xs, ws, bs = st.Tensor(x, requires_grad=True), st.Tensor(wt, requires_grad=True), st.Tensor(b, requires_grad=True)

        def run_striate():
            xs.grad = ws.grad = bs.grad = None
            y = F.conv2d(xs, ws, bs, stride=s, padding=p)
            y.backward(np.ones(y.shape, np.float32))

        xt = torch.tensor(x.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last).requires_grad_()
        wtt = torch.tensor(wt.transpose(3, 2, 0, 1)).contiguous(memory_format=torch.channels_last).requires_grad_()
        bt = torch.tensor(b).requires_grad_()

        def run_torch():
            xt.grad = wtt.grad = bt.grad = None
            y = torch.nn.functional.conv2d(xt, wtt, bt, stride=s, padding=p)
            y.backward(torch.ones_like(y))

        t_s, t_t = best_time(run_striate, repeat), best_time(run_torch, repeat)
        oh = (h + 2 * p - k) // s + 1
        flops = 3 * 2 * n * oh * oh * o * k * k * c  # forward + two backward GEMMs
        rows.append((name, t_s * 1e3, t_t * 1e3, t_t / t_s, flops / t_s / 1e9))
    return rows


def bench_lenet_step(torch, repeat, batch=128):
    import striate as st
    from striate import nn
    import striate.functional as F
    st.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
        nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(10)).build((28, 28, 1))
    params = model.parameters()
    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step_striate():
        loss = F.cross_entropy(model(st.Tensor(x)), y)
        for p in params:
            p.grad = None
        loss.backward()
        with st.no_grad():
            for p in params:
                p.data -= 0.01 * p.grad

    tnn = torch.nn
    tmodel = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10),
    ).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.01)
    xt = torch.tensor(x.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
    yt = torch.tensor(y)

    def step_torch():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(xt), yt).backward()
        opt.step()

    t_s, t_t = best_time(step_striate, repeat), best_time(step_torch, repeat)
    return batch / t_s, batch / t_t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        raise SystemExit("This benchmark compares against PyTorch: pip install torch==2.13.0")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    print(f"conv2d forward+backward (float32, NHWC vs torch channels-last, {args.threads} threads)")
    print(f"{'layer':36s} {'striate ms':>10s} {'torch ms':>9s} {'ratio':>6s} {'GFLOP/s':>8s}")
    for name, ms_s, ms_t, ratio, gflops in bench_conv(torch, args.repeat):
        print(f"{name:36s} {ms_s:10.2f} {ms_t:9.2f} {ratio:6.2f} {gflops:8.1f}")
    ips_s, ips_t = bench_lenet_step(torch, args.repeat)
    print(f"\nLeNet-5 training step, batch 128: striate {ips_s:,.0f} img/s, torch {ips_t:,.0f} img/s, "
          f"ratio {ips_s / ips_t:.2f}")


if __name__ == "__main__":
    main()
