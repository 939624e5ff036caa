"""Request time of ``POST /api/predict``: what one update of the ``striate serve`` page costs.

Starts the app on a free local port in a thread (werkzeug, threaded, as ``striate serve`` runs it)
and sends the request the page sends while a user draws: JSON with the 280x280 canvas as a PNG
data URL. Prints the median and 90th percentile of the round trip (client side, new connection each
time as the page's ``fetch`` does with this HTTP/1.0 server) and of the server's own time (``ms`` in
the answer: decoding, preprocessing, forward pass, rendering every layer's maps).

A localisation, detection or segmentation run is served by the dense view: the request is then
``POST /api/dense`` with the 384x384 canvas of four drawn digits (``ms``: decoding, resizing to the
model's input, forward pass, decoding the boxes or encoding the mask).

    python benchmarks/serve_predict.py                  # the default digits_cnn (trained if not cached)
    python benchmarks/serve_predict.py --checkpoint runs/mnist-lenet5/weights.npz -n 300
    python benchmarks/serve_predict.py --model lenet5   # an untrained registry model (same cost)
    python benchmarks/serve_predict.py --checkpoint runs/digits_anywhere-centernet -n 100   # a detector
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def drawn_seven():
    from PIL import Image, ImageDraw

    img = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(img).line([(80, 60), (200, 60), (120, 230)], fill=255, width=24, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def drawn_digits():
    """The dense view's 384x384 canvas with four digits (the strokes of scripts/serve_screenshot.py)."""
    import math

    from PIL import Image, ImageDraw

    ring = [(0.22 + 0.08 * math.sin(2 * math.pi * i / 24), 0.72 - 0.16 * math.cos(2 * math.pi * i / 24))
            for i in range(25)]
    strokes = [[(0.08, 0.08), (0.27, 0.08), (0.14, 0.44)], [(0.55, 0.14), (0.63, 0.06), (0.63, 0.42)], ring,
               [(0.67, 0.55), (0.61, 0.76), (0.81, 0.76)], [(0.75, 0.62), (0.75, 0.90)]]
    img = Image.new("L", (384, 384), 0)
    for s in strokes:
        ImageDraw.Draw(img).line([(384 * x, 384 * y) for x, y in s], fill=255, width=20, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def main(argv=None) -> int:
    import numpy as np
    from werkzeug.serving import make_server

    import striate as st
    from striate.serve import ServedModel, create_app, default_served_model, load_served_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="weights file to serve (default: the default model)")
    ap.add_argument("--model", help="serve an untrained registry model instead, e.g. lenet5")
    ap.add_argument("-n", type=int, default=200, help="requests to time (after 10 warm-up requests)")
    args = ap.parse_args(argv)
    if args.model:
        info = st.models.registry.info(args.model)
        served = ServedModel(info.builder(rng=0), info.input_shape, name=args.model)
    elif args.checkpoint:
        served = load_served_model(args.checkpoint)
    else:
        served = default_served_model(say=lambda m: print(m, file=sys.stderr))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # no access-log line per request
    srv = make_server("127.0.0.1", 0, create_app(served), threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dense = getattr(served, "task", "classification") != "classification"
    url = f"http://127.0.0.1:{srv.server_address[1]}/api/{'dense' if dense else 'predict'}"
    body = json.dumps({"image": drawn_digits() if dense else drawn_seven(), "invert": False}).encode()
    client, server, size = [], [], 0
    try:
        for i in range(10 + args.n):
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req) as r:
                raw = r.read()
            dt = 1000 * (time.perf_counter() - t0)
            if i >= 10:
                client.append(dt)
                server.append(json.loads(raw)["ms"])
                size = len(raw)
    finally:
        srv.shutdown()
    q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    what = f"{served.task}" if dense else f"{len(served.layers)} layers"
    print(f"{served.name} {'x'.join(map(str, served.input_shape))}, {what}, "
          f"answer {size / 1024:.0f} KiB, {args.n} requests, load average {load:.2f}")
    print(f"round trip  median {statistics.median(client):6.1f} ms   p90 {q(client, 90):6.1f} ms")
    print(f"server      median {statistics.median(server):6.1f} ms   p90 {q(server, 90):6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
