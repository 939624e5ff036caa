"""Atomic file writes: nothing is ever half-written.

:func:`atomic_open` writes to a temporary file in the destination's folder and moves it into place
with ``os.replace`` only once it is complete and flushed to disk, so a crash or Ctrl-C leaves either
the old file or the new one, never a truncated mix. Used by checkpoints, logs, metrics, reports.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

# striate's own temporary files: only these are ever removed as left-overs of an interrupted write (a
# user's ".tmp-*" files in the same folder are theirs)
TEMP_PREFIX = ".striate-tmp-"


def _umask_mode() -> int:
    """The permissions an ordinary new file gets (mkstemp's are a private 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    Example::

        with atomic_open("runs/metrics.json", "w") as f:
            json.dump(metrics, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb'. Received: mode={mode!r}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def remove_stale_temporaries(folder) -> list:
    """Delete striate's temporary files (``TEMP_PREFIX`` + ...) that writes killed half-way left in
    ``folder``; return their names. Other files (a user's own ``.tmp-*`` ones included) stay. Call it
    only on a folder no other process is writing into (a locked run folder, :class:`training.RunDir`)."""
    folder = os.fspath(folder)
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(TEMP_PREFIX) and os.path.isfile(path):
            try:
                os.unlink(path)
            except OSError:
                continue
            removed.append(name)
    return removed
