"""Helpers shared by the commands: the library's data set, model and recipe helpers
(:mod:`striate.training.recipe`) with their errors as one-line CommandErrors, and the options and
messages several commands have in common."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

import numpy as np

from .main import CommandError

# the per-data-set recipes live with the runs that use them (striate.training.recipe)
from ..training.recipe import AUGMENTATIONS, RECIPES, recipe_for  # noqa: F401  (the commands' names)


def one_line(e) -> str:
    return " ".join(str(e).split())


def lib(fn, *args, **kwargs):
    """A library call whose ValueErrors and TypeErrors (worded with the options) become one-line CommandErrors."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise CommandError(one_line(e)) from None


def match_name(value: str, choices, option: str) -> str:
    """The entry of ``choices`` that ``value`` means, ignoring case, ``-`` and ``_``; else a
    CommandError naming the option, with the closest choice ("did you mean").

    Example: ``match_name("LeNet-5", models.list_models(), "--model")`` -> ``"lenet5"``.
    """
    from ..training.recipe import match_choice
    return lib(match_choice, value, choices, option)


def resolve_model(name: str) -> str:
    """A model name of the zoo, matched forgivingly, or a layer list checked and tidied
    (:func:`striate.training.recipe.resolve_model`); else a CommandError."""
    from ..training import recipe
    return lib(recipe.resolve_model, name)


def dataset_key(dataset: str) -> str:
    """The one spelling of a data set (:func:`striate.training.recipe.dataset_key`); else a CommandError."""
    from ..training import recipe
    return lib(recipe.dataset_key, dataset)


def dataset_from_files(data_dir: str) -> str:
    """The data set a ``--data-dir`` given without ``--dataset`` holds, or a CommandError saying what to add."""
    from ..training import recipe
    return lib(recipe.dataset_from_files, data_dir)


def check_seed(seed) -> int:
    from ..training import recipe
    return lib(recipe.check_seed, seed)


def add_overwrite_option(p, help_: str = "replace --out if it exists", legacy_force: bool = False) -> None:
    """``--overwrite``: the one spelling of "replace what is there" (``--force``, an older spelling of
    export and import, still works there, unlisted)."""
    p.add_argument("--overwrite", action="store_true", help=help_)
    if legacy_force:
        p.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)


def add_quiet_option(p, help_: str = "print nothing but errors") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=help_)


def check_new_file(path, overwrite: bool, source=None, option: str = "--out") -> None:
    """Refuse to write ``path`` when it exists (unless ``overwrite``), is a folder, or is the file the
    command reads (``source``): a command never replaces its own input, even with --overwrite."""
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        raise CommandError(f"{option} {path!r} is a folder; give a file path.")
    if source is not None and os.path.exists(source) and os.path.samefile(path, source):
        raise CommandError(f"{option} {path!r} is the file this command reads; it is never replaced by its own "
                           f"output. Choose another {option}.")
    if not overwrite:
        raise CommandError(f"{option} {path!r} exists; add --overwrite to replace it, or choose another {option}.")


def load_data(dataset: str, data_dir=None, verify: bool = True, test_only: bool = False):
    """:func:`striate.training.recipe.load_data` with its errors as one-line CommandErrors and its warnings
    as one line each."""
    from ..training import recipe

    with one_line_warnings():
        return lib(recipe.load_data, dataset, data_dir, verify=verify, test_only=test_only)


