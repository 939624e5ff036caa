"""Reductions shared by the ops and their fast strategies."""
from __future__ import annotations


def channel_sum(x):
    """Sum over every axis but the last (channels): ``(..., c) -> (c,)``.

    NumPy reduces a ``(m, c)`` array over axis 0 one short row of c values at a time, which for
    16-64 channels is several times slower than streaming memory (``benchmarks/notes.md``). Viewing it as ``(m / k, k * c)`` rows
    (k a power of two dividing m, k * c <= 512) makes the rows long; the k partial sums of each
    channel are then added. Also more accurate (pairwise over longer rows).
    """
    c = x.shape[-1]
    m = x.size // c
    k = 1
    while 2 * k * c <= 512 and m % (2 * k) == 0:
        k *= 2
    return x.reshape(m // k, k * c).sum(axis=0).reshape(k, c).sum(axis=0)
