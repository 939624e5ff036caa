"""``striate serve``: a local web page to draw a digit and watch every layer of the network respond."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys

from ..optional import require
from .common import add_quiet_option
from .main import CommandError

EPILOG = """\
examples:
  striate serve                                          # default model: digits_cnn, trained once and cached
  striate serve --checkpoint runs/mnist-lenet5/weights.npz --port 8080
  striate serve --checkpoint model.onnx                  # an ONNX model, imported by striate
  striate serve --checkpoint runs/digits_anywhere-centernet   # a detector (or segmenter): draw several digits
  striate serve --checkpoint runs/digits-digits_cnn/weights.npz --host 0.0.0.0   # reachable from the network
  striate serve --runs runs/live --data-dir ~/data/mnist   # Train view: its runs in runs/live, MNIST offered

Then open the printed address in a browser. Ctrl-C stops the server.
The page's JSON API can be scripted:
  curl -s --data-binary @digit.png http://127.0.0.1:8000/api/predict
  curl -s http://127.0.0.1:8000/api/model
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "serve", help="local web page: draw a digit, see every layer respond",
        description="Serve a local web page where you draw a digit (or upload an image) and see the class\n"
                    "probabilities and every layer's activation maps, computed by striate on this machine.\n"
                    "A localisation, detection or segmentation run opens a larger canvas instead: draw several\n"
                    "digits anywhere and its boxes or mask follow the pen.\n"
                    "Needs the serve extra: pip install striate[serve].",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", "--weights", dest="checkpoint", metavar="PATH",
                   help="weights.npz or checkpoint.npz written by striate train or striate import (or its run folder), or a model.onnx (default: a digits_cnn "
                        "trained on the embedded digits, cached under ~/.cache/striate/serve)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: only this machine can connect)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--runs", metavar="DIR", default="runs",
                   help="folder of the Train view's runs (default runs/: one serve-<time>-<optimizer> run folder "
                        "each, which striate train --resume continues); its unfinished runs are offered to resume")
    p.add_argument("--data-dir", metavar="DIR",
                   help="a folder the Train view may also train on: MNIST or Fashion-MNIST files (in it or a "
                        "sub-folder), else one sub-folder of images per class (default: the embedded digits only)")
    p.add_argument("--retrain", action="store_true", help="train the default model again even if it is cached")
    add_quiet_option(p, "print only the address served (no training progress of the default model)")
    p.set_defaults(command="serve")
    return p


def _say(message: str) -> None:
    print(message, flush=True)


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be between 0 and 65535. Received: {args.port}.")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise CommandError(f"--data-dir {args.data_dir!r} is not a folder.")
    if os.path.exists(args.runs) and not os.path.isdir(args.runs):
        raise CommandError(f"--runs {args.runs!r} is a file; give a folder for the Train view's runs.")
    if args.checkpoint is not None and args.retrain:
        raise CommandError("--retrain trains the default model; it does not combine with --checkpoint.")
    try:
        for package in ("flask", "PIL.Image"):   # the page, and reading the drawn and uploaded images
            require(package, "serve", "striate serve")
    except ImportError as e:
        raise CommandError(str(e)) from None
    from werkzeug.serving import make_server   # Flask's own server library
    from ..serve import ModelFileError, create_app, default_served_model, load_served_model

    # bind first (a busy port is reported before any training) and here: werkzeug reports it
    # with several lines and sys.exit(1)
    try:
        found = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family = found[0][0]
    except (socket.gaierror, UnicodeError, OverflowError) as e:
        why = getattr(e, "strerror", None) or e
        raise CommandError(f"--host {args.host!r} is not an address to listen on ({why}). Use an IP address "
                           "such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface).") from None
    try:
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as e:
        raise CommandError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}). "
                           "Choose another --port (or --port 0 for a free one).") from None
    with sock:
        try:
            if args.checkpoint is None:
                served = default_served_model(retrain=args.retrain, say=(lambda message: None) if args.quiet else _say)
            else:
                served = load_served_model(args.checkpoint)
        except (ModelFileError, ImportError) as e:
            raise CommandError(" ".join(str(e).split())) from None
        app = create_app(served)
        app.config["STRIATE_RUNS_DIR"] = args.runs
        app.config["STRIATE_DATA_DIR"] = None if args.data_dir is None else os.path.abspath(args.data_dir)
        # one access-log line per request would scroll by with every stroke; errors are still logged
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server(args.host, sock.getsockname()[1], app, threaded=True, fd=sock.fileno())
        return _serve(server, served)


def _serve(server, served) -> int:
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    shape = "x".join(str(s) for s in served.input_shape)
    task = getattr(served, "task", None)   # a localisation, detection or segmentation run: the dense view
    classes = served.mask_class_names[1:] if task == "segmentation" else served.class_names
    _say(f"serving {served.name} ({task + ', ' if task else ''}{shape} input, {len(classes)} classes) at "
         f"http://{shown}:{port}/ — Ctrl-C stops")
    if not loopback:
        _say(f"note: bound to {host}, so other machines on the network can reach this page")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("striate serve: stopped", file=sys.stderr, flush=True)
    return 0
