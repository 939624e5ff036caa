"""The thread split every op's fast path uses, and the BLAS scope of striate's own calls.

NumPy runs element-wise work, copies and reductions on one core; only its BLAS uses more. The
images of a batch are independent, so an op's strategy cuts the batch into contiguous parts
(:func:`split`) and runs them at once (:func:`map_parts`): NumPy's loops, BLAS and the numba code
release the GIL, so the parts really run in parallel. Measurements: ``benchmarks/notes.md``.

BLAS must then run on one thread inside the parts, or its own workers (which keep spinning for a
while after each call) fight striate's threads for the same cores. That limit is scoped
(:data:`blas_scope`): taken when striate first splits work inside a module's call or a backward
pass, given back when that call returns, through threadpoolctl (the ``fast`` extra). The user's
own NumPy code between striate calls keeps its BLAS threads. Without threadpoolctl striate stays
on one thread.

The thread count defaults to the CPU cores this process may use, or ``STRIATE_NUM_THREADS``;
:func:`set_num_threads` changes it. This module imports nothing else of striate but the engine
beneath it (:mod:`striate.tensor`), to which it hands its BLAS scope for every backward pass.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading

from ..optional import install_hint

# An op is split into parts of at least this many elements of work: a part then takes a few
# hundred microseconds, well above the cost of waking a worker thread.
MIN_PART = 1 << 17
# Parts per thread of a big op: threads take parts as they come free, so a thread slowed down by
# another process on its core does fewer of them.
PARTS_PER_THREAD = 2
WHOLE = (slice(None),)  # the one part of an op too small to split


class SettingError(ValueError):
    """An environment variable read by striate holds a value striate cannot use; the message names it."""


def threads_from_environment():
    """``STRIATE_NUM_THREADS`` as a positive int, or None when it is unset or empty.

    Raises:
        SettingError: the variable is set to anything but a positive integer.
    """
    env = os.environ.get("STRIATE_NUM_THREADS", "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise SettingError(f"the environment variable STRIATE_NUM_THREADS must be a positive integer. "
                           f"Received: STRIATE_NUM_THREADS={env!r}. Set it to a number of threads such as 2, "
                           "or unset it to use every core.")
    return n


def _default_threads() -> int:
    n = threads_from_environment()
    if n is not None:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Pool:
    """``threads - 1`` daemon workers. In a run, thread t (the caller is 0) first takes its own
    share of the parts, the t-th contiguous block, then any part not yet taken until none is left.

    Own shares first: consecutive ops split the batch alike, so a thread reads the images it wrote
    in the op before, from its own core's cache (reading lines another core just wrote costs a
    transfer between the cores each). Taking what is left: a thread slowed down by another process
    on its core does fewer parts instead of holding the others up. A worker signals each part it
    finishes, and the caller waits only for the parts it did not do itself: when it did them all
    (small parts, done before a worker woke up) it returns at once."""

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
            run, drain, me = item
            for _ in range(drain(me)):  # (a run over by the time the worker woke up: no part left)
                self.done.put(run)

    def run(self, fns):
        # Each run has a number: a run abandoned half-way (Ctrl-C while waiting) leaves its
        # workers' signals behind in `done`, which a later run must not take for its own.
        self.runs += 1
        results, errors = [None] * len(fns), []
        helpers = self.inboxes[:len(fns) - 1]
        blocks = [len(fns) * t // (len(helpers) + 1) for t in range(len(helpers) + 2)]  # thread t: its block
        taken = {}  # part -> the thread that runs it; dict.setdefault is atomic under the GIL

        def drain(me):
            own = range(blocks[me], blocks[me + 1])
            others = [i for i in reversed(range(len(fns))) if i not in own]  # taken from their blocks' ends
            count = 0
            for i in [*own, *others]:
                if taken.setdefault(i, me) != me:
                    continue
                count += 1
                try:
                    results[i] = fns[i]()
                except BaseException as exc:  # raised in the caller, after every part ran
                    errors.append(exc)
            return count

        for t, inbox in enumerate(helpers, start=1):
            inbox.put((self.runs, drain, t))
        pending = len(fns) - drain(0)
        while pending:  # wait for the parts the workers took
            if self.done.get() == self.runs:
                pending -= 1
        if errors:
            raise errors[0]
        return results


# threads: the count in effect (None until first asked); pool: the workers (made on first use);
# blas: None until first asked, then False without threadpoolctl, else threadpoolctl's controller
# of the loaded BLAS libraries.
_config = {"threads": None, "pool": None, "blas": None}
_config_lock = threading.Lock()


def _blas_controllers():
    """threadpoolctl's handles on the loaded BLAS libraries, or None without threadpoolctl."""
    controller = _blas_controller()
    return None if controller is None else controller.lib_controllers


