"""The folder of a training run: its files, the rule that nothing is replaced without asking, the lock
that keeps two runs out of one folder, and the data the run was made from.

``striate train`` and ``striate finetune`` write a run through :class:`RunDir`; ``evaluate``,
``report``, ``visualize`` and ``serve`` read the recorded data set back with :func:`run_data`.

Example::

    run = RunDir("runs/digits")
    run.check(run_id=run_id)              # before reading any data: nothing is created yet
    with run.open(run_id=run_id):         # the folder is made, locked and cleared (with overwrite=True)
        fit(..., callbacks=[ModelCheckpoint(run.checkpoint, meta=meta)])
"""
from __future__ import annotations

import errno
import os

from ..atomic import TEMP_PREFIX, remove_stale_temporaries

WEIGHTS = "weights.npz"
CHECKPOINT = "checkpoint.npz"
BEST = "checkpoint_best.npz"
LOG = "log.csv"
METRICS = "metrics.json"
REPORT = "report.html"
# every file a run writes: a run is recognised by them, and --overwrite removes all of them (and only them)
RUN_FILES = (WEIGHTS, CHECKPOINT, BEST, LOG, METRICS, REPORT)
LOCK = ".striate-lock"  # holds the PID of the process writing the run; locked with flock while it runs


class RunDirError(ValueError):
    """A run folder that cannot be written as asked (one line, naming the folder and the way out)."""


class RunDirBusy(RunDirError):
    """Another process is writing a run into the folder; ``pid`` is that process (None if unknown)."""

    def __init__(self, message: str, pid=None):
        super().__init__(message)
        self.pid = pid


