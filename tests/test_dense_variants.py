"""Objects other than digits (scripts/make_objects_anywhere.py): the generator's variants keep their
annotations, its folders are recognised by `--data-dir`, and `striate predict --json` on them is scored
by pycocotools as it is, against a COCO file that numbers its images its own way."""
import importlib.util
import json
import os

import numpy as np
import pytest

pytest.importorskip("PIL")

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.data.detection_folders import detect_layout, load_annotated_folder  # noqa: E402
from test_cli_dense import _test_images  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
SPEC = importlib.util.spec_from_file_location("make_objects_anywhere",
                                              os.path.join(ROOT, "scripts", "make_objects_anywhere.py"))
gen = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gen)

TINY = ["--n-source", "60", "--n-train", "40", "--n-test", "12", "--canvas", "32", "--scale", "0.4", "0.7"]


def _write(root, name, *extra):
    assert gen.main([str(root / name), *TINY, *extra]) == 0
    return root / name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects")
    for name, extra in (("plain", ()), ("inverted", ("--invert",)), ("clutter", ("--clutter", "5")),
                        ("flat", ("--flat",))):
        _write(root, name, *extra)
    return root


def _coco(folder):
    return json.loads((folder / "_annotations.coco.json").read_text())


def test_shapes_are_drawn_white_on_black_with_every_class():
    images, labels = gen.draw_shapes(50, seed=3)
    assert images.shape == (50, 28, 28) and images.dtype == np.uint8
    assert set(labels.tolist()) == set(range(len(gen.SHAPES)))
    assert (images[:, 0, :] < 30).all() and (images.reshape(50, -1).max(axis=1) > 150).all()  # dark border, ink
    # a disk covers more of its box than a ring of the same size: the classes differ in shape, not just size
    disk = [(im > 100).mean() for im, c in zip(images, labels) if gen.SHAPES[c] == "disk"]
    ring = [(im > 100).mean() for im, c in zip(images, labels) if gen.SHAPES[c] == "ring"]
    assert np.mean(disk) > np.mean(ring) * 1.3


def test_the_same_arguments_write_the_same_files(data, tmp_path):
    again = _write(tmp_path, "again")
    first = json.loads((data / "plain" / "manifest.json").read_text())["folders"]
    assert json.loads((again / "manifest.json").read_text())["folders"] == first


def test_variants_change_the_pictures_not_the_annotations(data):
    from PIL import Image

    for split in ("train", "test"):
        plain = _coco(data / "plain" / "detection" / split)
        for variant in ("inverted", "clutter"):
            assert _coco(data / variant / "detection" / split)["annotations"] == plain["annotations"]
    name = _coco(data / "plain" / "detection" / "test")["images"][0]["file_name"]
    read = lambda v: np.asarray(Image.open(data / v / "detection" / "test" / name)).astype(int)  # noqa: E731
    assert (read("inverted") == 255 - read("plain")).all()
    clutter, plain = read("clutter"), read("plain")
    assert (clutter >= plain).all() and (clutter > plain).sum() > 10   # strokes and specks added, ink kept
    masks = [np.asarray(Image.open(data / v / "segmentation" / "test" / "masks" / name)) for v in ("plain", "clutter")]
    assert (masks[0] == masks[1]).all()   # distractors are background in the mask


def test_folders_are_recognised_with_and_without_split_folders(data):
    det, seg = detect_layout(data / "plain" / "detection"), detect_layout(data / "plain" / "segmentation")
    assert (det.task, det.layout, sorted(det.splits)) == ("detection", "coco", ["test", "train"])
    assert (seg.task, seg.layout, sorted(seg.splits)) == ("segmentation", "masks", ["test", "train"])
    flat = detect_layout(data / "flat" / "detection")
    assert (flat.task, flat.layout, flat.splits) == ("detection", "coco", {})
    ds = load_annotated_folder(data / "flat" / "detection")
    assert ds.class_names == list(gen.SHAPES) and len(ds.train) + len(ds.test) + (
        len(ds.val) if ds.val is not None else 0) == 52
    masks = load_annotated_folder(data / "flat" / "segmentation")
    assert masks.task == "segmentation" and masks.mask_class_names == ["background", *gen.SHAPES]


def test_refusals_are_one_line(tmp_path, capsys):
    assert gen.main([str(tmp_path / "big"), *TINY[:-3], "--scale", "3", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scale" in err


def test_predict_json_on_generated_coco_is_scored_by_cocoeval_as_it_is(tmp_path, capsys):
    """A COCO file numbering its images from 0 with gaps, pictures given in another order: COCOeval
    of the --json file agrees with `striate evaluate` of the same model on the same test split."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = _write(tmp_path, "fit", "--n-train", "160", "--objects", "1", "2", "--scale", "0.8", "1.0", "--clutter", "2")
    folder = root / "detection"
    gt_file = folder / "test" / "_annotations.coco.json"
    doc = _coco(folder / "test")
    renumber = {im["id"]: 7 * i for i, im in enumerate(doc["images"])}   # 0, 7, 14, ...
    for im in doc["images"]:
        im["id"] = renumber[im["id"]]
    for a in doc["annotations"]:
        a["image_id"] = renumber[a["image_id"]]
    gt_file.write_text(json.dumps(doc))
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(folder), "--epochs", "8", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "weights.npz"), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    images = _test_images(root, "detection")[::-1]
    out = tmp_path / "det.json"
    assert main(["predict", *images, "--checkpoint", str(run / "weights.npz"), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    by_name = {im["file_name"]: im["id"] for im in doc["images"]}
    assert results and all(r["image_id"] == by_name[r["file_name"]] for r in results)
    gt = COCO(str(gt_file))
    cocoeval = COCOeval(gt, gt.loadRes(str(out)), "bbox")
    cocoeval.evaluate()
    cocoeval.accumulate()
    cocoeval.summarize()
    assert ours["mAP50"] > 0.02  # eight epochs find some shapes: the comparison is not of two zeros
    assert cocoeval.stats[1] == pytest.approx(ours["mAP50"], abs=0.01)
    assert cocoeval.stats[0] == pytest.approx(ours["mAP"], abs=0.01)


def test_pictures_outside_a_coco_file_are_counted(data, tmp_path):
    from striate.training.dense_run import coco_image_ids

    images = _test_images(data / "plain", "detection")
    assert coco_image_ids(images[:3]) == [1, 2, 3]
    lone = tmp_path / "lone.png"
    lone.write_bytes(open(images[0], "rb").read())
    assert coco_image_ids([images[0], str(lone)]) is None   # one picture without an entry: count them all
