"""``striate report RUN_DIR``: one self-contained HTML page about a run of ``striate train``."""
from __future__ import annotations

import argparse
import os

from .common import add_overwrite_option, add_quiet_option, check_new_file, one_line
from .main import CommandError

EPILOG = """\
examples:
  striate report runs/digits-digits_cnn                 # -> runs/digits-digits_cnn/report.html
  striate report runs/mnist --data-dir PATH --out mnist.html

The page embeds its pictures (PNG) and needs neither network nor JavaScript: loss/accuracy curves,
the confusion matrix, the worst-classified test images with their top-3, the first-layer filters
and the activations of one test image.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="an HTML report of a training run",
        description="Write one self-contained HTML page about a run folder written by `striate train`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of striate train")
    p.add_argument("--out", metavar="FILE.html", help="where to write the page (RUN_DIR/report.html)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data set's files (for the test images; "
                   "default: the one the run recorded)")
    add_overwrite_option(p, "replace an existing --out file (RUN_DIR/report.html is always rewritten)")
    add_quiet_option(p)
    p.set_defaults(command="report")
    return p


def write_report(run_dir: str, out: str | None = None, data_dir: str | None = None) -> str:
    """``striate.vis.run_report.write_run_report`` with one-line CommandErrors."""
    from ..training import CheckpointError
    from ..vis.run_report import write_run_report

    try:
        return write_run_report(run_dir, out, data_dir)
    except (ValueError, ImportError, CheckpointError) as e:
        raise CommandError(one_line(e)) from None
    except OSError as e:
        raise CommandError(f"could not write the report: {e.strerror or one_line(e)}.") from None


def run(args) -> int:
    own = os.path.join(args.run_dir, "report.html")  # the run's own page is rewritten without asking
    if args.out is not None and not (os.path.exists(own) and os.path.exists(args.out) and os.path.samefile(args.out, own)):
        check_new_file(args.out, args.overwrite)
    out = write_report(args.run_dir, args.out, args.data_dir)
    if not args.quiet:
        print(f"wrote {out}")
    return 0
