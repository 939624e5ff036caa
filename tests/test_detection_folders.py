"""Reading detection and segmentation folders (COCO, YOLO, masks), their checks, and the joint augmentations.

Every folder here is written by the test itself into tmp_path: tiny images with known boxes and masks.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from striate.data import box_transforms as BT
from striate.data.detection_folders import detect_layout, load_annotated_folder

Image = pytest.importorskip("PIL.Image")


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def picture(h=20, w=30, seed=0, rgb=False):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)


# --------------------------------------------------------------------------------- COCO
def write_coco(folder, images, annotations, categories, name="_annotations.coco.json"):
    os.makedirs(folder, exist_ok=True)
    doc = {"images": [], "annotations": annotations, "categories": categories}
    for i, (file_name, array) in enumerate(images, start=1):
        save(os.path.join(folder, file_name), array)
        doc["images"].append({"id": i, "file_name": file_name, "width": array.shape[1], "height": array.shape[0]})
    with open(os.path.join(folder, name), "w") as f:
        json.dump(doc, f)
    return os.path.join(folder, name)


CATS = [{"id": 7, "name": "cat"}, {"id": 3, "name": "ant"}, {"id": 100, "name": "zebra"}]


def coco_split(folder, seed, name="_annotations.coco.json"):
    images = [("a.png", picture(seed=seed)), ("b.png", picture(seed=seed + 1)), ("empty.png", picture(seed=seed + 2))]
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 100, "bbox": [20, 0, 10, 20], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0.5, 0.5, 4.25, 3], "iscrowd": 0}]
    return write_coco(folder, images, anns, CATS, name)


def test_coco_with_split_folders(tmp_path):
    coco_split(tmp_path / "train", 0)
    coco_split(tmp_path / "valid", 10, name="export.json")  # any single COCO *.json
    coco_split(tmp_path / "test", 20)
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.layout, sorted(layout.splits)) == ("detection", "coco", ["test", "train", "val"])
    ds = load_annotated_folder(tmp_path)
    assert ds.class_names == ["ant", "cat", "zebra"] and ds.category_ids == [3, 7, 100]  # by id
    assert sorted(ds.splits) == ["test", "train", "val"]
    tr = ds.train
    assert tr.file_names == ["a.png", "b.png", "empty.png"]
    np.testing.assert_array_equal(tr.images[0][..., 0], picture(seed=0))
    np.testing.assert_allclose(tr.boxes[0], [[1, 2, 11, 7], [20, 0, 30, 20]])
    np.testing.assert_array_equal(tr.labels[0], [1, 2])
    np.testing.assert_array_equal(tr.iscrowd[0], [False, True])  # kept, flagged
    np.testing.assert_allclose(tr.boxes[1], [[0.5, 0.5, 4.75, 3.5]])
    assert tr.boxes[2].shape == (0, 4) and len(tr.labels[2]) == 0  # a negative
    assert len(ds.sha256) == 64
    boxes, labels = tr.targets(0)  # training targets leave the crowd region out
    np.testing.assert_allclose(boxes, [[1, 2, 11, 7]])
    np.testing.assert_array_equal(labels, [1])


def test_coco_umbrella_category_is_not_a_class(tmp_path):
    # an exporter's category 0 that only groups the others, with no box of its own
    cats = [{"id": 0, "name": "animals", "supercategory": "none"}, {"id": 1, "name": "ant", "supercategory": "animals"},
            {"id": 2, "name": "bee", "supercategory": "animals"}, {"id": 3, "name": "cow", "supercategory": "animals"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 4, 4]}]
    write_coco(tmp_path / "train", [("a.png", picture())], anns, cats)
    write_coco(tmp_path / "test", [("b.png", picture())], [], cats)
    ds = load_annotated_folder(tmp_path)
    assert ds.class_names == ["ant", "bee", "cow"] and ds.category_ids == [1, 2, 3]  # cow: a class, unseen yet
    np.testing.assert_array_equal(ds.train.labels[0], [1])


def test_coco_without_split_folders_is_split_here(tmp_path):
    images, anns = [], []
    for i in range(20):
        images.append((f"{i:02d}.png", picture(seed=i)))
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": [3, 7][i % 2], "bbox": [1, 1, 5, 5]})
    write_coco(tmp_path, images, anns, CATS[:2])
    assert detect_layout(tmp_path).splits == {}
    a, b = load_annotated_folder(tmp_path, seed=1), load_annotated_folder(tmp_path, seed=1)
    assert len(a.train) == 16 and len(a.test) == 4
    assert a.test.file_names == b.test.file_names  # deterministic
    assert sorted(np.concatenate(a.test.labels).tolist()) == [0, 0, 1, 1]  # stratified
    assert load_annotated_folder(tmp_path, seed=2).test.file_names != a.test.file_names


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["annotations"][0].update(bbox=[25, 2, 10, 5]), r"annotations\[0\] \(id 1\) on a.png: bbox \[25, 2, 10, 5\] reaches outside the 30x20 image"),
    (lambda d: d["annotations"][2].update(bbox=[1, 1, 0, 3]), r"annotations\[2\] \(id 3\) on b.png: bbox \[1, 1, 0, 3\] is an empty box"),
    (lambda d: d["annotations"][0].update(category_id=5), r"annotations\[0\] \(id 1\): category_id 5 is not among the categories \(ids \[3, 7, 100\]\)"),
    (lambda d: d["annotations"][1].update(image_id=99), r"annotations\[1\] \(id 2\): image_id 99 is not among the file's images"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\] \(id 1\): bbox must be \[x, y, width, height\]"),
    (lambda d: d["images"][0].update(file_name="gone.png"), r"images\[0\] \(file_name 'gone.png'\): the image file .*gone.png does not exist"),
    (lambda d: d["images"][1].update(width=31), r"images\[1\] \(b.png\) says 31x20 \(width x height\) but the file is 30x20"),
    (lambda d: d["categories"].append({"id": 7, "name": "dup"}), r"categories\[3\] repeats the id 7"),
])
def test_coco_broken_entries_give_one_line(tmp_path, edit, message):
    path = coco_split(tmp_path / "train", 0)
    doc = json.load(open(path))
    edit(doc)
    json.dump(doc, open(path, "w"))
    with pytest.raises(ValueError, match=message) as err:
        load_annotated_folder(tmp_path)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


def test_coco_invalid_json_and_missing_keys(tmp_path):
    path = coco_split(tmp_path / "train", 0)
    with open(path, "w") as f:
        f.write('{"images": [}')
    with pytest.raises(ValueError, match=r"_annotations.coco.json: not valid JSON \(line 1, column 13"):
        load_annotated_folder(tmp_path)
    with open(path, "w") as f:
        json.dump({"images": [], "annotations": []}, f)
    with pytest.raises(ValueError, match="needs the keys images, annotations and categories; categories missing"):
        load_annotated_folder(tmp_path)


def test_coco_split_folder_without_coco_file_is_named(tmp_path):
    coco_split(tmp_path / "train", 0)
    os.makedirs(tmp_path / "test")
    with pytest.raises(ValueError, match=r"split folder\(s\) test hold no COCO file"):
        detect_layout(tmp_path)


# --------------------------------------------------------------------------------- YOLO
def write_yolo(root, names_yaml, split_first=False):
    (root / "data.yaml").write_text(names_yaml)
    for split, seed in (("train", 0), ("val", 5)):
        img_dir = root / split / "images" if split_first else root / "images" / split
        lab_dir = root / split / "labels" if split_first else root / "labels" / split
        save(str(img_dir / "p.png"), picture(20, 40, seed, rgb=True))
        save(str(img_dir / "q.png"), picture(20, 40, seed + 1))    # grayscale: made RGB like the rest
        save(str(img_dir / "none.png"), picture(20, 40, seed + 2))  # no label file: a negative
        os.makedirs(lab_dir, exist_ok=True)
        (lab_dir / "p.txt").write_text("1 0.5 0.5 0.25 0.5\n0 0.1 0.2 0.2 0.4\n\n")
        (lab_dir / "q.txt").write_text("2 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n")  # a polygon


@pytest.mark.parametrize("names_yaml,split_first", [
    ("names: [cat, dog, bird]\nnc: 3\n", False),
    ("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: bird\n", False),  # Ultralytics
    ("names: ['cat', 'dog', 'bird']\n", True),  # Roboflow's train/images, valid/images
])
def test_yolo(tmp_path, names_yaml, split_first):
    write_yolo(tmp_path, names_yaml, split_first)
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.layout) == ("detection", "yolo") and sorted(layout.splits) == ["train", "val"]
    ds = load_annotated_folder(tmp_path)
    assert ds.class_names == ["cat", "dog", "bird"] and ds.category_ids == [0, 1, 2]
    tr = ds.train
    assert tr.file_names == ["none.png", "p.png", "q.png"]
    assert tr.images.shape == (3, 20, 40, 3)
    np.testing.assert_array_equal(tr.images[2], np.repeat(picture(20, 40, 1)[..., None], 3, -1))
    assert tr.boxes[0].shape == (0, 4)
    np.testing.assert_allclose(tr.boxes[1], [[15, 5, 25, 15], [0, 0, 8, 8]], atol=1e-5)
    np.testing.assert_array_equal(tr.labels[1], [1, 0])
    np.testing.assert_allclose(tr.boxes[2], [[4, 2, 20, 12]], atol=1e-5)
    assert ds.test is ds.val  # val serves as test when there is no test split


@pytest.mark.parametrize("line,message", [
    ("3 0.5 0.5 0.1 0.1", r"p.txt: line 1: class 3 is not one of the 3 classes of data.yaml \(0..2\)"),
    ("0 0.5 0.5 0.1", r"p.txt: line 1: expected 'class cx cy w h'"),
    ("0 0.5 x 0.1 0.1", r"p.txt: line 1: expected 'class cx cy w h' \(numbers\)"),
    ("0 0.9 0.5 0.4 0.2", r"p.txt: line 1: the box reaches outside the 40x20 image"),
    ("0 0.5 0.5 0 0.2", r"p.txt: line 1: the box is an empty box"),
])
def test_yolo_broken_lines(tmp_path, line, message):
    write_yolo(tmp_path, "names: [cat, dog, bird]\n")
    (tmp_path / "labels" / "train" / "p.txt").write_text(line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load_annotated_folder(tmp_path)
    assert "\n" not in str(err.value)


def test_yolo_paths_from_data_yaml_and_without_splits(tmp_path):
    # Roboflow writes train: ../train/images beside data.yaml; the folders are train/, valid/
    write_yolo(tmp_path, "train: ../train/images\nval: ../valid/images\nnames: [cat, dog, bird]\n", split_first=True)
    os.rename(tmp_path / "val", tmp_path / "valid")
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnames: [cat, dog, bird]\n")
    layout = detect_layout(tmp_path)
    assert layout.splits == {"train": str(tmp_path / "train" / "images"), "val": str(tmp_path / "valid" / "images")}
    assert len(load_annotated_folder(tmp_path).test) == 3
    # one images/ and labels/ pair, no splits: split here
    flat = tmp_path / "flat"
    (flat / "labels").mkdir(parents=True)
    (flat / "data.yaml").write_text("names: [a, b]\n")
    for i in range(10):
        save(str(flat / "images" / f"{i}.png"), picture(seed=i))
        (flat / "labels" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.2 0.2\n")
    ds = load_annotated_folder(flat)
    assert (len(ds.train), len(ds.test)) == (8, 2) and detect_layout(flat).splits == {}


def test_yolo_bad_names(tmp_path):
    write_yolo(tmp_path, "names:\n  0: cat\n  2: bird\n")
    with pytest.raises(ValueError, match=r"data.yaml: names must cover the class indices 0..1 without gaps"):
        load_annotated_folder(tmp_path)
    (tmp_path / "data.yaml").write_text("nc: 3\n")
    with pytest.raises(ValueError, match="data.yaml: needs 'names'"):
        load_annotated_folder(tmp_path)


# -------------------------------------------------------------------------------- masks
def write_masks(root, n=4, h=12, w=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        save(str(root / "images" / f"im{i}.png"), picture(h, w, seed + i))
        m = rng.integers(0, classes, (h, w)).astype(np.uint8)
        m[0, 0] = 255
        save(str(root / "masks" / f"im{i}.png"), m)


def test_masks_with_splits_and_classes_txt(tmp_path):
    write_masks(tmp_path / "train", seed=0)
    write_masks(tmp_path / "val", n=2, seed=10)
    (tmp_path / "classes.txt").write_text("background\nroad\ncar\n")
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.layout) == ("segmentation", "masks")
    ds = load_annotated_folder(tmp_path)
    assert ds.class_names == ["background", "road", "car"] and ds.task == "segmentation"
    rng = np.random.default_rng(0)
    want = rng.integers(0, 3, (12, 16)).astype(np.uint8)
    want[0, 0] = 255
    np.testing.assert_array_equal(ds.train.masks[0], want)
    assert ds.train.masks.shape == (4, 12, 16) and ds.train.images.shape == (4, 12, 16, 1)
    assert len(ds.test) == 2


def test_images_beside_masks_is_segmentation_never_two_classes(tmp_path):
    write_masks(tmp_path, n=10, classes=4)
    layout = detect_layout(tmp_path)
    assert (layout.task, layout.layout, layout.splits) == ("segmentation", "masks", {})
    ds = load_annotated_folder(tmp_path)
    assert ds.class_names == ["0", "1", "2", "3"]  # no classes.txt: the mask values seen
    assert len(ds.train) == 8 and len(ds.test) == 2


def test_classification_folder_stays_classification(tmp_path):
    for cls in ("cats", "dogs"):
        save(str(tmp_path / cls / "x.png"), picture())
    assert detect_layout(tmp_path).task == "classification"
    with pytest.raises(ValueError, match="no detection or segmentation data found"):
        load_annotated_folder(tmp_path)


@pytest.mark.parametrize("break_it,message", [
    (lambda r: save(str(r / "masks" / "im1.png"), np.zeros((12, 15), np.uint8)),
     r"masks/im1.png: the mask is 15x12 but its image im1.png is 16x12"),
    (lambda r: save(str(r / "masks" / "im2.png"), np.zeros((12, 16, 3), np.uint8)),
     r"masks/im2.png: a mask must be a single-channel PNG of class indices; this one is RGB"),
    (lambda r: save(str(r / "masks" / "im0.png"), np.full((12, 16), 7, np.uint8)),
     r"masks/im0.png: pixel value 7 is not a class index \(classes.txt names 3 classes"),
    (lambda r: os.remove(r / "masks" / "im3.png"), r"images/im3.png: no mask masks/im3.png for this image"),
    (lambda r: os.remove(r / "images" / "im3.png"), r"masks/im3.png: no image images/im3.\* for this mask"),
])
def test_broken_masks_give_one_line(tmp_path, break_it, message):
    root = tmp_path / "train"
    write_masks(root)
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    break_it(root)
    with pytest.raises(ValueError, match=message) as err:
        load_annotated_folder(tmp_path)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------ augmentations
def drawn(h=40, w=50):
    """An image with two filled rectangles, their boxes and a mask of their classes (1, 2)."""
    boxes = np.array([[5.0, 6.0, 17.0, 20.0], [30.0, 10.0, 46.0, 33.0]])
    image = np.zeros((h, w, 1), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for k, b in enumerate(boxes.astype(int)):
        image[b[1]:b[3], b[0]:b[2]] = 255
        mask[b[1]:b[3], b[0]:b[2]] = k + 1
    return image, {"boxes": boxes, "labels": np.array([0, 1]), "mask": mask}


def pixel_box(region):
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def check_covers(image, target, tol=0.0):
    """Each box is the tight box of its class in the mask (to ``tol`` pixels), the mask's pixels are
    drawn pixels of the image, and the image's full-ink pixels lie in the boxes.

    Exact for flips and crops (tol 0); a resized image is blended at the rectangles' edges (a corner
    pixel takes at least a quarter of the ink), its nearest-neighbour mask is off by up to half a pixel.
    """
    ink = image[..., 0]
    in_any_box = np.zeros(ink.shape, bool)
    for box, label in zip(target["boxes"], target["labels"]):
        region = target["mask"] == label + 1
        np.testing.assert_allclose(pixel_box(region), box, atol=tol)
        assert (ink[region] >= (255 if tol == 0 else 64)).all()
        b0, b1 = np.floor(box[:2] - tol).astype(int), np.ceil(box[2:] + tol).astype(int)
        in_any_box[max(b0[1], 0):b1[1], max(b0[0], 0):b1[0]] = True
    assert not (ink >= 128)[~in_any_box].any()


def test_hflip_moves_boxes_and_mask_with_the_image():
    image, target = drawn()
    im, t = BT.hflip(image, target)
    np.testing.assert_array_equal(t["boxes"], [[33, 6, 45, 20], [4, 10, 20, 33]])
    check_covers(im, t)
    np.testing.assert_array_equal(im, image[:, ::-1])
    assert np.array_equal(target["boxes"], drawn()[1]["boxes"])  # input untouched


@pytest.mark.parametrize("top,left,h,w", [(3, 2, 30, 40), (-5, -7, 40, 50), (10, 20, 25, 30), (0, 0, 40, 50)])
def test_crop_and_translate(top, left, h, w):
    image, target = drawn()
    im, t = BT.crop(image, target, top, left, h, w, min_visible=0.0)
    assert im.shape == (h, w, 1) and t["mask"].shape == (h, w)
    check_covers(im, t)
    # the mask is the same window of the original (255 past the edges)
    padded = np.pad(target["mask"], 60, constant_values=255)
    np.testing.assert_array_equal(t["mask"], padded[60 + top:60 + top + h, 60 + left:60 + left + w])


def test_crop_drops_boxes_mostly_out_of_view():
    image, target = drawn()
    _, t = BT.crop(image, target, 0, 0, 40, 33, min_visible=0.3)  # 3 of 16 columns of box 1 stay
    np.testing.assert_array_equal(t["labels"], [0])
    _, t = BT.crop(image, target, 0, 0, 40, 33, min_visible=0.1)
    np.testing.assert_array_equal(t["labels"], [0, 1])
    np.testing.assert_array_equal(t["boxes"][1], [30, 10, 33, 33])


@pytest.mark.parametrize("factor", [0.5, 0.75, 1.3, 2.0])
def test_rescale(factor):
    image, target = drawn()
    im, t = BT.rescale(image, target, factor)
    assert im.shape[:2] == (round(40 * factor), round(50 * factor)) == t["mask"].shape
    oh, ow = t["mask"].shape
    np.testing.assert_allclose(t["boxes"], target["boxes"] * [ow / 50, oh / 40, ow / 50, oh / 40])
    # nearest-neighbour masks cover the scaled box to within half a pixel
    check_covers(im, t, tol=0.5)


def test_random_joint_transforms_are_seeded_and_consistent():
    image, target = drawn()
    tf = BT.JointCompose([BT.RandomScale((0.8, 1.25)), BT.RandomTranslate(4, min_visible=0.0),
                          BT.RandomHorizontalFlip(0.5)])
    outs = [tf(image, target, rng=s) for s in (0, 0, 1, 2, 3, 4)]
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    assert not all(np.array_equal(outs[0][0], o[0]) for o in outs[2:])
    for im, t in outs:
        assert im.shape == image.shape and t["mask"].shape == image.shape[:2]
        check_covers(im, t, tol=0.5 * 1.25 + 1e-6)
    with pytest.raises(ValueError, match="larger than the image"):
        BT.RandomCrop(60)(image, target, 0)
