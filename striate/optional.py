"""Optional dependencies: imported when a feature first needs them, with one line saying what to install.

NumPy is striate's only run-time dependency; Pillow, matplotlib, Flask, onnx and the others are extras
(``pip install "striate[viz]"``, ...). Every optional import goes through :func:`require`, so a missing
package is always reported the same way: what needs it, which package, and the install command. This
module imports only the standard library, so every floor of striate may use it.

Example:
    >>> Image = require("PIL.Image", "viz", "drawing pictures")  # doctest: +SKIP
"""
from __future__ import annotations

import importlib

# top-level import name -> the name pip installs it under, where the two differ
PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml"}


def install_hint(extra: str) -> str:
    """The command that installs an extra: ``pip install "striate[viz]"`` (quoted for every shell)."""
    return f'pip install "striate[{extra}]"'


def require(package: str, extra: str, purpose: str | None = None):
    """Import ``package`` (a module path such as ``"PIL.Image"``) or raise one clear ImportError.

    Args:
        package: the module to import; its top-level name is the package a user installs.
        extra: the striate extra that brings it (``"viz"``, ``"serve"``, ``"onnx"``, ...).
        purpose: what needs it, for the message (``"reading images"``); default: striate.

    Returns:
        The imported module.

    Raises:
        ImportError: ``package`` (or the package it belongs to) is not installed, e.g.
            ``reading images needs pillow, which is not installed: pip install "striate[data]"``.
            An import that fails inside an installed package is not hidden.
    """
    top = package.split(".")[0]
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing != package and not package.startswith(missing + "."):
            raise  # a dependency of an installed package is broken: its own message says which
        pip_name = PIP_NAMES.get(top, top)
        err = ImportError(f"{purpose or 'striate'} needs {pip_name}, which is not installed: "
                          f"{install_hint(extra)}", name=top)
        raise err from None
