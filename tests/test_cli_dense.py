"""`striate train / evaluate / predict` for localisation, detection and segmentation, end to end on tiny
COCO and mask folders written here (short runs: the files, the figures and the refusals, not the accuracy)."""
import csv
import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn
pytest.importorskip("PIL")

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.data.canvas import make_canvas_dataset  # noqa: E402
from striate.data.detection_folders import load_annotated_folder, write_coco_split, write_mask_split  # noqa: E402

# categories of the user's own files: not 0..K-1, not even contiguous
CATEGORY_IDS = [3, 5, 8, 13, 21, 34, 55, 89, 144, 233]


def _canvases(seed, digits, canvas):
    src = st.data.load_dataset("digits")
    return make_canvas_dataset(src.x_train, src.y_train, src.x_test, src.y_test, src.class_names, 48, 12,
                               canvas=canvas, digits=digits, seed=seed, name="tiny")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    det = _canvases(0, (1, 2), 36)       # 36x36: the model works at 32x32, predictions come back in 36x36 pixels
    for name, split in det.splits.items():
        write_coco_split(split, root / "coco" / name, det.class_names, CATEGORY_IDS)
        write_mask_split(split, root / "masks" / name)
    (root / "masks" / "classes.txt").write_text("\n".join(det.mask_class_names) + "\n")
    loc = _canvases(1, (1, 1), 32)
    for name, split in loc.splits.items():
        write_coco_split(split, root / "single" / name, loc.class_names)
    return root


