"""Digits anywhere: the canvases, their boxes and masks, the named sets, and the folders the generator writes."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from striate.data import load_dataset
from striate.data import canvas as canvas_mod
from striate.data.canvas import make_canvas_dataset, make_canvases, write_canvas_folders
from striate.data.detection_folders import load_annotated_folder

ROOT = os.path.join(os.path.dirname(__file__), "..")
from data_paths import MNIST_DIR  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tight_box(region):
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_same_seed_same_canvases_other_seed_others(digits):
    a = make_canvases(digits.x_train, digits.y_train, 30, seed=3)
    b = make_canvases(digits.x_train, digits.y_train, 30, seed=3)
    c = make_canvases(digits.x_train, digits.y_train, 30, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not np.array_equal(a.images, c.images)


def test_one_digit_canvas_box_and_mask_are_its_stroke(digits):
    # with one digit, the stroke is exactly the canvas pixels at half ink or more: the mask is the
    # digit's class + 1 there and 0 elsewhere, and the box is the tight box of those pixels
    s = make_canvases(digits.x_train, digits.y_train, 40, canvas=56, digits=(1, 1), seed=0)
    assert s.images.shape == (40, 56, 56, 1) and s.masks.shape == (40, 56, 56)
    for img, mask, box, label in zip(s.images[..., 0], s.masks, s.boxes, s.labels):
        stroke = img >= 127.5
        assert len(box) == 1 and len(label) == 1
        np.testing.assert_array_equal(mask, np.where(stroke, label[0] + 1, 0))
        assert list(box[0]) == tight_box(stroke)
        w, h = box[0][2] - box[0][0], box[0][3] - box[0][1]
        assert w <= 28 and 10 <= h <= 28  # the source's side becomes 16..28 pixels; strokes fill most of it
    boxes, labels = s.one_box_per_image()
    assert boxes.shape == (40, 4) and labels.shape == (40,)


def test_pasted_digit_is_the_source_digit(digits):
    # at scale 1 a canvas holds one of the real source images, pixel for pixel, somewhere
    s = make_canvases(digits.x_train[:5], digits.y_train[:5], 10, canvas=14, digits=(1, 1), scale=(1, 1), seed=1)
    for img, label in zip(s.images[..., 0], s.labels):
        found = [(k, t, l) for k in range(5) for t in range(7) for l in range(7)
                 if np.array_equal(img[t:t + 8, l:l + 8], digits.x_train[k, :, :, 0])]
        assert found and digits.y_train[found[0][0]] == label[0]
        rest = img.copy()
        _, t, l = found[0]
        rest[t:t + 8, l:l + 8] = 0
        assert not rest.any()


def test_several_digits_overlap_little_and_masks_agree_with_boxes(digits):
    s = make_canvases(digits.x_train, digits.y_train, 200, canvas=64, digits=(1, 4), max_overlap=0.2, seed=2)
    counts = np.bincount([len(b) for b in s.boxes], minlength=5)
    assert counts[0] == 0 and all(counts[1:] > 20), counts  # 1..4 digits, each count common
    saw_ambiguous = False
    for img, mask, boxes, labels in zip(s.images[..., 0], s.masks, s.boxes, s.labels):
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 64).all()
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
                small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                assert inter <= 0.2 * small + 1e-9
        inside = np.zeros((len(boxes), 64, 64), bool)
        for k, b in enumerate(boxes.astype(int)):
            inside[k, b[1]:b[3], b[0]:b[2]] = True
            # a box is tight: each of its edges touches its digit's pixels (or an ambiguous one)
            own = inside[k] & ((mask == labels[k] + 1) | (mask == 255))
            assert tight_box(own) == list(b)
        for v in np.unique(mask):
            if v == 0:
                continue
            px = mask == v
            if v == 255:
                saw_ambiguous = True
                # only where boxes of two different classes overlap
                covering = inside[:, px]
                assert all(len(set(labels[covering[:, p]])) >= 2 for p in range(px.sum()))
            else:  # a class pixel lies in a box of that class and is stroke
                assert (inside[labels == v - 1].any(axis=0) | ~px).all()
                assert (img[px] >= 127.5).all()
        assert ((mask != 0) == (img >= 127.5)).all()
    assert saw_ambiguous  # crossings occur and are marked


def test_canvas_arguments_are_checked(digits):
    with pytest.raises(ValueError, match="does not fit a 20x20 canvas"):
        make_canvases(digits.x_train, digits.y_train, 1, canvas=20)
    with pytest.raises(ValueError, match=r"digits must satisfy 0 < low <= high"):
        make_canvases(digits.x_train, digits.y_train, 1, digits=(3, 1))
    with pytest.raises(ValueError, match="uint8 grayscale digits"):
        make_canvases(digits.x_train.astype(float), digits.y_train, 1)


def test_named_sets(monkeypatch):
    monkeypatch.setitem(canvas_mod.CANVAS_SETS, "digits_anywhere", ("digits", 30, 10, 64, (1, 4)))
    monkeypatch.setitem(canvas_mod.CANVAS_SETS, "digits_localisation", ("digits", 20, 5, 56, (1, 1)))
    a, b = load_dataset("digits_anywhere"), load_dataset("Digits-Anywhere")
    assert a.task == "detection" and a.sha256 == b.sha256 and len(a.sha256) == 64
    assert a.train.images.shape == (30, 64, 64, 1) and len(a.test) == 10
    assert a.category_ids == list(range(1, 11)) and a.mask_class_names[0] == "background"
    loc = load_dataset("digits_localization")
    assert loc.task == "localisation" and loc.train.images.shape == (20, 56, 56, 1)
    assert loc.train.one_box_per_image()[0].shape == (20, 4)
    assert loc.sha256 != a.sha256


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="shared MNIST copy not present")
def test_mnist_anywhere(monkeypatch):
    monkeypatch.setitem(canvas_mod.CANVAS_SETS, "mnist_anywhere", ("mnist", 20, 5, 64, (1, 4)))
    ds = load_dataset("mnist_anywhere", data_dir=MNIST_DIR)
    assert ds.train.images.shape == (20, 64, 64, 1) and ds.name == "mnist_anywhere"
    assert all(1 <= len(b) <= 4 for b in ds.train.boxes)


def test_written_folders_load_back_with_the_manifest_digest(digits, tmp_path):
    ds = make_canvas_dataset(digits.x_train, digits.y_train, digits.x_test, digits.y_test, digits.class_names,
                             12, 4, seed=5)
    out = tmp_path / "canvases"
    manifest = write_canvas_folders(ds, out, params={"seed": 5})
    assert json.loads((out / "manifest.json").read_text()) == manifest
    det = load_annotated_folder(out / "detection")
    seg = load_annotated_folder(out / "segmentation")
    assert det.sha256 == manifest["folders"]["detection"]["sha256"]
    assert seg.sha256 == manifest["folders"]["segmentation"]["sha256"]
    assert det.category_ids == list(range(1, 11)) and det.class_names == [str(i) for i in range(10)]
    assert seg.class_names == ["background"] + [str(i) for i in range(10)]
    for name in ("train", "test"):
        np.testing.assert_array_equal(det.splits[name].images, ds.splits[name].images)
        np.testing.assert_array_equal(seg.splits[name].masks, ds.splits[name].masks)
        for got, want in zip(det.splits[name].boxes, ds.splits[name].boxes):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(det.splits[name].labels, ds.splits[name].labels):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(FileExistsError, match="not overwriting"):
        write_canvas_folders(ds, out)
    # a changed file changes the digest a run records
    first = sorted((out / "detection" / "train").glob("*.png"))[0]
    first.write_bytes(first.read_bytes() + b"\0")
    assert load_annotated_folder(out / "detection").sha256 != det.sha256


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def test_script_writes_any_idx_set_deterministically(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for name, arr in (("tr-img.gz", rng.integers(0, 256, (20, 10, 10))), ("tr-lab.gz", rng.integers(0, 3, 20)),
                      ("te-img.gz", rng.integers(0, 256, (6, 10, 10))), ("te-lab.gz", rng.integers(0, 3, 6))):
        _write_idx(tmp_path / name, arr.astype(np.uint8))
        files.append(str(tmp_path / name))
    script = os.path.join(ROOT, "scripts", "make_digits_anywhere.py")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))
    runs = []
    for out in ("a", "b"):
        r = subprocess.run([sys.executable, script, str(tmp_path / out), "--idx", *files, "--n-train", "8",
                            "--n-test", "3", "--canvas", "40", "--seed", "2"], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads((tmp_path / out / "manifest.json").read_text()))
    assert runs[0]["folders"] == runs[1]["folders"]  # the same bytes, file by file
    assert runs[0]["class_names"] == ["0", "1", "2"]
    again = subprocess.run([sys.executable, script, str(tmp_path / "a"), "--idx", *files], capture_output=True,
                           text=True, env=env)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "not overwriting" in again.stderr


def test_written_without_split_folders_every_canvas_is_in_one_folder(digits, tmp_path):
    from striate.data.detection_folders import detect_layout

    ds = make_canvas_dataset(digits.x_train, digits.y_train, digits.x_test, digits.y_test, digits.class_names,
                             12, 4, seed=5)
    manifest = write_canvas_folders(ds, tmp_path / "flat", split_folders=False)
    det_files = manifest["folders"]["detection"]["files"]
    assert len([f for f in det_files if f.endswith(".png")]) == 16 and not any("/" in f for f in det_files)
    assert detect_layout(tmp_path / "flat" / "detection").splits == {}
    assert detect_layout(tmp_path / "flat" / "segmentation").splits == {}
    assert load_annotated_folder(tmp_path / "flat" / "detection").sha256 == manifest["folders"]["detection"]["sha256"]
