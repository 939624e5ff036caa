"""Thread settings shared by the benchmark scripts, importable before numpy (this module imports no numpy).

OpenBLAS fixes its thread count when numpy loads, so a script's ``--threads`` must reach the
environment before anything imports numpy (torch does too).
"""
from __future__ import annotations

DEFAULT_THREADS = 2   # the machine the project is benchmarked on has 2 cores


def threads_from_argv(argv) -> int:
    """``--threads N`` from the raw command line (read before argparse runs, and before numpy loads)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if arg.startswith("--threads=") and arg.split("=", 1)[1].isdigit():
            return int(arg.split("=", 1)[1])
    return DEFAULT_THREADS


def blas_env(threads: int) -> dict:
    """The environment variables that set numpy's BLAS (and OpenMP) thread count to ``threads``."""
    return {var: str(threads) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