@contextlib.contextmanager
def one_line_warnings():
    """Within it, a library's UserWarning prints as one line, ``striate: warning: ...``, each time it is given."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        show = warnings.showwarning

        def show_one_line(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, UserWarning):
                print(f"striate: warning: {one_line(message)}", file=sys.stderr)
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = show_one_line
        yield


def load_run_data(meta: dict, path, dataset=None, data_dir=None, no_verify: bool = False, test_only: bool = True):
    """The data set a model file records (``training.run_data``), cut as its run cut it: the same folder
    (unless ``data_dir`` names another) and, for a fine-tuned model, the same class subset renumbered
    0..k-1. ``dataset`` (any spelling) replaces the recorded one; a CommandError (one line) otherwise."""
    from ..data import select_classes
    from ..training import run_data

    recorded = run_data(meta)
    dataset = dataset_key(dataset) if dataset else recorded["dataset"]
    if not dataset:
        raise CommandError(f"{path} does not record its data set: give --dataset.")
    same = dataset == recorded["dataset"]
    if data_dir is None and same:
        data_dir = recorded["data_dir"]
        if data_dir is not None and not os.path.isdir(data_dir):
            raise CommandError(f"the run was trained from --data-dir {data_dir!r}, which is no longer a folder: give "
                               "--data-dir with the data set's files.")
    verify = not no_verify and (recorded["verify"] or data_dir != recorded["data_dir"])
    ds = load_data(dataset, data_dir, verify=verify, test_only=test_only)
    if same and recorded["classes"] is not None:
        try:
            ds = select_classes(ds, recorded["classes"])
        except ValueError as e:
            raise CommandError(f"{path}: {one_line(e)}") from None
    return ds


def build_model(name: str, args: dict, rng=None):
    """A zoo model or a layer list built for the data (:func:`striate.training.recipe.build_model`), with
    errors turned into one-line CommandErrors."""
    from ..training import recipe
    return lib(recipe.build_model, name, args, rng)


def load_model_file(path, allow_onnx: bool = False):
    """Rebuild the model a weights file or checkpoint (or, with ``allow_onnx``, an ``.onnx`` file)
    describes; return ``(model, meta)``. Errors are one-line CommandErrors."""
    from ..training.model_file import load_model

    if path is None:
        raise CommandError("give the model file with --checkpoint PATH (or --weights PATH), e.g. "
                           "runs/digits-digits_cnn/weights.npz.")
    if allow_onnx and str(path).lower().endswith(".onnx") and not os.path.isfile(path):
        raise CommandError(f"no such file: {path!r}.")
    try:
        return load_model(path, allow_onnx=allow_onnx)
    except (ValueError, FileNotFoundError, ImportError) as e:  # CheckpointError is a ValueError
        raise CommandError(one_line(e)) from None


def standardizer(meta: dict):
    """The evaluation-time preprocessing recorded by ``striate train`` (per-channel standardisation)."""
    from ..data import transforms

    pre = meta.get("preprocess") or {}
    if pre.get("mean") is None:
        return None
    return transforms.Standardize(mean=np.asarray(pre["mean"]), std=np.asarray(pre["std"]), eps=pre.get("eps", 1e-7))


def add_invert_option(p) -> None:
    """``--invert`` / ``--no-invert`` (default: the automatic rule), for the commands that read pictures."""
    from ..data.images import INVERT_RULE

    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="invert the pictures (light <-> dark), or never; " + INVERT_RULE)


def invert_choice(args):
    """``"auto"`` unless ``--invert`` or ``--no-invert`` was given."""
    return "auto" if getattr(args, "invert", None) is None else bool(args.invert)


# -------------------------------------------------------------------------------- pictures a user names
def read_each(paths, read, errors, command: str = "striate predict"):
    """``read(path)`` for every path, each unreadable one reported on its own line and skipped (one path
    alone: its error is the command's). Returns ``(items, the paths read, the paths that failed)``."""
    items, read_paths, failed = [], [], []
    for path in paths:
        try:
            items.append(read(path))
            read_paths.append(path)
        except ImportError as e:   # Pillow is missing: the same for every file
            raise CommandError(str(e)) from None
        except errors as e:
            if len(paths) == 1:
                raise CommandError(one_line(e)) from None
            print(f"{command}: error: {one_line(e)}", file=sys.stderr)
            failed.append(path)
    if not items:
        raise CommandError(f"none of the {len(paths)} image(s) could be read.")
    return items, read_paths, failed


def report_unread(failed, total: int, command: str = "striate predict") -> int:
    """The exit code after the answers: 2, with one line naming them, when some pictures could not be read."""
    if not failed:
        return 0
    print(f"{command}: error: {len(failed)} of {total} image(s) could not be read: {', '.join(failed)}",
          file=sys.stderr)
    return 2
