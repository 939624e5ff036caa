"""st.detection: IoU, NMS and box coding against independent brute-force references written here
in plain Python loops (and torchvision's ops as a further oracle where torchvision is installed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import striate as st

det = st.detection


# --------------------------------------------------------------------------- references
def ref_iou(a, b):
    """IoU of two xyxy boxes, one scalar at a time."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def ref_nms(boxes, scores, threshold):
    """Greedy NMS as its definition reads: repeatedly take the best remaining box (first index among
    equal scores), drop every remaining box that overlaps it by more than the threshold."""
    remaining = list(range(len(boxes)))
    keep = []
    while remaining:
        best = max(remaining, key=lambda i: (scores[i], -i))
        keep.append(best)
        remaining = [i for i in remaining if i != best and ref_iou(boxes[best], boxes[i]) <= threshold]
    return keep


def random_boxes(rng, n, size=50.0, max_wh=20.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, max_wh, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# --------------------------------------------------------------------------- box_iou
def test_box_iou_matches_the_loop_reference(rng):
    a, b = random_boxes(rng, 17), random_boxes(rng, 23)
    a[3] = [5, 5, 5, 9]  # an empty box (zero width)
    got = det.box_iou(a, b)
    expected = np.array([[ref_iou(p, q) for q in b] for p in a])
    assert got.shape == (17, 23)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert (got[3] == 0).all()


def test_box_iou_special_cases():
    box = [[0.0, 0.0, 2.0, 2.0]]
    assert det.box_iou(box, box)[0, 0] == 1.0
    assert det.box_iou(box, [[2.0, 0.0, 4.0, 2.0]])[0, 0] == 0.0  # touching edges: no overlap
    assert det.box_iou(box, [[1.0, 1.0, 3.0, 3.0]])[0, 0] == pytest.approx(1 / 7)
    assert det.box_iou([[1.0, 1, 1, 1]], [[1.0, 1, 1, 1]])[0, 0] == 0.0  # two empty boxes: 0, not NaN
    assert det.box_iou(np.zeros((0, 4)), box).shape == (0, 1)
    assert det.box_iou(box, []).shape == (1, 0)
    assert det.box_iou(np.zeros((2, 4), np.float32), np.zeros((1, 4), np.float32)).dtype == np.float32


def test_box_iou_is_symmetric(rng):
    a, b = random_boxes(rng, 6), random_boxes(rng, 9)
    np.testing.assert_array_equal(det.box_iou(a, b), det.box_iou(b, a).T)


# --------------------------------------------------------------------------- nms
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_nms_matches_the_loop_reference(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 60, size=40.0)
    scores = rng.random(60)
    if seed % 2:
        scores = np.round(scores * 5) / 5  # many ties
    got = det.nms(boxes, scores, threshold)
    assert got.dtype == np.int64
    assert got.tolist() == ref_nms(boxes, scores, threshold)
    assert (np.diff(scores[got]) <= 0).all()  # decreasing score


def test_nms_ties_iou_equal_to_threshold_and_empty_input():
    # two boxes with IoU exactly 1/3 (overlap 2x4 of two 4x4 boxes: 8 / 24)
    boxes = np.array([[0, 0, 4, 4], [2, 0, 6, 4], [20, 20, 24, 24]], float)
    assert det.nms(boxes, np.array([0.5, 0.5, 0.5]), 1 / 3).tolist() == [0, 1, 2]  # equal IoU: kept
    assert det.nms(boxes, np.array([0.5, 0.5, 0.5]), 0.3).tolist() == [0, 2]  # ties: lower index first
    assert det.nms(boxes, np.array([0.4, 0.5, 0.9]), 0.3).tolist() == [2, 1]
    empty = det.nms(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    assert det.nms(np.array([[0, 0, 1, 1.0]]), np.array([0.1]), 0.5).tolist() == [0]


def test_nms_identical_boxes_keep_the_best_one():
    boxes = np.tile([[3.0, 3.0, 9.0, 9.0]], (5, 1))
    assert det.nms(boxes, np.array([0.1, 0.9, 0.3, 0.9, 0.2]), 0.99).tolist() == [1]


@pytest.mark.parametrize("seed", range(3))
def test_batched_nms_is_nms_per_class(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 50, size=30.0)
    scores = np.round(rng.random(50) * 8) / 8
    classes = rng.integers(0, 4, 50)
    got = det.batched_nms(boxes, scores, classes, 0.4)
    expected = []
    for c in range(4):
        idx = [i for i in range(50) if classes[i] == c]
        expected += [idx[k] for k in ref_nms(boxes[idx], scores[idx], 0.4)]
    expected.sort(key=lambda i: (-scores[i], i))
    assert got.tolist() == expected


def test_batched_nms_classes_do_not_suppress_each_other():
    boxes = np.array([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert det.batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert det.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).shape == (0,)


def test_nms_errors():
    with pytest.raises(ValueError, match=r"nms: boxes must have shape \(n, 4\): one \(x0, y0, x1, y1\) per row\. "
                                         r"Received: boxes\.shape=\(3, 5\)"):
        det.nms(np.zeros((3, 5)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"nms: scores must be a 1-D array of numbers, one per box \(3\)\. "
                                         r"Received: scores\.shape=\(2,\)"):
        det.nms(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"nms: iou_threshold must lie in \[0.0, 1.0\]\. Received: iou_threshold=1.5"):
        det.nms(np.zeros((3, 4)), np.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"batched_nms: classes must be a 1-D integer array"):
        det.batched_nms(np.zeros((3, 4)), np.zeros(3), np.zeros(3), 0.5)


# --------------------------------------------------------------------------- formats and coding
def test_format_conversions_round_trip(rng):
    boxes = random_boxes(rng, 10)
    x0, y0, x1, y1 = boxes.T
    xywh = det.xyxy_to_xywh(boxes)
    np.testing.assert_allclose(xywh, np.stack([x0, y0, x1 - x0, y1 - y0], 1))
    cxcywh = det.xyxy_to_cxcywh(boxes)
    np.testing.assert_allclose(cxcywh, np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1))
    np.testing.assert_allclose(det.xywh_to_xyxy(xywh), boxes)
    np.testing.assert_allclose(det.cxcywh_to_xyxy(cxcywh), boxes)
    assert det.xyxy_to_xywh(boxes.reshape(2, 5, 4)).shape == (2, 5, 4)  # any leading axes


def test_box_area_and_clip():
    boxes = np.array([[0, 0, 2, 3], [5, 5, 4, 9], [-2, -1, 12, 30]], float)
    np.testing.assert_array_equal(det.box_area(boxes), [6, 0, 14 * 31])
    np.testing.assert_array_equal(det.clip_boxes(boxes, (20, 10))[2], [0, 0, 10, 20])


def test_encode_follows_the_formula():
    anchor = np.array([10.0, 20.0, 30.0, 60.0])  # centre (20, 40), size 20 x 40
    box = np.array([12.0, 18.0, 42.0, 58.0])  # centre (27, 38), size 30 x 40
    d = det.encode_boxes(box, anchor)
    np.testing.assert_allclose(d, [10 * 7 / 20, 10 * -2 / 40, 5 * math.log(30 / 20), 0.0])
    d1 = det.encode_boxes(box, anchor, weights=(1, 1, 1, 1))
    np.testing.assert_allclose(d1, [7 / 20, -2 / 40, math.log(1.5), 0.0])


@pytest.mark.parametrize("weights", [(10, 10, 5, 5), (1, 1, 1, 1), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_round_trip(weights, rng):
    anchors = random_boxes(rng, 30)
    boxes = random_boxes(rng, 30, max_wh=40)
    offsets = det.encode_boxes(boxes, anchors, weights)
    np.testing.assert_allclose(det.decode_boxes(offsets, anchors, weights), boxes, rtol=1e-12, atol=1e-10)
    # broadcasting: every box against every anchor
    grid = det.encode_boxes(boxes[:, None], anchors[None])
    assert grid.shape == (30, 30, 4)
    np.testing.assert_allclose(det.decode_boxes(grid, anchors[None]), np.broadcast_to(boxes[:, None], grid.shape),
                               rtol=1e-12, atol=1e-10)


def test_decode_clips_the_scale():
    anchor = np.array([0.0, 0.0, 10.0, 10.0])
    big = det.decode_boxes(np.array([0, 0, 1e4, 1e4]), anchor)
    np.testing.assert_allclose(big[2] - big[0], 10 * 1000 / 16)
    assert np.isfinite(big).all()


def test_encode_refuses_empty_boxes():
    with pytest.raises(ValueError, match=r"encode_boxes: every box and anchor must have a positive width and height"):
        det.encode_boxes(np.array([[0.0, 0, 0, 5]]), np.array([[0.0, 0, 5, 5]]))


# --------------------------------------------------------------------------- torchvision, where installed
def test_against_torchvision_when_installed(rng):
    torch = pytest.importorskip("torch")
    try:
        import torchvision.ops as ops
    except Exception as e:  # absent, or built for another torch (its import then raises RuntimeError)
        pytest.skip(f"torchvision is not usable here: {e}")
    boxes, scores = random_boxes(rng, 80, size=40.0), rng.random(80)
    classes = rng.integers(0, 3, 80)
    tb, ts = torch.tensor(boxes), torch.tensor(scores)
    np.testing.assert_allclose(det.box_iou(boxes, boxes[:7]), ops.box_iou(tb, tb[:7]).numpy(), rtol=1e-12)
    assert det.nms(boxes, scores, 0.5).tolist() == ops.nms(tb, ts, 0.5).tolist()
    assert det.batched_nms(boxes, scores, classes, 0.5).tolist() == \
        ops.batched_nms(tb, ts, torch.tensor(classes), 0.5).tolist()
