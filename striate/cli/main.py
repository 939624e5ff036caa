"""Entry point of the ``striate`` command: dispatches to one module per sub-command.

Each command module defines ``add_parser(subparsers)`` (its arguments and help) and
``run(args) -> int`` (the exit code). Errors a user can fix (bad arguments, missing files) are
raised as :class:`CommandError` and printed as one line, with exit code 2.
"""
from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    keep_freed_memory()  # the command opts in to malloc tuning (striate.backend.memory); imports never do
    module = importlib.import_module(f"striate.cli.{COMMANDS[args.command]}")
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at the interpreter's exit
        return code
    except CommandError as e:
        print(f"striate {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"striate {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`striate models | head`): as for other Unix tools, stop quietly with
        # 128 + SIGPIPE. stdout is pointed at /dev/null so that Python's flush at exit does not fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
