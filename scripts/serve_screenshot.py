"""Screenshot of the ``striate serve`` page for the README: draw a 7, hover a unit, save a PNG.

Runs the app in a thread on a free port, drives Debian's Chromium with Playwright (as
tests/test_serve_browser.py does), draws a "7" with mouse events, waits for the answer, points the
mouse at a unit of one layer so that its receptive field shows on the input, and saves the top of
the page (1360 x 1000 unless --height says otherwise).

With a localisation, detection or segmentation run the page is the dense view: the script draws
several digits at several places of its canvas (:data:`DIGITS`), waits for the boxes or the mask,
and saves the view (1100 x 660 unless --height says otherwise).

    python scripts/serve_screenshot.py --out docs/serve.png                       # default model
    python scripts/serve_screenshot.py --checkpoint runs/mnist-lenet5/weights.npz --hover features.3 \\
        --out docs/serve_mnist.png
    python scripts/serve_screenshot.py --checkpoint runs/digits_anywhere-centernet --out docs/serve_detect.png
"""
from __future__ import annotations

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ellipse(cx, cy, rx, ry, n=24):
    import math

    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Digits for the dense view, one list of strokes each, in fractions of the canvas: four digits about
# a third of the canvas tall and half as wide at four places, as the digits_anywhere canvases hold
# 1-4 of the embedded digits at that size (their "1" has a flag).
DIGITS = {
    "7": [[(0.08, 0.08), (0.27, 0.08), (0.14, 0.44)]],
    "1": [[(0.55, 0.14), (0.63, 0.06), (0.63, 0.42)]],
    "0": [_ellipse(0.22, 0.72, 0.08, 0.16)],
    "4": [[(0.67, 0.55), (0.61, 0.76), (0.81, 0.76)], [(0.75, 0.62), (0.75, 0.90)]],
}


def stroke(page, selector: str, points, steps: int) -> None:
    """Press, move through ``points`` (fractions of the element ``selector``), release: real mouse events."""
    box = page.locator(selector).bounding_box()
    xy = [(box["x"] + a * box["width"], box["y"] + b * box["height"]) for a, b in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for p in xy[1:]:
        page.mouse.move(*p, steps=steps)
    page.mouse.up()


def dense_screenshot(page, out: str) -> None:
    """Draw :data:`DIGITS` on the dense view's canvas, wait for the last answer, save ``out``."""
    page.wait_for_function("document.getElementById('model-line').textContent.includes('parameters')")
    strokes = 0
    for digit in DIGITS.values():
        for points in digit:
            stroke(page, "#dense-pad", points, steps=6)
            strokes += 1
    page.wait_for_function(f"Number(document.body.dataset.strokes || 0) === {strokes}")
    page.wait_for_timeout(1500)   # a last debounced request, its mask image decoded
    page.mouse.move(5, 5)
    page.screenshot(path=out)
    print(page.inner_text("#found").replace("\n", " | "))


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
    ap.add_argument("--height", type=int, help="viewport height in pixels (default 1000, width 1360; the dense "
                                               "view: 660, width 1100)")
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
            dense = getattr(served, "task", "classification") != "classification"
            size = ({"width": 1100, "height": args.height or 660} if dense
                    else {"width": 1360, "height": args.height or 1000})
            page = browser.new_page(viewport=size)
            page.goto(url)
            if dense:
                dense_screenshot(page, args.out)
                browser.close()
                print(f"wrote {args.out}")
                return 0
            page.wait_for_selector(".layer")
            stroke(page, "#pad", [(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)], steps=10)   # a 7
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
