"""Op-level measurements of the benchmark suite: the timing helper, the GEMM rate and per-layer conv2d.

``benchmarks/run.py`` imports this module; run that (``python benchmarks/run.py --only conv``) rather
than this file. Every comparison here times striate (NHWC, HWIO weights) and PyTorch (NCHW shapes in
channels-last memory, OIHW weights) on the same float32 data and checks that both compute the same.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one function over ``n`` timed runs (after warm-up)."""

    best: float
    median: float
    n: int


def measure(fns, repeat: int, warmup: int = 2, rounds: int = 1, settle: float = 0.1) -> list[Timing]:
    """Time each function of ``fns`` ``repeat`` times with ``time.perf_counter``, in blocks.

    Each function runs in a block of its own: a pause of ``settle`` seconds, ``warmup`` untimed runs
    (first-call costs: allocator growth, oneDNN primitive creation, BLAS thread start-up), then its
    timed runs. Blocks, not run-by-run alternation, because striate's BLAS (OpenBLAS, whose workers
    keep polling for a while after each call) and PyTorch's OpenMP pool would otherwise fight over the
    same few cores and slow each other down; the pause lets the other runtime's workers go idle. With
    ``rounds`` > 1 the blocks repeat (A B A B ...) with ``repeat / rounds`` runs each, so that a burst of
    load from other processes is less likely to hit only one framework.

    Noise on a shared machine only ever adds time, which is why throughput is reported from ``best``
    (the minimum) and latency from ``median``.

    Args:
        fns: callables taking no argument.
        repeat: timed runs of each, >= 1.
        warmup: untimed runs of each before its first block (later blocks: one).
        rounds: blocks per function.
        settle: seconds of pause before each block.

    Returns:
        One :class:`Timing` per function, in order.

    Example::

        >>> (t,) = measure([lambda: sum(range(1000))], repeat=5)
        >>> t.best <= t.median
        True
    """
    if repeat < 1 or rounds < 1:
        raise ValueError(f"repeat and rounds must be >= 1. Received: repeat={repeat!r}, rounds={rounds!r}.")
    rounds = min(rounds, repeat)
    times = [[] for _ in fns]
    for r in range(rounds):
        runs = repeat // rounds + (r < repeat % rounds)   # split repeat over the rounds
        for fn, ts in zip(fns, times):
            time.sleep(settle)
            for _ in range(warmup if r == 0 else 1):
                fn()
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return [Timing(min(ts), statistics.median(ts), len(ts)) for ts in times]


