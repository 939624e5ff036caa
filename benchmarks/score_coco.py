"""Score `striate predict --json` results with pycocotools' COCOeval, as a user of COCO tools would.

    python benchmarks/score_coco.py GROUND_TRUTH.json RESULTS.json [IMAGE ...] [--agnostic]

IMAGE files (optional) restrict the evaluation to those pictures (by file name in the ground truth),
for a folder without split folders whose test split striate held out itself. ``--agnostic`` scores
every box as one class (where the objects are, whatever their class). Prints one JSON line:
``{"mAP": ..., "mAP50": ..., "mAP75": ..., "images": n, "results": n}``. pycocotools is a test tool
(``pip install pycocotools``); striate itself never imports it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys


def score(gt_file: str, results_file: str, images=None, agnostic: bool = False) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        with open(results_file, encoding="utf-8") as f:
            results = json.load(f)
        if agnostic:
            first = gt.dataset["categories"][0]["id"]
            gt.dataset["categories"] = gt.dataset["categories"][:1]
            for a in gt.dataset["annotations"] + results:
                a["category_id"] = first
            gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results) if results else COCO(), "bbox")
        if images:
            by_name = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
            ev.params.imgIds = sorted(by_name[os.path.basename(p)] for p in images)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mAP": float(ev.stats[0]), "mAP50": float(ev.stats[1]), "mAP75": float(ev.stats[2]),
            "images": len(ev.params.imgIds), "results": len(results)}


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    rest = [a for a in sys.argv[3:] if a != "--agnostic"]
    print(json.dumps(score(sys.argv[1], sys.argv[2], rest, agnostic="--agnostic" in sys.argv[3:])))
