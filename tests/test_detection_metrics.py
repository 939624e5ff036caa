"""Detection, localisation and segmentation scores.

mean_average_precision is compared with pycocotools' COCOeval (the reference implementation of the
COCO protocol, a test tool only) on randomised detections: several categories with arbitrary ids,
images without boxes, equal scores and crowd boxes. Segmentation scores are compared with a
confusion matrix built here with np.bincount and with hand-worked cases.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import striate as st

det = st.detection


# ------------------------------------------------------------------------- pycocotools oracle
def coco_eval(images, preds):
    """(mAP, mAP50, {cat: AP}) from COCOeval, for images given as dicts of xywh boxes."""
    COCO = pytest.importorskip("pycocotools.coco").COCO
    COCOeval = pytest.importorskip("pycocotools.cocoeval").COCOeval
    cats = sorted({c for im in images for c in im["cats"]} | {c for p in preds for c in p["cats"]})
    gt = {"images": [], "annotations": [], "categories": [{"id": int(c), "name": str(c)} for c in cats]}
    ann_id = 1
    for image_id, im in enumerate(images, start=1):
        gt["images"].append({"id": image_id, "width": 100, "height": 100, "file_name": f"{image_id}.png"})
        for box, c, crowd in zip(im["xywh"], im["cats"], im["crowd"]):
            gt["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": int(c),
                                      "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                                      "iscrowd": int(crowd)})
            ann_id += 1
    results = [{"image_id": image_id, "category_id": int(c), "bbox": [float(v) for v in box], "score": float(s)}
               for image_id, p in enumerate(preds, start=1)
               for box, c, s in zip(p["xywh"], p["cats"], p["scores"])]
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # precision: (T, R, K, A, M); area "all" is 0, maxDets 100 the last
    prec = ev.eval["precision"][:, :, :, 0, -1]
    per_class = {c: float(prec[:, :, k].mean()) for k, c in enumerate(ev.params.catIds) if (prec[:, :, k] > -1).all()}
    return float(ev.stats[0]), float(ev.stats[1]), per_class


def to_xyxy(xywh):
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def random_scene(rng, n_images, cats, crowd_rate=0.1, empty_rate=0.2, tie_levels=None, max_gt=6):
    """Ground truth and noisy detections: jittered copies of true boxes, wrong classes, and clutter."""
    images, preds = [], []
    for _ in range(n_images):
        m = 0 if rng.random() < empty_rate else int(rng.integers(1, max_gt + 1))
        xy = rng.uniform(0, 70, (m, 2))
        wh = rng.uniform(4, 30, (m, 2))
        gt = {"xywh": np.concatenate([xy, wh], 1), "cats": rng.choice(cats, m),
              "crowd": (rng.random(m) < crowd_rate).astype(int)}
        boxes, pcats = [], []
        for box, c in zip(gt["xywh"], gt["cats"]):
            for _ in range(int(rng.integers(0, 3))):  # 0-2 detections per object, some of another class
                jitter = box + rng.normal(0, 0.12, 4) * np.r_[box[2:], box[2:]]
                jitter[2:] = np.maximum(jitter[2:], 0.5)
                boxes.append(jitter)
                pcats.append(c if rng.random() < 0.85 else rng.choice(cats))
        for _ in range(int(rng.integers(0, 4))):  # clutter
            boxes.append(np.r_[rng.uniform(0, 80, 2), rng.uniform(2, 25, 2)])
            pcats.append(rng.choice(cats))
        n = len(boxes)
        scores = rng.random(n) if tie_levels is None else rng.integers(0, tie_levels, n) / tie_levels
        images.append(gt)
        preds.append({"xywh": np.asarray(boxes).reshape(-1, 4), "cats": np.asarray(pcats, np.int64),
                      "scores": scores})
    return images, preds


def striate_map(images, preds):
    return det.mean_average_precision(
        [{"boxes": to_xyxy(p["xywh"]), "scores": p["scores"], "labels": p["cats"]} for p in preds],
        [{"boxes": to_xyxy(g["xywh"]), "labels": g["cats"], "iscrowd": g["crowd"]} for g in images])


@pytest.mark.parametrize("seed,cats,crowd_rate,empty_rate,tie_levels", [
    (0, [1], 0.0, 0.0, None),             # one category, no crowd, every image with boxes
    (1, [3, 7, 90], 0.0, 0.3, None),      # arbitrary ids, images without boxes
    (2, [5, 11], 0.15, 0.2, None),        # crowd boxes
    (3, [1, 2, 3, 4], 0.1, 0.2, 4),       # many equal scores (4 levels): the stable order decides
    (4, [17, 42, 8], 0.2, 0.4, 3),        # all together
    (5, [0, 2, 1000], 0.3, 0.1, 2),
])
def test_map_matches_pycocotools(seed, cats, crowd_rate, empty_rate, tie_levels):
    rng = np.random.default_rng(seed)
    images, preds = random_scene(rng, 40, np.array(cats), crowd_rate, empty_rate, tie_levels)
    want_map, want_50, want_per = coco_eval(images, preds)
    got = striate_map(images, preds)
    assert got["mAP"] == pytest.approx(want_map, abs=1e-6)
    assert got["mAP50"] == pytest.approx(want_50, abs=1e-6)
    assert set(got["per_class"]) == set(want_per)
    for c, ap in want_per.items():
        assert got["per_class"][c] == pytest.approx(ap, abs=1e-6), c
    assert 0.05 < got["mAP"] < 0.95  # a scene where matching decisions matter, not a trivial 0 or 1


@pytest.mark.parametrize("seed", [0, 1])
def test_map_matches_pycocotools_on_integer_boxes(seed):
    # boxes on the pixel grid: IoUs tie between boxes and land exactly on thresholds (0.5, 0.6, 0.75, ...)
    rng = np.random.default_rng(50 + seed)
    images, preds = random_scene(rng, 60, np.array([4, 6]), 0.15, 0.2, tie_levels=3, max_gt=4)
    for item in images + preds:
        item["xywh"] = np.maximum(np.round(item["xywh"] / 4) * 4, [0, 0, 4, 4])
    want_map, want_50, want_per = coco_eval(images, preds)
    got = striate_map(images, preds)
    assert got["mAP"] == pytest.approx(want_map, abs=1e-6)
    assert got["mAP50"] == pytest.approx(want_50, abs=1e-6)
    assert got["per_class"] == pytest.approx(want_per, abs=1e-6)


def test_equal_iou_with_two_boxes_takes_the_later_box_as_coco_does():
    # d1 overlaps boxes A and B equally (IoU 0.6); COCO gives it B, the later box, which leaves A to d2
    # (IoU 1): two hits. Taking A would leave d2 only B (IoU 1/3): a miss.
    images = [{"xywh": np.array([[0.0, 0, 10, 10], [5, 0, 10, 10]]), "cats": np.array([1, 1]), "crowd": np.array([0, 0])}]
    preds = [{"xywh": np.array([[2.5, 0, 10, 10], [0, 0, 10, 10]]), "cats": np.array([1, 1]),
              "scores": np.array([0.9, 0.8])}]
    want_map, want_50, _ = coco_eval(images, preds)
    got = striate_map(images, preds)
    assert want_50 == pytest.approx(1.0)
    assert got["mAP50"] == pytest.approx(want_50, abs=1e-12) and got["mAP"] == pytest.approx(want_map, abs=1e-12)


def test_map_matches_pycocotools_with_many_detections_per_image():
    # more than 100 detections of one category in an image: only the 100 best count (maxDets)
    rng = np.random.default_rng(7)
    images, preds = random_scene(rng, 6, np.array([2, 9]), 0.1, 0.0, None, max_gt=30)
    for p in preds:
        extra = 130
        p["xywh"] = np.concatenate([p["xywh"], np.c_[rng.uniform(0, 70, (extra, 2)), rng.uniform(4, 30, (extra, 2))]])
        p["cats"] = np.concatenate([p["cats"], np.full(extra, 2)])
        p["scores"] = np.concatenate([p["scores"], rng.random(extra)])
    want_map, want_50, want_per = coco_eval(images, preds)
    got = striate_map(images, preds)
    assert got["mAP"] == pytest.approx(want_map, abs=1e-6)
    assert got["mAP50"] == pytest.approx(want_50, abs=1e-6)
    assert got["per_class"] == pytest.approx(want_per, abs=1e-6)


def test_map_hand_cases():
    gt = [{"boxes": [[0, 0, 10, 10]], "labels": [1]}, {"boxes": np.zeros((0, 4)), "labels": []}]
    perfect = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]},
               {"boxes": np.zeros((0, 4)), "scores": [], "labels": []}]
    r = det.mean_average_precision(perfect, gt)
    assert r["mAP"] == pytest.approx(1.0) and r["mAP50"] == pytest.approx(1.0)
    # a more confident false positive on the empty image (a negative) halves the precision at full recall
    fp_first = [perfect[0], {"boxes": [[1, 1, 5, 5]], "scores": [0.95], "labels": [1]}]
    assert det.mean_average_precision(fp_first, gt)["mAP50"] == pytest.approx(0.5)
    # a less confident one costs nothing: recall 1 is reached at precision 1 first
    fp_last = [perfect[0], {"boxes": [[1, 1, 5, 5]], "scores": [0.5], "labels": [1]}]
    assert det.mean_average_precision(fp_last, gt)["mAP50"] == pytest.approx(1.0)
    # a detection inside a crowd region is ignored, not a false positive; IoU uses its own area
    crowd_gt = [{"boxes": [[0, 0, 10, 10], [20, 20, 80, 80]], "labels": [1, 1], "iscrowd": [0, 1]}]
    in_crowd = [{"boxes": [[30, 30, 40, 40], [0, 0, 10, 10]], "scores": [0.99, 0.5], "labels": [1, 1]}]
    assert det.mean_average_precision(in_crowd, crowd_gt)["mAP"] == pytest.approx(1.0)
    # a category with crowd boxes only has no AP and is not averaged
    r = det.mean_average_precision([{"boxes": [[0, 0, 5, 5]], "scores": [1.0], "labels": [4]}],
                                   [{"boxes": [[0, 0, 5, 5]], "labels": [4], "iscrowd": [1]}])
    assert r["num_classes"] == 0 and np.isnan(r["mAP"])


def test_map_rejects_bad_input():
    with pytest.raises(ValueError, match="one entry per image"):
        det.mean_average_precision([], [{"boxes": [[0, 0, 1, 1]], "labels": [0]}])
    with pytest.raises(ValueError, match=r"predictions\[0\] lacks 'scores'"):
        det.mean_average_precision([{"boxes": [[0, 0, 1, 1]], "labels": [0]}], [{"boxes": [], "labels": []}])
    with pytest.raises(ValueError, match=r"one entry per box \(1\)"):
        det.mean_average_precision([{"boxes": [[0, 0, 1, 1]], "labels": [0, 1], "scores": [1]}],
                                   [{"boxes": [], "labels": []}])


def test_crowd_iou_is_overlap_over_detection_area():
    d = np.array([[0.0, 0, 2, 2]])
    g = np.array([[1.0, 1, 11, 11]])
    assert det.metrics.crowd_box_iou(d, g, [1])[0, 0] == pytest.approx(1 / 4)
    assert det.metrics.crowd_box_iou(d, g, [0])[0, 0] == pytest.approx(1 / (4 + 100 - 1))


# ------------------------------------------------------------------------------ localisation
def test_localisation_scores():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 20, (50, 2)), rng.uniform(25, 50, (50, 2))]
    b = a + rng.normal(0, 3, a.shape)
    want = np.array([det.box_iou(a[i:i + 1], b[i:i + 1])[0, 0] for i in range(50)])
    np.testing.assert_allclose(det.paired_box_iou(a, b), want, atol=1e-12)
    pl, tl = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    s = det.localisation_scores(b, pl, a, tl)
    assert s["accuracy"] == pytest.approx(np.mean(pl == tl))
    assert s["mean_iou"] == pytest.approx(want.mean())
    assert s["correct"] == pytest.approx(np.mean((pl == tl) & (want >= 0.5)))
    assert det.localisation_scores([[0, 0, 4, 4]], [1], [[0, 0, 4, 2]], [1]) == {
        "accuracy": 1.0, "mean_iou": 0.5, "correct": 1.0}


# ------------------------------------------------------------------------------ segmentation
def reference_confusion(t, p, k):
    """The confusion matrix by its definition: count each (true, predicted) pair, skipping 255."""
    cm = np.zeros((k, k), np.int64)
    for a, b in zip(t.ravel().tolist(), p.ravel().tolist()):
        if a != 255:
            cm[a, b] += 1
    return cm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segmentation_scores_against_reference(seed):
    rng = np.random.default_rng(seed)
    k = 6
    t = rng.integers(0, k, (3, 17, 19))
    t[rng.random(t.shape) < 0.1] = 255
    t[t == 4] = 3  # class 4 absent from the truth...
    p = np.where(rng.random(t.shape) < 0.7, np.where(t == 255, 0, t), rng.integers(0, k, t.shape))
    p[p == 5] = 0  # ... class 5 absent from the prediction
    cm = det.segmentation_confusion_matrix(t, p, k)
    keep = t != 255
    by_bincount = np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)
    np.testing.assert_array_equal(cm, reference_confusion(t, p, k))
    np.testing.assert_array_equal(cm, by_bincount)
    s = det.segmentation_scores(cm)
    ious = []
    for c in range(k):
        inter = np.sum((t == c) & (p == c) & keep)
        union = np.sum(((t == c) | (p == c)) & keep)
        ious.append(inter / union)
    np.testing.assert_allclose(s["per_class_iou"], ious, atol=1e-12)
    assert s["mIoU"] == pytest.approx(np.mean(ious))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(t[keep] == p[keep]))
    assert s["num_pixels"] == keep.sum()


def test_segmentation_hand_cases():
    t = np.array([[0, 0], [1, 255]])
    p = np.array([[0, 1], [1, 2]])  # the ignored pixel's prediction (2) is not counted
    s = det.segmentation_scores(det.segmentation_confusion_matrix(t, p, num_classes=4))
    # class 0: 1 / 2; class 1: 1 / 2; classes 2 and 3 absent from both (255's prediction not counted)
    assert s["per_class_iou"][:2] == [0.5, 0.5]
    assert np.isnan(s["per_class_iou"][2]) and np.isnan(s["per_class_iou"][3])
    assert s["mIoU"] == 0.5 and s["pixel_accuracy"] == pytest.approx(2 / 3)
    # a class predicted but absent from the truth counts with IoU 0
    s = det.segmentation_scores(det.segmentation_confusion_matrix(np.array([0, 0]), np.array([0, 1]), 2))
    assert s["per_class_iou"] == [0.5, 0.0] and s["mIoU"] == 0.25


def test_segmentation_rejects_bad_masks():
    with pytest.raises(ValueError, match="same shape"):
        det.segmentation_confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ValueError, match="y_true holds class 7, outside 0..2"):
        det.segmentation_confusion_matrix(np.array([7]), np.array([0]), 3)
    with pytest.raises(TypeError, match="integer class indices"):
        det.segmentation_confusion_matrix(np.zeros(2), np.zeros(2, int), 2)
