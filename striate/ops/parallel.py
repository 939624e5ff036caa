"""Every core for one op: split the batch into one part per thread and run the parts at once.

NumPy does element-wise work, copies and reductions on one core; only its BLAS uses more. With
im2col, pooling, batch norm and activations on one core, half of a 2-core machine idled through a
training step. So each heavy op splits its batch (images are independent) into one contiguous part
per thread and runs the parts concurrently: NumPy's loops, BLAS and the numba kernels release the
GIL while they compute, so the parts really run in parallel (measured on 2 cores: two halves of a
ResNet-20 batch trained at once on two threads went 1.6x faster than the whole batch on one thread
with a 2-thread BLAS; with the conv blocks of striate.ops.conv, training went 160 -> 236 img/s).

BLAS then has to run single-threaded inside the parts. It would in any case: OpenBLAS's workers keep
spinning for a while after each call, waiting for the next one, and they would fight striate's
threads for the same cores (measured: a parallel loop 2.5x slower right after a GEMM). So while
striate uses more than one thread it sets BLAS to one thread, through threadpoolctl (in the ``fast``
extra), as PyTorch manages the threads of its own BLAS. Without threadpoolctl striate cannot do
that, and stays on one thread and leaves BLAS its threads: plain NumPy behaviour.

``set_num_threads(1)`` gives BLAS its threads back. The thread count defaults to the CPU cores this
process may use, or to the environment variable ``STRIATE_NUM_THREADS``.

Dispatching a part to a worker costs about 70 microseconds (a thread wake-up), so ops split only
work big enough to repay it (:data:`MIN_PART`); a batch-1 forward never leaves the calling thread.
"""
from __future__ import annotations

import os
import queue
import threading

# An op is split into parts of at least this many elements of work (each part then takes a few
# hundred microseconds, well above the ~70 us it costs to hand it to a worker thread).
MIN_PART = 1 << 17
# Parts per thread of a big op: threads take parts as they come free, so with several parts each a
# thread slowed down by another process does fewer of them (on this project's shared 2-core machine
# one thread often runs 2x slower than the other for a while).
PARTS_PER_THREAD = 2


def _default_threads() -> int:
    env = os.environ.get("STRIATE_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"STRIATE_NUM_THREADS must be a positive integer. Received: {env!r}. "
                "Unset it to use every core.") from None
        if n >= 1:
            return n
        raise ValueError(f"STRIATE_NUM_THREADS must be >= 1. Received: {env!r}.")
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Pool:
    """``threads - 1`` daemon workers. In a run, every thread (the caller too) takes the next part
    not yet taken until none is left, so a thread slowed down by another process on its core does
    fewer parts instead of holding the others up."""

    def __init__(self, threads: int):
        self.threads = threads
        self.pid = os.getpid()
        self.lock = threading.Lock()  # one parallel run at a time; others run their parts inline
        self.inboxes = []
        self.done = queue.SimpleQueue()
        self.runs = 0
        for i in range(1, threads):
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._work, args=(inbox,), daemon=True,
                             name=f"striate-worker-{i}").start()
            self.inboxes.append(inbox)

    def _work(self, inbox):
        while True:
            item = inbox.get()
            if item is None:  # the pool was replaced (set_num_threads)
                return
            run, drain = item
            drain()
            self.done.put(run)

    def run(self, fns):
        # Each run has a number: a run abandoned half-way (Ctrl-C while waiting) leaves its
        # workers' signals behind in `done`, which a later run must not take for its own.
        self.runs += 1
        results, errors = [None] * len(fns), []
        parts = iter(enumerate(fns))  # next() on it is atomic under the GIL: each part runs once

        def drain():
            for i, fn in parts:
                try:
                    results[i] = fn()
                except BaseException as exc:  # raised in the caller, after every part ran
                    errors.append(exc)

        helpers = self.inboxes[:len(fns) - 1]
        for inbox in helpers:
            inbox.put((self.runs, drain))
        drain()
        pending = len(helpers)
        while pending:  # wait for the workers to finish their last parts
            if self.done.get() == self.runs:
                pending -= 1
        if errors:
            raise errors[0]
        return results


_config = {"threads": None, "pool": None, "blas": None}
_config_lock = threading.Lock()


def _blas_controllers():
    """threadpoolctl's handles on the loaded BLAS libraries, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]


def get_num_threads() -> int:
    """Threads striate splits an op over (1 when threadpoolctl, needed to pin BLAS, is missing)."""
    threads = _config["threads"]
    if threads is None:
        threads = set_num_threads(_default_threads(), _strict=False)
    return threads


def set_num_threads(threads: int, _strict: bool = True) -> int:
    """Use ``threads`` threads for striate's ops; returns the number in effect.

    With more than one, BLAS is set to one thread (striate's threads share the cores among
    themselves); ``set_num_threads(1)`` restores BLAS's own thread count.

    Raises:
        ValueError: ``threads`` is not a positive integer.
        ImportError: ``threads`` > 1 without threadpoolctl (``pip install striate[fast]``).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer. Received: {threads!r}.")
    with _config_lock:
        if _config["blas"] is None:  # first call: BLAS libraries with their own thread counts
            libs = _blas_controllers()
            _config["blas"] = False if libs is None else [(lib, lib.num_threads) for lib in libs]
        if _config["blas"] is False and threads > 1:  # no threadpoolctl: BLAS cannot be pinned
            if _strict:
                raise ImportError(
                    "striate needs threadpoolctl to run ops on several threads (it must set BLAS "
                    "to one thread meanwhile). Install it with `pip install striate[fast]`, or "
                    "call set_num_threads(1).")
            threads = 1
        for lib, own in _config["blas"] or []:
            lib.set_num_threads(1 if threads > 1 else own)
        _config["threads"] = threads
        old, _config["pool"] = _config["pool"], None  # a new one is made on first use
        if old is not None:
            for inbox in old.inboxes:
                inbox.put(None)
    return threads


WHOLE = (slice(None),)  # the one part of an op too small to split


def split(n: int, work: int):
    """Contiguous slices of ``range(n)``: :data:`PARTS_PER_THREAD` per thread, each with at least
    :data:`MIN_PART` of ``work`` (the op's total, in elements); :data:`WHOLE`, one slice of
    everything, when the op is too small to split. The slices depend only on ``n``, ``work`` and the
    thread count, never on timing, so results are reproducible.
    """
    if work < 2 * MIN_PART:  # first, and cheap: batch-1 inference calls this for every op
        return WHOLE
    parts = min(get_num_threads() * PARTS_PER_THREAD, n, max(1, work // MIN_PART))
    if parts == 1:
        return WHOLE
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def map_parts(fn, parts):
    """``[fn(part) for part in parts]``, the parts run concurrently (the first on this thread).

    ``fn`` must write only to its own part of any shared output. An exception in any part is raised
    here once every part has finished.
    """
    if len(parts) == 1:
        return [fn(parts[0])]
    pool = _config["pool"]
    if pool is None or pool.pid != os.getpid():  # none yet, or inherited through fork (no threads)
        pool = _config["pool"] = _Pool(get_num_threads())
    if not pool.lock.acquire(blocking=False):  # a part calling an op, or another user thread
        return [fn(part) for part in parts]
    try:
        return pool.run([lambda part=part: fn(part) for part in parts])
    finally:
        pool.lock.release()
