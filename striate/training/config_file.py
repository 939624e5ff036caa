"""A run's settings in a file: TOML (``.toml``, read with the standard library's tomllib) or YAML
(``.yaml``/``.yml``, PyYAML), one table of ``name = value`` — what ``striate train --config FILE`` reads,
what ``striate tune`` writes as ``best.toml``, and what :func:`striate.training.train_run` accepts.

Example::

    >>> write_config_file("best.toml", {"lr": 0.05, "batch_size": 64, "model": "digits_cnn"})
    >>> read_config_file("best.toml")
    {'lr': 0.05, 'batch-size': 64, 'model': 'digits_cnn'}
"""
from __future__ import annotations

import json
import os

CONFIG_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}


def _one_line(e) -> str:
    return " ".join(str(e).split())


def read_config_file(path) -> dict:
    """The table of a settings file, as written (keys untouched: ``batch-size`` or ``batch_size``).

    Args:
        path: a ``.toml``, ``.yaml`` or ``.yml`` file.

    Returns:
        The file's table (an empty file: ``{}``).

    Raises:
        ValueError: an unknown file type, text that is not valid TOML or YAML, or no table (one line, naming
            the file).
        OSError: the file cannot be read.
        ImportError: a YAML file without PyYAML (``pip install 'striate[cli]'``).
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in CONFIG_FORMATS:
        raise ValueError(f"{path}: unknown file type {ext or '(none)'!r}; give a .toml, .yaml or .yml file.")
    with open(path, "rb") as f:
        raw = f.read()
    if ext == ".toml":
        import tomllib
        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError, UnicodeDecodeError)
    else:
        from ..optional import require
        yaml = require("yaml", "cli", "reading a YAML --config file")
        parse, errors = yaml.safe_load, (yaml.YAMLError, UnicodeDecodeError)
    try:
        table = parse(raw.decode("utf-8"))
    except errors as e:  # the parser's own words, on one line
        raise ValueError(f"{path} is not valid {CONFIG_FORMATS[ext]}: {_one_line(e)}") from None
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold a table of option = value. Received: a {type(table).__name__}.")
    return table


def write_config_file(path, settings: dict) -> None:
    """Write ``settings`` (name -> value) as a TOML file that :func:`read_config_file` reads back, atomically;
    names are written with ``-`` (``batch-size``), as the command line spells them."""
    from ..atomic import atomic_write_text

    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value) if isinstance(value, int) else repr(float(value))
        else:
            text = json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's
        lines.append(f"{key.replace('_', '-')} = {text}")
    atomic_write_text(path, "\n".join(lines) + "\n")