def _blas_controller():
    if _config["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _config["blas"] = False
        else:
            _config["blas"] = ThreadpoolController().select(user_api="blas")
    return _config["blas"] or None


def get_num_threads() -> int:
    """Threads striate splits an op over (1 when threadpoolctl, needed to pin BLAS, is missing)."""
    threads = _config["threads"]
    if threads is None:
        threads = set_num_threads(_default_threads(), _strict=False)
    return threads


def set_num_threads(threads: int, _strict: bool = True) -> int:
    """Use ``threads`` threads for striate's ops; returns the number in effect.

    With more than one, BLAS runs on one thread during striate's calls (see :data:`blas_scope`);
    with one, BLAS keeps its own thread count throughout.

    Raises:
        ValueError: ``threads`` is not a positive integer.
        ImportError: ``threads`` > 1 without threadpoolctl (``pip install striate[fast]``).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer. Received: {threads!r}.")
    with _config_lock:
        if _config["blas"]:  # look again: BLAS libraries loaded since (scipy's) are limited too
            _config["blas"] = None
        if threads > 1 and _blas_controller() is None:  # no threadpoolctl: BLAS cannot be pinned
            if _strict:
                raise ImportError(
                    "striate needs threadpoolctl to run ops on several threads (it must set BLAS "
                    f"to one thread meanwhile). Install it with {install_hint('fast')}, or "
                    "call set_num_threads(1).")
            threads = 1
        _config["threads"] = threads
        old, _config["pool"] = _config["pool"], None  # a new one is made on first use
        if old is not None:
            for inbox in old.inboxes:
                inbox.put(None)
    return threads


class _Depth(threading.local):
    depth = 0


class _BlasScope:
    """Context manager around striate's calls that may use several threads (a module's call, a
    backward pass); re-entrant.

    BLAS is limited to one thread by :meth:`pin`: at the start of a backward pass, and in a
    forward at the first :func:`map_parts` that runs parts on several threads; it gets its own
    thread count back when the last thread leaves its outermost scope. A batch-1 forward, which
    never splits, never touches BLAS; a training step keeps it limited through the unsplit GEMMs
    between split ops.
    OpenBLAS's thread count is process-wide, so a user thread calling BLAS while another thread is
    inside striate gets one thread too.

    The limit goes through threadpoolctl's controllers of the BLAS libraries; its ``limit()``
    context manager re-reads every library's description on each entry, which would cost a batch-1
    forward a good share of its time, so the scope keeps the thread counts itself.
    """

    def __init__(self):
        self.local = _Depth()  # this thread's nesting
        self.lock = threading.Lock()
        self.active = 0      # threads inside their outermost scope
        self.restore = None  # [(library controller, its own thread count)] while BLAS is limited

    def __enter__(self):
        depth = self.local.depth
        self.local.depth = depth + 1
        if not depth:
            with self.lock:
                self.active += 1
        return self

    def __exit__(self, *exc):
        depth = self.local.depth - 1
        self.local.depth = depth
        if not depth:
            with self.lock:
                self.active -= 1
                if not self.active:
                    self._unpin()
        return False

    def inside(self) -> bool:
        """Whether this thread is inside the scope already (then entering it again does nothing)."""
        return bool(self.local.depth)

    def pin(self):
        """Limit BLAS to one thread until the scope ends (called with several parts to run)."""
        if self.restore is None and (_config["threads"] or 1) > 1:
            with self.lock:
                controller = _blas_controller()
                if self.restore is None and controller is not None:
                    self.restore = [(lib, lib.num_threads) for lib in controller.lib_controllers]
                    for lib, _ in self.restore:
                        lib.set_num_threads(1)

    def _unpin(self):
        if self.restore is not None:
            for lib, own in self.restore:
                lib.set_num_threads(own)
            self.restore = None


blas_scope = _BlasScope()


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
        with blas_scope:  # (held already by a module's call or a backward pass, usually)
            blas_scope.pin()
            return pool.run([lambda part=part: fn(part) for part in parts])
    finally:
        pool.lock.release()


@contextlib.contextmanager
def one_blas_thread(parts):
    """The BLAS scope, with BLAS on one thread when ``parts`` run on several: for an op's own BLAS
    calls around its :func:`map_parts` (outside a module's call they would run on BLAS's threads,
    which then spin against the parts)."""
    with blas_scope:
        if len(parts) > 1:
            blas_scope.pin()
        yield


def run_split(fn, n: int, work: int):
    """``map_parts(fn, split(n, work))``: the one call an op's strategy makes to use every core."""
    return map_parts(fn, split(n, work))


# Every backward pass runs inside the BLAS scope: the engine sits beneath this module and takes the
# scope from here, so that its own imports point down.
from ..tensor import set_backward_scope  # noqa: E402  (after blas_scope exists)

set_backward_scope(blas_scope)