def _same_dir(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _run_id_of(path):
    """The ``run_id`` recorded in a weights or checkpoint file, or None (missing, unreadable, none)."""
    from .checkpoint import CheckpointError, load_checkpoint

    if not os.path.isfile(path):
        return None
    try:
        return load_checkpoint(path).meta.get("run_id")
    except (CheckpointError, OSError, ValueError):
        return None


def default_folder(kind: str, dataset: str, model: str | None = None, resume=None) -> str:
    """Where a run goes without ``--out``: the folder of the checkpoint it resumes (a run continues where
    it lives), else ``runs/<dataset>-<model>`` (a trained run) or ``runs/<kind>-<dataset>`` (e.g. finetune)."""
    if resume is not None:
        return os.path.dirname(os.path.abspath(resume))
    name = os.path.basename(os.path.normpath(str(dataset))) or "data"
    return os.path.join("runs", f"{name}-{model}" if model else f"{kind}-{name}")


def run_data(meta: dict) -> dict:
    """The data a run was made from, as its weights or checkpoint record it: ``dataset`` (a known name or
    an image folder), ``data_dir`` (None: the cache or a download), ``classes`` (the indices of the data
    set's classes a fine-tuned model kept, renumbered 0..k-1, or None for all) and ``verify``."""
    config = meta.get("config") or {}
    classes = meta.get("classes", config.get("classes"))
    if isinstance(classes, str):  # written by an older finetune as the option's text
        classes = [int(c) for c in classes.split(",") if c.strip()]
    return {"dataset": meta.get("dataset") or config.get("dataset"),
            "data_dir": meta.get("data_dir") or config.get("data_dir"),
            "classes": None if classes is None else [int(c) for c in classes],
            "verify": bool(config.get("verify", True))}


def load_run_dataset(meta: dict, data_dir=None, test_only: bool = True):
    """The data set a run recorded (:func:`run_data`), loaded from ``data_dir`` or the recorded folder and
    cut to the run's class subset (renumbered as the run renumbered it).

    Raises ValueError / FileNotFoundError / OSError as :func:`striate.data.load_dataset` does, and
    ValueError when the file records no data set.

    Example::

        >>> ds = load_run_dataset(st.training.load_checkpoint("runs/ft/weights.npz").meta)
    """
    from ..data import load_dataset, select_classes

    data = run_data(meta)
    if not data["dataset"]:
        raise ValueError("the model file does not record the data set it was trained on.")
    ds = load_dataset(data["dataset"], data_dir=data_dir or data["data_dir"], verify=data["verify"],
                      test_only=test_only)
    return ds if data["classes"] is None else select_classes(ds, data["classes"])


class RunDir:
    """The output folder of one run.

    Args:
        path: the folder (made by :meth:`open`).
        option: how messages name the folder (the command's option, ``--out``).

    The rules: a folder holding the files of another run is never written into unless ``overwrite``;
    overwriting removes every file of :data:`RUN_FILES` first (nothing of the old run stays behind) but
    never the files a run reads (its base model, the checkpoint it resumes); only one process at a time
    writes into a folder (:data:`LOCK`, released by the system when the process dies, even by
    ``kill -9``); temporary files of interrupted writes (striate's own prefix only) are removed.
    """

    def __init__(self, path, option: str = "--out"):
        self.path = os.fspath(path)
        self.option = option
        self._lock_fd = None

    def __repr__(self):
        return f"RunDir({self.path!r})"

    # ------------------------------------------------------------------------------------- files
    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    weights = property(lambda self: self.file(WEIGHTS))
    checkpoint = property(lambda self: self.file(CHECKPOINT))
    best = property(lambda self: self.file(BEST))
    log = property(lambda self: self.file(LOG))
    metrics = property(lambda self: self.file(METRICS))
    report = property(lambda self: self.file(REPORT))

    def present(self) -> list:
        """The run files already in the folder."""
        return [f for f in RUN_FILES if os.path.exists(self.file(f))]

    def run_id(self):
        """The id of the run the folder holds (from its checkpoint, else its weights), or None."""
        return _run_id_of(self.checkpoint) or _run_id_of(self.weights)

    def _continues(self, run_id, resume) -> bool:
        """Whether writing run ``run_id`` (resumed from the checkpoint ``resume``) continues the run
        already in the folder rather than replacing another one."""
        if resume is not None and os.path.isdir(self.path) and _same_dir(os.path.dirname(os.path.abspath(resume)),
                                                                          self.path):
            return True
        return run_id is not None and self.run_id() == run_id

    # ------------------------------------------------------------------------------------- checks
    def check(self, overwrite: bool = False, run_id=None, resume=None, reads=()) -> None:
        """Refuse, before any data are read and without creating anything, a folder that cannot take the run.

        Args:
            overwrite: replace another run found in the folder.
            run_id: the id of the run to write (a resumed run keeps its own).
            resume: the checkpoint a resumed run continues from (its folder is the run's own).
            reads: files the run reads (a base model): never removed, so never in a folder to overwrite.
        """
        where = f"{self.option} {self.path!r}"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirError(f"{where} exists and is not a folder; choose a folder path.")
        parent = os.path.abspath(self.path)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise RunDirError(f"{where} lies inside {parent!r}, which is a file, not a folder.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write into {where}: {parent!r} is not writable. Choose a writable folder.")
        if not os.path.isdir(self.path) or self._continues(run_id, resume):
            return
        for path in reads:
            if path is not None and _same_dir(os.path.dirname(os.path.abspath(path)), self.path):
                raise RunDirError(f"{where} is the folder of {path}, which this run reads: a run never replaces "
                                  f"its own input. Choose another {self.option}.")
        present = self.present()
        if present and not overwrite:
            raise RunDirError(f"{where} holds another run ({', '.join(present)}); a new run never writes over it. "
                              f"Choose another {self.option}, or add --overwrite to replace that run.")

    def open(self, overwrite: bool = False, run_id=None, resume=None, reads=()) -> "RunDir":
        """Make the folder, prove it takes a file, lock it, check it again under the lock (another run may
        have finished in it meanwhile), then clear the replaced run's files (``overwrite``) and the
        temporary files an interrupted write left. Returns ``self`` (a context manager that unlocks)."""
        try:
            os.makedirs(self.path, exist_ok=True)
            probe = self.file(f"{TEMP_PREFIX}probe-{os.getpid()}")
            with open(probe, "wb") as f:
                f.write(b"0" * 4096)
            os.remove(probe)
        except OSError as e:
            raise RunDirError(f"cannot write into {self.option} {self.path!r}: {e.strerror or e}. Choose a "
                              "writable folder.") from None
        self.lock()
        try:
            self.check(overwrite, run_id, resume, reads)
            if overwrite and not self._continues(run_id, resume):
                for name in self.present():
                    os.remove(self.file(name))
            remove_stale_temporaries(self.path)
        except BaseException:
            self.unlock()
            raise
        return self

    def close(self) -> None:
        self.unlock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unlock()

    # ------------------------------------------------------------------------------------ writing
    def write_metrics(self, metrics: dict) -> None:
        """metrics.json, written atomically."""
        import json

        from ..atomic import atomic_write_text
        atomic_write_text(self.metrics, json.dumps(metrics, indent=2) + "\n")

    def write_log(self, rows) -> None:
        """log.csv from whole rows (dicts; floats to 6 significant digits), written atomically."""
        from .callbacks import write_csv

        write_csv(self.log, rows, list(dict.fromkeys(k for r in rows for k in r)))

    # -------------------------------------------------------------------------------------- lock
    def lock(self) -> None:
        """Take the folder's lock, or raise :class:`RunDirBusy` naming the process that holds it.

        The lock is an ``flock`` on :data:`LOCK`: the system drops it when its process ends in any way,
        so a lock left by a killed run is simply taken over (the file's stale PID is overwritten)."""
        if self._lock_fd is not None:
            return
        try:
            import fcntl
        except ImportError:  # no flock (Windows): an exclusive create, with the PID checked for staleness
            return self._lock_exclusive()
        path = self.file(LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise self._busy(_read_pid(path)) from None
            try:  # the holder before us may have removed the file we opened: lock the one at the path
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _lock_exclusive(self) -> None:
        path = self.file(LOCK)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _read_pid(path)
                if pid is not None and _alive(pid):
                    raise self._busy(pid) from None
                os.remove(path)  # a stale lock: its process is gone
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            return
        raise self._busy(None)

    def _busy(self, pid) -> RunDirBusy:
        who = f"process {pid}" if pid else "another process"
        return RunDirBusy(f"{self.option} {self.path!r} is in use: {who} is writing a run into it. Wait for it to "
                          f"finish (or stop it), or choose another {self.option}.", pid)

    def unlock(self) -> None:
        """Release the lock (removing its file first, so no lock file stays in a finished run)."""
        if self._lock_fd is None:
            return
        try:
            os.remove(self.file(LOCK))
        except OSError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None


def _read_pid(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
