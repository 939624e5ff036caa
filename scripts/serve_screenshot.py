"""Screenshot of the ``striate serve`` page for the README: draw a 7, hover a unit, save a PNG.

Runs the app in a thread on a free port, drives Debian's Chromium with Playwright (as
tests/test_serve_browser.py does), draws a "7" with mouse events, waits for the answer, points the
mouse at a unit of one layer so that its receptive field shows on the input, and saves the top of
the page (1360 x 1000 unless --height says otherwise).

    python scripts/serve_screenshot.py --out docs/serve.png                       # default model
    python scripts/serve_screenshot.py --checkpoint runs/mnist-lenet5/weights.npz --hover features.3 \\
        --out docs/serve_mnist.png
"""
from __future__ import annotations

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    import logging

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from striate.serve import create_app, default_served_model, load_served_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="weights to serve (default: the default model)")
    ap.add_argument("--hover", default="features.0", help="layer whose unit the mouse points at")
    ap.add_argument("--unit", default="3,0.55,0.45", help="map index, x and y fractions inside it")
    ap.add_argument("--out", default="serve.png", help="PNG to write")
    ap.add_argument("--height", type=int, default=1000, help="viewport height in pixels (width 1360)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args(argv)
    served = load_served_model(args.checkpoint) if args.checkpoint else default_served_model()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    srv = make_server("127.0.0.1", 0, create_app(served), threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    k, fx, fy = args.unit.split(",")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1360, "height": args.height})
            page.goto(url)
            page.wait_for_selector(".layer")
            box = page.locator("#pad").bounding_box()
            points = [(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)]
            xy = [(box["x"] + a * box["width"], box["y"] + b * box["height"]) for a, b in points]
            page.mouse.move(*xy[0])
            page.mouse.down()
            for p in xy[1:]:
                page.mouse.move(*p, steps=10)
            page.mouse.up()
            page.wait_for_function("Number(document.body.dataset.predictions || 0) > 0")
            page.wait_for_timeout(800)
            img = page.locator(f'.layer[data-layer="{args.hover}"] .maps img').nth(int(k))
            bb = img.bounding_box()
            page.mouse.move(bb["x"] + float(fx) * bb["width"], bb["y"] + float(fy) * bb["height"], steps=3)
            page.screenshot(path=args.out)
            print(page.inner_text("#verdict"), "|", page.inner_text("#rf-caption"))
            browser.close()
    finally:
        srv.shutdown()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