def gemm_rate(repeat: int, size: int = 1024, torch=None) -> dict:
    """The machine's float32 GEMM rate in GFLOP/s: ``(size, size) @ (size, size)``, best of ``repeat``.

    This is the ceiling of an im2col + GEMM convolution: numpy's ``@`` is the BLAS call striate's
    conv makes. With ``torch`` given, ``torch.mm`` on the same matrices is timed too (its own BLAS).

    Returns:
        ``{"numpy": GFLOP/s}`` and, with torch, ``"torch": GFLOP/s``.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), np.float32)
    flops = 2.0 * size ** 3   # one multiply and one add per (i, j, k)
    fns = [lambda: np.matmul(a, b, out=out)]
    if torch is not None:
        ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(size, size)
        fns.append(lambda: torch.mm(ta, tb, out=tout))
    timings = measure(fns, repeat, warmup=2, rounds=2 if repeat >= 4 else 1)
    rates = {"numpy": flops / timings[0].best / 1e9}
    if torch is not None:
        rates["torch"] = flops / timings[1].best / 1e9
    return rates


@dataclass(frozen=True)
class ConvCase:
    """One conv layer: input ``(n, h, w, c)``, ``o`` filters of ``k x k``, stride, padding, bias."""

    name: str
    n: int
    h: int
    w: int
    c: int
    o: int
    k: int
    stride: int = 1
    padding: int = 0
    bias: bool = False

    @property
    def out_hw(self) -> tuple:
        return ((self.h + 2 * self.padding - self.k) // self.stride + 1,
                (self.w + 2 * self.padding - self.k) // self.stride + 1)

    @property
    def forward_flops(self) -> float:
        """2 * MACs of the forward GEMM: ``(n*oh*ow, k*k*c) @ (k*k*c, o)``."""
        oh, ow = self.out_hw
        return 2.0 * self.n * oh * ow * self.o * self.k * self.k * self.c


def conv_cases(quick: bool = False) -> list[ConvCase]:
    """The conv shapes the suite times: LeNet-5 and ResNet-20 layers at batch 128 (their training
    batch), plus 64- to 512-channel layers of the ImageNet nets at batch 8 (~2 GFLOP each).

    ``quick``: one layer of each kind (5x5 on one channel, strided 3x3, wide 3x3, 1x1) for a smoke test.
    """
    cases = [
        ConvCase("lenet5 conv1 28x28x1->6 k5", 128, 28, 28, 1, 6, 5, padding=2, bias=True),
        ConvCase("lenet5 conv2 14x14x6->16 k5", 128, 14, 14, 6, 16, 5, bias=True),
        ConvCase("resnet20 conv1 32x32x3->16 k3", 128, 32, 32, 3, 16, 3, padding=1),
        ConvCase("resnet20 32x32x16->16 k3", 128, 32, 32, 16, 16, 3, padding=1),
        ConvCase("resnet20 32x32x16->32 k3 s2", 128, 32, 32, 16, 32, 3, stride=2, padding=1),
        ConvCase("resnet20 16x16x32->32 k3", 128, 16, 16, 32, 32, 3, padding=1),
        ConvCase("resnet20 8x8x64->64 k3", 128, 8, 8, 64, 64, 3, padding=1),
        ConvCase("vgg 56x56x64->64 k3 (n=8)", 8, 56, 56, 64, 64, 3, padding=1),
        ConvCase("vgg 28x28x128->128 k3 (n=8)", 8, 28, 28, 128, 128, 3, padding=1),
        ConvCase("vgg 14x14x256->256 k3 (n=8)", 8, 14, 14, 256, 256, 3, padding=1),
        ConvCase("alexnet conv3 13x13x256->384 k3 (n=8)", 8, 13, 13, 256, 384, 3, padding=1, bias=True),
        ConvCase("resnet50 1x1 28x28x512->128 (n=8)", 8, 28, 28, 512, 128, 1),
    ]
    return [cases[i] for i in (0, 4, 9, 11)] if quick else cases


@dataclass(frozen=True)
class ConvResult:
    case: ConvCase
    striate_forward: Timing
    torch_forward: Timing
    striate_backward: Timing
    torch_backward: Timing


def bench_conv(torch, case: ConvCase, repeat: int, warmup: int = 2, rounds: int = 1) -> ConvResult:
    """Time one conv layer's forward and its backward (input + weight gradients) in both frameworks.

    Forward runs with autograd recording (the training forward: inputs require grad). Backward is
    timed on its own: one forward builds the graph, then ``y.backward(gy, retain_graph=True)`` is
    repeated with the gradients reset to None before each run, so every timed backward does the
    work of a first backward. Backward FLOPs = 2 x forward (``gx`` and ``gw`` are one GEMM each; the
    bias gradient, a sum, is not counted).
    """
    import striate as st
    import striate.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.n, case.h, case.w, case.c), dtype=np.float32)
    w = (rng.standard_normal((case.k, case.k, case.c, case.o)) / np.sqrt(case.k * case.k * case.c)).astype(np.float32)
    b = rng.standard_normal(case.o, dtype=np.float32) if case.bias else None
    oh, ow = case.out_hw
    gy = rng.standard_normal((case.n, oh, ow, case.o), dtype=np.float32)

    sx, sw = st.Tensor(x, requires_grad=True), st.Tensor(w, requires_grad=True)
    sb = st.Tensor(b, requires_grad=True) if case.bias else None
    s_leaves = [t for t in (sx, sw, sb) if t is not None]

    def s_forward():
        return F.conv2d(sx, sw, sb, stride=case.stride, padding=case.padding)

    s_y = s_forward()

    def s_backward():
        for t in s_leaves:
            t.grad = None
        s_y.backward(gy, retain_graph=True)

    channels_last = torch.channels_last
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=channels_last).requires_grad_()
    tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(memory_format=channels_last).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_() if case.bias else None
    tgy = torch.from_numpy(gy).permute(0, 3, 1, 2)   # NHWC bytes = channels-last already
    t_leaves = [t for t in (tx, tw, tb) if t is not None]

    def t_forward():
        return torch.nn.functional.conv2d(tx, tw, tb, stride=case.stride, padding=case.padding)

    t_y = t_forward()

    def t_backward():
        for t in t_leaves:
            t.grad = None
        t_y.backward(tgy, retain_graph=True)

    # same layer, same numbers: a harness that times two different computations is worthless
    s_backward()
    t_backward()
    pairs = [("y", s_y.data, t_y.detach().permute(0, 2, 3, 1)), ("gx", sx.grad, tx.grad.permute(0, 2, 3, 1)),
             ("gw", sw.grad, tw.grad.permute(2, 3, 1, 0))] + ([("gb", sb.grad, tb.grad)] if case.bias else [])
    for what, s_arr, t_arr in pairs:
        t_arr = t_arr.numpy()
        scale = float(np.abs(t_arr).max()) or 1.0
        np.testing.assert_allclose(s_arr, t_arr, rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=f"conv {what} differs between striate and torch for {case.name}")

    sf, tf = measure([s_forward, t_forward], repeat, warmup, rounds)
    sb_, tb_ = measure([s_backward, t_backward], repeat, warmup, rounds)
    return ConvResult(case, sf, tf, sb_, tb_)


if __name__ == "__main__":
    raise SystemExit("bench_core.py is the op-level part of the suite; run: python benchmarks/run.py --only conv")