@pytest.fixture(scope="module")
def det_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "run"
    assert main(["train", "--data-dir", str(folders / "coco"), "--epochs", "2", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def seg_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    assert main(["train", "--data-dir", str(folders / "masks"), "--epochs", "2", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def loc_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("loc") / "run"
    assert main(["train", "--data-dir", str(folders / "single"), "--task", "localisation", "--epochs", "2",
                 "--out", str(out), "-q"]) == 0
    return out


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("striate") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------- train
def test_detection_run_from_a_coco_folder(det_run, folders):
    for name in ("weights.npz", "checkpoint.npz", "log.csv", "metrics.json"):
        assert (det_run / name).is_file(), name
    m = _metrics(det_run)
    assert m["task"] == "detection" and m["model"] == "centernet" and m["epochs"] == 2
    assert 0.0 <= m["mAP"] <= m["mAP50"] <= 1.0
    assert set(m["per_class_AP"]) <= set(st.data.load_dataset("digits").class_names) and m["per_class_AP"]
    assert m["data_dir"] == str(folders / "coco") and m["data_layout"] == "coco"
    assert m["data_sha256"] == load_annotated_folder(folders / "coco").sha256
    rows = list(csv.DictReader((det_run / "log.csv").open()))
    assert len(rows) == 2 and {"loss", "val_loss", "lr"} <= set(rows[0])
    meta = st.training.load_checkpoint(det_run / "weights.npz").meta
    assert meta["task"] == "detection" and meta["category_ids"] == CATEGORY_IDS
    assert meta["input_shape"] == [32, 32, 1]  # 36 is no multiple of 8: the nearest that is


def test_segmentation_run_from_a_mask_folder(seg_run, folders):
    m = _metrics(seg_run)
    assert m["task"] == "segmentation" and m["model"] == "fcn"
    assert 0.0 <= m["mIoU"] <= 1.0 and 0.0 <= m["pixel_accuracy"] <= 1.0
    assert list(m["per_class_IoU"])[0] == "background" and len(m["per_class_IoU"]) == 11
    # mIoU is the mean of the per-class IoUs present
    present = [v for v in m["per_class_IoU"].values() if v is not None]
    assert np.isclose(m["mIoU"], np.mean(present))
    assert m["data_sha256"] == load_annotated_folder(folders / "masks").sha256


def test_localisation_run(loc_run):
    m = _metrics(loc_run)
    assert m["task"] == "localisation" and m["model"] == "localizer"
    for key in ("class_accuracy", "mean_iou", "localisation_accuracy"):
        assert 0.0 <= m[key] <= 1.0, key
    assert len(m["per_class_accuracy"]) == 10


def test_train_refuses_an_existing_run_and_resumes(det_run, folders, capsys, tmp_path):
    assert main(["train", "--data-dir", str(folders / "coco"), "--epochs", "1", "--out", str(det_run), "-q"]) == 2
    assert "--overwrite" in _error(capsys)
    out = tmp_path / "resumed"
    assert main(["train", "--data-dir", str(folders / "coco"), "--epochs", "1", "--out", str(out), "-q"]) == 0
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2", "-q"]) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert _metrics(out)["epochs"] == 2 and _metrics(out)["task"] == "detection"
    assert main(["train", "--data-dir", str(folders / "coco"), "--epochs", "1", "--out", str(out), "--overwrite",
                 "-q"]) == 0
    assert _metrics(out)["epochs"] == 1


@pytest.mark.parametrize("argv, words", [
    (["--task", "segmentation"], "no masks"),
    (["--model", "fcn"], "no masks"),
    (["--model", "centernet", "--task", "segmentation"], "is a detection model"),
    (["--model", "resnet20"], "--model"),
    (["--task", "counting"], "--task"),
    (["--augment", "twirl"], "--augment"),
    (["--task", "localisation"], "exactly one box"),
    (["--epochs", "0"], "--epochs"),
])
def test_train_refusals_are_one_line(folders, tmp_path, capsys, argv, words):
    code = main(["train", "--data-dir", str(folders / "coco"), "--out", str(tmp_path / "r"), "-q", *argv])
    assert code == 2
    assert words in _error(capsys)
    assert not (tmp_path / "r" / "weights.npz").exists()


def test_train_refuses_a_folder_without_a_layout_for_a_task(tmp_path, capsys):
    (tmp_path / "cats").mkdir()
    assert main(["train", "--data-dir", str(tmp_path), "--task", "detection", "--out", str(tmp_path / "r")]) == 2
    assert "COCO, YOLO or mask" in _error(capsys)


def test_train_help_lists_the_task_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for word in ("localisation", "detection", "segmentation", "centernet", "localizer", "fcn", "--task"):
        assert word in out, word


# ---------------------------------------------------------------------------------------- evaluate
def test_evaluate_gives_the_run_figures(det_run, seg_run, loc_run, capsys):
    for run, keys in ((det_run, ("mAP50", "mAP", "per_class_AP")),
                      (seg_run, ("mIoU", "pixel_accuracy", "per_class_IoU")),
                      (loc_run, ("class_accuracy", "mean_iou", "per_class_accuracy"))):
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", str(run / "weights.npz"), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        m = _metrics(run)
        for key in keys:
            assert got[key] == pytest.approx(m[key], nan_ok=True), key
    assert main(["evaluate", "--checkpoint", str(det_run / "weights.npz")]) == 0
    out = capsys.readouterr().out
    assert "mAP50" in out and "per class" in out and "AP50" in out


def test_evaluate_refuses_tta_for_boxes(det_run, capsys):
    assert main(["evaluate", "--checkpoint", str(det_run / "weights.npz"), "--tta"]) == 2
    assert "--tta" in _error(capsys)


# ----------------------------------------------------------------------------------------- predict
def _test_images(folders, layout="coco"):
    doc = json.loads((folders / layout / "test" / "_annotations.coco.json").read_text())
    return [str(folders / layout / "test" / im["file_name"]) for im in sorted(doc["images"], key=lambda i: i["id"])]


def test_predict_json_is_scored_by_cocoeval_as_it_is(det_run, folders, tmp_path, capsys):
    pycocotools = pytest.importorskip("pycocotools")  # noqa: F841
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = _test_images(folders)
    out = tmp_path / "det.json"
    assert main(["predict", *images, "--checkpoint", str(det_run / "weights.npz"), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results and {"image_id", "file_name", "category_id", "bbox", "score"} <= set(results[0])
    assert {r["category_id"] for r in results} <= set(CATEGORY_IDS)
    # boxes in the pictures' own 36x36 pixels (the model saw them at 32x32)
    xywh = np.array([r["bbox"] for r in results])
    assert (xywh[:, 0] >= 0).all() and (xywh[:, 0] + xywh[:, 2] <= 36 + 1e-6).all()
    gt_file = folders / "coco" / "test" / "_annotations.coco.json"
    gt = COCO(str(gt_file))
    cocoeval = COCOeval(gt, gt.loadRes(str(out)), "bbox")
    cocoeval.evaluate()
    cocoeval.accumulate()
    cocoeval.summarize()
    # the same predictions scored by striate's mAP (checked against COCOeval elsewhere)
    doc = json.loads(gt_file.read_text())
    ids = [im["id"] for im in sorted(doc["images"], key=lambda i: i["id"])]
    truth = [{"boxes": np.array([a["bbox"] for a in doc["annotations"] if a["image_id"] == i]).reshape(-1, 4),
              "labels": np.array([a["category_id"] for a in doc["annotations"] if a["image_id"] == i])} for i in ids]
    for t in truth:
        t["boxes"] = st.detection.xywh_to_xyxy(t["boxes"]) if len(t["boxes"]) else t["boxes"]
    preds = [{"boxes": st.detection.xywh_to_xyxy(
                  np.array([r["bbox"] for r in results if r["image_id"] == i]).reshape(-1, 4)),
              "scores": np.array([r["score"] for r in results if r["image_id"] == i]),
              "labels": np.array([r["category_id"] for r in results if r["image_id"] == i])} for i in ids]
    ours = st.detection.mean_average_precision(preds, truth)
    assert cocoeval.stats[0] == pytest.approx(ours["mAP"], abs=1e-6)
    assert cocoeval.stats[1] == pytest.approx(ours["mAP50"], abs=1e-6)


def test_perfect_detections_in_coco_format_score_one(folders):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from striate.training.dense_run import detections_to_coco

    gt_file = folders / "coco" / "test" / "_annotations.coco.json"
    ds = load_annotated_folder(folders / "coco")
    split = ds.test
    perfect = [{"boxes": split.boxes[i], "scores": np.ones(len(split.boxes[i])), "classes": split.labels[i]}
               for i in range(len(split))]
    results = detections_to_coco(perfect, split.file_names, ds.category_ids)
    gt = COCO(str(gt_file))
    cocoeval = COCOeval(gt, gt.loadRes(results), "bbox")
    cocoeval.evaluate()
    cocoeval.accumulate()
    cocoeval.summarize()
    assert cocoeval.stats[0] == pytest.approx(1.0) and cocoeval.stats[1] == pytest.approx(1.0)


def test_predict_draws_boxes(det_run, folders, tmp_path, capsys):
    from PIL import Image

    images = _test_images(folders)[:2]
    out = tmp_path / "pictures"
    assert main(["predict", *images, "--checkpoint", str(det_run / "weights.npz"), "--out", str(out),
                 "--min-score", "0"]) == 0
    files = sorted(os.listdir(out))
    assert files == sorted(os.path.splitext(os.path.basename(p))[0] + "_boxes.png" for p in images)
    drawn = np.asarray(Image.open(out / files[0]).convert("RGB"))
    assert drawn.shape[0] >= 256 and drawn.shape[0] == drawn.shape[1]
    # coloured box outlines on a gray canvas
    assert (drawn.max(axis=2) - drawn.min(axis=2) > 100).any()
    capsys.readouterr()
    assert main(["predict", *images, "--checkpoint", str(det_run / "weights.npz"), "--out", str(out)]) == 2
    assert "--overwrite" in _error(capsys)


def test_predict_masks_and_overlays(seg_run, folders, tmp_path):
    from PIL import Image

    image = folders / "masks" / "test" / "images" / "000000.png"
    out = tmp_path / "masks"
    assert main(["predict", str(image), "--checkpoint", str(seg_run / "weights.npz"), "--out", str(out)]) == 0
    mask = np.asarray(Image.open(out / "000000_mask.png"))
    assert mask.shape == (36, 36) and mask.max() <= 10
    overlay = np.asarray(Image.open(out / "000000_overlay.png").convert("RGB"))
    assert overlay.shape[0] >= 256


def test_predict_localisation_json(loc_run, folders, tmp_path):
    images = _test_images(folders, "single")[:3]
    out = tmp_path / "loc.json"
    assert main(["predict", *images, "--checkpoint", str(loc_run / "weights.npz"), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["image_id"] for r in results] == [1, 2, 3]  # one box per picture
    assert [r["file_name"] for r in results] == [os.path.basename(p) for p in images]


def test_predict_refusals(det_run, folders, tmp_path, capsys):
    image = _test_images(folders)[0]
    weights = str(det_run / "weights.npz")
    assert main(["predict", image, "--checkpoint", weights]) == 2
    assert "--out" in _error(capsys)
    existing = tmp_path / "x.json"
    existing.write_text("[]")
    assert main(["predict", image, "--checkpoint", weights, "--json", str(existing)]) == 2
    assert "--overwrite" in _error(capsys)
    assert main(["predict", image, "--checkpoint", weights, "--out", str(existing)]) == 2
    assert "is a file" in _error(capsys)
    assert main(["predict", str(tmp_path / "missing.png"), "--checkpoint", weights, "--out", str(tmp_path)]) == 2
    _error(capsys)


@pytest.mark.parametrize("argv, expected", [
    ([], None),
    (["--dataset", "mnist"], None),
    (["--dataset", "digits_localisation"], ("localisation", "digits_localisation", None)),
    (["--dataset", "Digits-Anywhere"], ("detection", "digits_anywhere", None)),
    (["--dataset", "digits_anywhere", "--task", "segmentation"], ("segmentation", "digits_anywhere", None)),
    (["--model", "unet"], ("segmentation", "digits_anywhere", None)),
    (["--task", "localisation"], ("localisation", "digits_localisation", None)),
])
def test_the_task_is_recognised_from_the_options(argv, expected):
    from striate.cli.main import build_parser
    from striate.cli.train_config import dense_request

    args = build_parser().parse_args(["train", *argv])
    assert dense_request(args) == expected


def test_the_task_is_recognised_from_the_folder(folders):
    from striate.cli.main import build_parser
    from striate.cli.train_config import dense_request

    for sub, task in (("coco", "detection"), ("masks", "segmentation")):
        args = build_parser().parse_args(["train", "--data-dir", str(folders / sub)])
        assert dense_request(args) == (task, None, str(folders / sub))


def test_yolo_folder_round_trip(tmp_path, capsys):
    pytest.importorskip("yaml")
    from PIL import Image

    ds = _canvases(2, (1, 2), 32)
    root = tmp_path / "yolo"
    for split_name, split in ds.splits.items():
        (root / "images" / split_name).mkdir(parents=True)
        (root / "labels" / split_name).mkdir(parents=True)
        for i, name in enumerate(split.file_names):
            Image.fromarray(split.images[i][..., 0]).save(root / "images" / split_name / name)
            lines = [f"{c} {(b[0] + b[2]) / 64:.6f} {(b[1] + b[3]) / 64:.6f} {(b[2] - b[0]) / 32:.6f} "
                     f"{(b[3] - b[1]) / 32:.6f}" for b, c in zip(split.boxes[i], split.labels[i])]
            (root / "labels" / split_name / (os.path.splitext(name)[0] + ".txt")).write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("names: {" + ", ".join(f"{i}: d{i}" for i in range(10)) + "}\n")
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(root), "--epochs", "1", "--out", str(out), "-q"]) == 0
    m = _metrics(out)
    assert m["task"] == "detection" and m["data_layout"] == "yolo" and set(m["per_class_AP"]) <= {
        f"d{i}" for i in range(10)}
    meta = st.training.load_checkpoint(out / "weights.npz").meta
    assert meta["class_names"] == [f"d{i}" for i in range(10)] and meta["category_ids"] == list(range(10))
