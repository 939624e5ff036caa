"""Entry point of the ``striate`` command: dispatches to one module per sub-command.

Each command module defines ``add_parser(subparsers)`` (its arguments and help) and
``run(args) -> int`` (the exit code). Errors a user can fix (bad arguments, missing files) are
raised as :class:`CommandError` and printed as one line, with exit code 2.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from ..backend.memory import keep_freed_memory

# sub-command name -> module under striate.cli; add a line here for a new command.
COMMANDS = {
    "models": "models_cmd",
    "summary": "summary_cmd",
    "calc": "calc_cmd",
    "train": "train_cmd",
    "evaluate": "evaluate_cmd",
    "predict": "predict_cmd",
    "visualize": "visualize_cmd",
    "animate": "animate_cmd",
    "report": "report_cmd",
    "serve": "serve_cmd",
    "export": "export_cmd",
    "import": "import_cmd",
    "finetune": "finetune_cmd",
    "explain": "explain_cmd",
    "lr-find": "lrfind_cmd",
    "tune": "tune_cmd",
}


class CommandError(Exception):
    """A problem the user can fix; printed as ``striate <cmd>: error: <message>``."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="striate",
        description="striate: convolutional neural networks on NumPy — train, evaluate, inspect.",
    )
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"striate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        importlib.import_module(f"striate.cli.{module}").add_parser(sub)
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one sub-command alone: its options and their defaults (a command that runs
    another, as ``striate tune`` runs ``striate train``, builds that command's arguments with it)."""
    sub = argparse.ArgumentParser(prog="striate", add_help=False).add_subparsers()
    return importlib.import_module(f"striate.cli.{COMMANDS[name]}").add_parser(sub)


def run_command(name: str, args) -> int:
    """Run the sub-command ``name`` with parsed ``args`` (from :func:`command_parser`)."""
    return int(importlib.import_module(f"striate.cli.{COMMANDS[name]}").run(args) or 0)


def main(argv=None) -> int:
    if sys.stdout is None:  # started with stdout closed (`striate models >&-`): Python gives None
        print("striate: error: standard output is closed (Bad file descriptor); send it somewhere, "
              "e.g. > /dev/null.", file=sys.stderr)
        return 2
    command = "striate"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit:  # --help, --version or a usage error: a closed pipe shows in this flush
            sys.stdout.flush()
            raise
        if not args.command:
            parser.print_help()
            sys.stdout.flush()
            return 0
        command = f"striate {args.command}"
        _check_environment()
        keep_freed_memory()  # the command opts in to malloc tuning (striate.backend.memory); imports never do
        module = importlib.import_module(f"striate.cli.{COMMANDS[args.command]}")
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at the interpreter's exit
        return code
    except CommandError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`striate models | head`): as for other Unix tools, stop quietly with
        # 128 + SIGPIPE.
        _silence_stdout()
        return 141
    except OSError as e:
        if e.errno not in _OUTPUT_ERRORS:
            raise
        # A command reports the files it writes itself; what reaches here is its output, which cannot
        # be written: say so once, and keep Python's flush at exit from failing a second time.
        _silence_stdout()
        print(f"{command}: error: {_OUTPUT_ERRORS[e.errno]}", file=sys.stderr)
        return 2


# errno -> the one line for an output that cannot be written
_OUTPUT_ERRORS = {
    errno.EBADF: "its output is closed (Bad file descriptor); send it somewhere, e.g. > /dev/null.",
    errno.ENOSPC: "could not write its output: No space left on device. "
                  "Free space, or send the output elsewhere.",
}


def _check_environment():
    """Settings read from the environment are checked before any work, each naming its variable."""
    from ..backend.threads import SettingError, threads_from_environment
    try:
        threads_from_environment()
    except SettingError as e:
        raise CommandError(str(e)) from None


def _silence_stdout():
    """Flush what stdout still holds; if it cannot take it, point it at /dev/null (the recipe of
    Python's signal documentation), so that the interpreter's own flush at exit does not fail."""
    try:
        sys.stdout.flush()
        return
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
