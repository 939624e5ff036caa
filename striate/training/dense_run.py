"""Runs of the "where" tasks: train a localiser, detector or segmenter from an annotated data set into
a run folder, evaluate it, and predict boxes or masks for new pictures.

What ``striate train``, ``evaluate`` and ``predict`` do for localisation, detection and segmentation
lives here; the commands only parse their options and call :func:`train_dense`,
:func:`evaluate_dense` and :func:`predict_dense`.

The data are an :class:`~striate.data.annotated.AnnotatedDataset` (a canvas set of
:mod:`striate.data.canvas`, or a COCO, YOLO or mask folder read by
:func:`~striate.data.detection_folders.load_annotated_folder`). Every image is brought to the model's
one input size (the data's own size when all images share it and it is a multiple of 8, else the
median size rounded to a multiple of 8): boxes scale with it, masks by nearest neighbour, and
predictions are scaled back to the input picture's pixels.

Example::

    >>> ds = st.data.load_dataset("digits_anywhere")
    >>> config = dense_config("detection", epochs=2)
    >>> with RunDir("runs/det").open(run_id="a"):
    ...     metrics = train_dense(ds, config, RunDir("runs/det"), run_id="a")
    >>> metrics["mAP50"]
"""
from __future__ import annotations

import time

import numpy as np

from ..data.annotated import TASKS

__all__ = ["DENSE_RECIPES", "RECIPE_REASONS", "TASK_OF_MODEL", "dense_config", "load_dense_data", "task_of",
           "AnnotatedLoader", "train_dense", "evaluate_dense", "predict_dense", "detections_to_coco",
           "coco_image_ids"]

# The default settings of each task. Each line says why; `striate train --help` shows RECIPE_REASONS.
DENSE_RECIPES = {
    "localisation": dict(
        model="localizer",     # one object per image: a CNN with a class head and a box-regression head
        epochs=40,             # measured on digits_localisation: mean IoU 0.837 after 20, 0.849 after 30, 0.864
                               # after 40 epochs (4.7 min), class accuracy 96.6%, 98.0%, 98.3%
        batch_size=32,
        optimizer="adam",      # the box head's regression trains faster and steadier with Adam than SGD
        lr=2e-3,
        momentum=0.9,
        weight_decay=0.0,
        schedule="cosine",     # ends at a low rate: the last epochs tighten the boxes
        warmup=0,
        augment="translate",   # shifts move the object (and its box) to places the data rarely put it
        crop_padding=4,        # largest shift, in pixels
        val_split=0.05,
        box_weight=10.0,       # the box term outweighs the class term once the digit is recognised
        box_beta=0.005,        # smooth L1 turns linear at 0.3 px (of 56): sub-pixel errors still pull
    ),
    "detection": dict(
        model="centernet",     # heatmap centres: no anchors to tune to the objects' sizes
        epochs=22,             # measured on digits_anywhere: mAP 67.8% after 7 epochs, 79.2% after 22 (6.6 min)
        batch_size=32,
        optimizer="adam",      # the focal loss's large early gradients on the heatmap suit Adam
        lr=2e-3,
        momentum=0.9,
        weight_decay=0.0,
        schedule="cosine",
        warmup=1,              # one gentle epoch: the focal loss starts large on all-background maps
        augment="translate",   # shifts keep objects anywhere, boxes move with them; no flip (text, digits)
        crop_padding=4,
        val_split=0.05,
    ),
    "segmentation": dict(
        model="fcn",           # FCN with bilinear-initialised upsampling: 4x faster per epoch than the U-Net
        epochs=15,             # measured on digits_anywhere: mIoU 78.6% after 6 epochs, 86.1% after 15 (6.8 min)
        batch_size=32,
        optimizer="adam",
        lr=3e-3,
        momentum=0.9,
        weight_decay=0.0,
        schedule="cosine",
        warmup=0,
        augment="translate",   # masks shift with the image; pixels shifted in are ignored (255)
        crop_padding=4,
        val_split=0.05,
    ),
}

# one line per setting, shown by `striate train --help`
RECIPE_REASONS = {
    "localisation": {
        "model": "localizer: a class head and a box head on the flattened map, which knows where features are",
        "epochs": "the box IoU still improves to the end: 0.84 after 20 epochs, 0.86 after 40",
        "batch_size": "32: ~180 steps per epoch of 6,000 canvases",
        "lr": "Adam 2e-3: the box regression converges faster than with SGD at equal epochs",
        "augment": "translate: the object moves, its box with it; no flips (digits and text are not symmetric)",
    },
    "detection": {
        "model": "centernet: heatmap centres at stride 4, no anchor sizes to fit to the objects",
        "epochs": "the heatmap peaks sharpen slowly; mAP at IoU 0.75+ keeps rising to the end",
        "batch_size": "32: ~180 steps per epoch of 6,000 canvases",
        "lr": "Adam 2e-3 after one warm-up epoch: the focal loss starts large on all-background maps",
        "augment": "translate: objects anywhere, boxes move with them; no flips (digits and text)",
    },
    "segmentation": {
        "model": "fcn: per-pixel classes with bilinear-initialised upsampling, ~4x faster per epoch than unet",
        "epochs": "fits the time budget of a CPU run; mIoU gains flatten in the last epochs",
        "batch_size": "32: ~180 steps per epoch of 6,000 canvases",
        "lr": "Adam 3e-3: the cross-entropy of 4,096 pixels per image gives smooth gradients",
        "augment": "translate: the mask shifts with the image, pixels shifted in are ignored (255)",
    },
}

AUGMENTATIONS = ("none", "translate", "flip", "scale")
TASK_OF_MODEL = {"localizer": "localisation", "centernet": "detection", "fcn": "segmentation",
                 "unet": "segmentation"}


def dense_config(task: str, **overrides) -> dict:
    """The recipe of ``task`` with ``overrides`` (and ``seed`` 0, no data named) as a run config."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}. Received: task={task!r}.")
    config = dict(DENSE_RECIPES[task], task=task, dataset=None, data_dir=None, seed=0)
    config.update(overrides)
    return config


def task_of(ds, model: str | None = None, task: str | None = None) -> str:
    """The task to train on ``ds``: ``task`` if given, else the model's, else the data's. A ValueError
    when the data cannot serve it (segmentation without masks, localisation with several boxes)."""
    chosen = task or TASK_OF_MODEL.get(model or "") or ds.task
    if chosen not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}. Received: {chosen!r}.")
    if model in TASK_OF_MODEL and TASK_OF_MODEL[model] != chosen:
        raise ValueError(f"--model {model} is a {TASK_OF_MODEL[model]} model; for {chosen} choose "
                         f"{' or '.join(m for m, t in TASK_OF_MODEL.items() if t == chosen)}.")
    if chosen == "segmentation" and ds.train.masks is None:
        raise ValueError(f"{ds.name} has no masks to learn segmentation from; it holds {ds.task} data.")
    if chosen in ("localisation", "detection") and ds.train.boxes is None:
        raise ValueError(f"{ds.name} has no boxes to learn {chosen} from; it holds masks: use --task segmentation.")
    if chosen == "localisation":
        for split in ds.splits.values():
            split.one_box_per_image()   # a ValueError naming an image with none or several
    return chosen


def load_dense_data(dataset, data_dir=None):
    """A canvas set by name (``data_dir``: where its source digits are) or a COCO, YOLO or mask folder."""
    from ..data import load_dataset
    from ..data.canvas import CANVAS_SETS
    from ..data.detection_folders import load_annotated_folder

    if dataset in CANVAS_SETS:
        return load_dataset(dataset, data_dir=data_dir)
    return load_annotated_folder(data_dir)


# ------------------------------------------------------------------------------------------- data
def model_size(ds) -> tuple:
    """``(height, width, channels)`` every image is brought to (see the module docstring)."""
    shapes = []
    for split in ds.splits.values():
        images = split.images
        shapes += [images.shape[1:]] * len(images) if isinstance(images, np.ndarray) else [im.shape for im in images]
    hs, ws, cs = (np.array([s[i] for s in shapes]) for i in range(3))
    if len(set(zip(hs, ws))) == 1 and hs[0] % 8 == 0 and ws[0] % 8 == 0:
        return int(hs[0]), int(ws[0]), int(cs[0])
    side = lambda v: max(32, int(round(float(np.median(v)) / 8)) * 8)  # noqa: E731
    return side(hs), side(ws), int(cs.max())


def _resize_one(image, target: dict, size) -> tuple:
    """An image ``(h, w, c)`` and its target brought to ``size = (H, W)``: bilinear image, scaled
    boxes, nearest-neighbour mask."""
    from ..data.transforms import resize_images

    h, w = image.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        return image, target
    out = dict(target)
    image = resize_images(image[None], (H, W))[0]
    if target.get("boxes") is not None:
        out["boxes"] = np.asarray(target["boxes"], np.float64) * np.array([W / w, H / h, W / w, H / h])
    if target.get("mask") is not None:
        out["mask"] = resize_mask(target["mask"], (H, W))
    return image, out


def resize_mask(mask, size) -> np.ndarray:
    """Nearest-neighbour resize of an ``(h, w)`` mask to ``size = (H, W)`` (class indices are never blended)."""
    mask = np.asarray(mask)
    (h, w), (H, W) = mask.shape, size
    rows = np.minimum((np.arange(H) + 0.5) * h / H, h - 1).astype(int)
    cols = np.minimum((np.arange(W) + 0.5) * w / W, w - 1).astype(int)
    return mask[rows][:, cols]


def prepare_split(split, size, task: str) -> dict:
    """One split at the model's size: ``images`` ``(N, H, W, C)`` uint8 and per image its ``targets``
    (``{"boxes", "labels", "iscrowd"}`` or ``{"mask"}``)."""
    H, W, C = size
    images, targets = [], []
    for i in range(len(split)):
        image = np.asarray(split.images[i])
        if image.shape[-1] != C:  # a gray picture among colour ones
            image = np.repeat(image[..., :1], C, axis=-1)
        if task == "segmentation":
            target = {"mask": np.asarray(split.masks[i])}
        else:
            target = {"boxes": split.boxes[i], "labels": split.labels[i], "iscrowd": split.iscrowd[i]}
        image, target = _resize_one(image, target, (H, W))
        images.append(image)
        targets.append(target)
    return {"images": np.stack(images).astype(np.uint8), "targets": targets, "file_names": list(split.file_names)}


def _augmenter(config: dict):
    from ..data import box_transforms as B

    names = [a for a in str(config["augment"]).split(",") if a and a != "none"]
    steps = []
    if "scale" in names:
        steps.append(B.RandomScale((0.85, 1.15)))
    if "translate" in names:
        steps.append(B.RandomTranslate(int(config["crop_padding"])))
    if "flip" in names:
        steps.append(B.RandomHorizontalFlip(0.5))
    return B.JointCompose(steps) if steps else None


class AnnotatedLoader:
    """Batches ``(x, targets)`` of a prepared split for :func:`~striate.training.fit` with a task.

    ``x`` is float32 ``(n, H, W, C)``, standardised with ``mean`` and ``std`` (per channel, of pixels
    scaled to [0, 1]); ``targets`` is a list of ``{"boxes", "classes"}`` (crowd boxes left out) or an
    ``(n, H, W)`` int64 mask array. ``augment`` (a joint transform) moves boxes and masks with the
    image; the loader's generator is saved in checkpoints so a resumed run draws the same.
    """

    def __init__(self, data: dict, task: str, batch_size: int, mean, std, shuffle: bool = False, augment=None,
                 rng=None):
        from ..random import check_random_state

        self.data, self.task, self.batch_size = data, task, int(batch_size)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.shuffle, self.augment = shuffle, augment
        self.rng = check_random_state(rng)

    def __len__(self):
        return -(-len(self.data["images"]) // self.batch_size)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def __iter__(self):
        n = len(self.data["images"])
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            images, targets = [], []
            for i in idx:
                image, target = self.data["images"][i], self.data["targets"][i]
                if self.augment is not None:
                    image, target = self.augment(image, target, self.rng)
                images.append(image)
                targets.append(target)
            x = (np.stack(images).astype(np.float32) / 255.0 - self.mean) / self.std
            yield x, self.batch_targets(targets)

    def batch_targets(self, targets):
        if self.task == "segmentation":
            return np.stack([t["mask"] for t in targets]).astype(np.int64)
        out = []
        for t in targets:
            keep = ~np.asarray(t.get("iscrowd", np.zeros(len(t["boxes"]), bool)), bool)
            out.append({"boxes": np.asarray(t["boxes"], np.float64).reshape(-1, 4)[keep],
                        "classes": np.asarray(t["labels"], np.int64)[keep]})
        return out


def _validation_part(data: dict, fraction: float, seed: int):
    """``(train, val)`` with ``fraction`` of the images held out (seeded); val None for 0."""
    n = len(data["images"])
    k = int(round(fraction * n))
    if k == 0 or n - k < 1:
        return data, None
    order = np.random.default_rng(seed).permutation(n)
    pick = lambda idx: {"images": data["images"][idx], "targets": [data["targets"][i] for i in idx],  # noqa: E731
                        "file_names": [data["file_names"][i] for i in idx]}
    return pick(np.sort(order[k:])), pick(np.sort(order[:k]))


# ------------------------------------------------------------------------------------------- model
def num_outputs(ds, task: str) -> int:
    """Classes of the model's head: mask values (background included) for segmentation."""
    return len(ds.mask_class_names) if task == "segmentation" else ds.num_classes


def make_task(task: str, num_classes: int, size, config: dict | None = None):
    """The task object (loss, decoding) of a run; ``config`` may set the localisation loss's
    ``box_weight`` and ``box_beta``."""
    from . import tasks

    config = config or {}
    if task == "localisation":
        return tasks.Localization(image_size=size[:2], box_weight=config.get("box_weight", 5.0),
                                  beta=config.get("box_beta", 0.02))
    if task == "detection":
        return tasks.CenterNetDetection(num_classes=num_classes)
    return tasks.Segmentation()


def _outputs(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    from ..tensor import Tensor, no_grad

    model.eval()
    out = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            out.append(np.asarray(model(Tensor(x[start:start + batch_size])).data))
    return np.concatenate(out)


def decode(task_obj, task: str, outputs: np.ndarray):
    if task == "detection":
        # a low threshold keeps the low-scoring detections that average precision still counts
        return task_obj.decode(outputs, score_threshold=0.05, max_detections=100)
    return task_obj.decode(outputs)


def run_meta(config: dict, ds, task: str, size, mean, std, model_args: dict, run_id: str) -> dict:
    """What the weights and checkpoints of a run record: model, task, data and classes, preprocessing."""
    from .. import __version__

    return {
        "model": {"name": config["model"], "args": model_args}, "task": task,
        "dataset": config["dataset"], "data_dir": config["data_dir"], "data_sha256": ds.sha256,
        "data_layout": ds.layout, "run_id": run_id,
        "class_names": list(ds.class_names), "category_ids": list(ds.category_ids),
        "mask_class_names": None if ds.mask_class_names is None else list(ds.mask_class_names),
        "input_shape": list(size),
        "preprocess": {"scale": 1 / 255, "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
                       "eps": 0.0},
        "config": config, "striate_version": __version__,
    }


# ------------------------------------------------------------------------------------------- train
def train_dense(ds, config: dict, run_dir, run_id: str, resume=None, verbose: int = 1, started=None,
                announce=None) -> dict:
    """Train ``config["model"]`` for ``config["task"]`` on ``ds`` into the open ``run_dir``.

    Writes checkpoint.npz every epoch (so ``resume``, a loaded checkpoint, continues the run exactly),
    log.csv, weights.npz and metrics.json (the test figures of :func:`evaluate_dense`, the data set's
    name, folder and SHA-256, the settings and the time). ``announce(text)`` receives a one-line
    description of the run before training starts.

    Returns:
        The metrics written to metrics.json.
    """
    from .. import models, random
    from ..optim import build_optimizer, build_schedule
    from .callbacks import CSVLogger, ModelCheckpoint
    from .checkpoint import save_weights
    from .loop import fit

    started = time.perf_counter() if started is None else started
    task = config["task"]
    random.manual_seed(config["seed"])
    size = model_size(ds)
    train_all = prepare_split(ds.train, size, task)
    if ds.val is not None:
        train, val = train_all, prepare_split(ds.val, size, task)
    else:
        train, val = _validation_part(train_all, config["val_split"], config["seed"])
    pixels = train["images"].reshape(-1, size[2]).astype(np.float64) / 255.0
    mean, std = pixels.mean(axis=0), np.maximum(pixels.std(axis=0), 1e-3)
    k = num_outputs(ds, task)
    model_args = {"num_classes": k, "input_shape": list(size)}
    if resume is not None:
        saved = (resume.meta.get("model") or {}).get("args")
        if saved is not None and dict(saved) != model_args:
            raise ValueError(f"the data of this run no longer fit the checkpoint {resume.path}: the model was built "
                             f"for {saved}, the data give {model_args}.")
        if resume.meta.get("data_sha256") and resume.meta["data_sha256"] != ds.sha256:
            raise ValueError(f"the data changed since the run in {resume.path} started (SHA-256 "
                             f"{resume.meta['data_sha256'][:12]}... then, {ds.sha256[:12]}... now); start a new run.")
        mean = np.asarray(resume.meta["preprocess"]["mean"])
        std = np.asarray(resume.meta["preprocess"]["std"])
    try:
        model = models.get(config["model"], **model_args, rng=config["seed"])
    except TypeError as e:
        raise ValueError(" ".join(str(e).split())) from None
    task_obj = make_task(task, k, size, config)
    opt = build_optimizer(config["optimizer"], model.parameters(), config["lr"], config["momentum"],
                          config["weight_decay"])
    schedule = build_schedule(config["schedule"], opt, config["epochs"], config["warmup"], config.get("replan"))
    if resume is not None and config.get("replan") and resume.state.get("schedule") is not None:
        resume.state["schedule"] = schedule.state_dict()
    loader = AnnotatedLoader(train, task, config["batch_size"], mean, std, shuffle=True, augment=_augmenter(config),
                             rng=config["seed"] + 1)
    val_loader = None if val is None else AnnotatedLoader(val, task, 64, mean, std)
    meta = run_meta(config, ds, task, size, mean, std, model_args, run_id)
    callbacks = [ModelCheckpoint(run_dir.checkpoint, meta=meta), CSVLogger(run_dir.log)]
    if announce is not None:
        announce(f"training {config['model']} ({model.num_parameters():,} parameters) for {task} on {ds.name}: "
                 f"{len(train['images'])} train / {0 if val is None else len(val['images'])} val / {len(ds.test)} "
                 f"test images at {size[0]}x{size[1]}, {config['epochs']} epochs, {config['optimizer']} lr "
                 f"{config['lr']:g}, batch {config['batch_size']}, {config['schedule']} schedule, augment "
                 f"{config['augment']}")
    history = fit(model, loader, val_loader, epochs=config["epochs"], optimizer=opt, loss=task_obj,
                  schedule=schedule, callbacks=callbacks, verbose=verbose, resume=resume)
    train_seconds = time.perf_counter() - started
    save_weights(run_dir.weights, model, meta=meta)
    figures = evaluate_dense(model, meta, ds)
    h = history.history
    metrics = dict(figures)
    metrics.update({
        "task": task, "epochs": len(history.epoch), "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2), "model": config["model"], "dataset": config["dataset"],
        "data_dir": config["data_dir"], "data_name": ds.name, "data_layout": ds.layout, "data_sha256": ds.sha256,
        "params": model.num_parameters(), "final_train_loss": h["loss"][-1] if h.get("loss") else None,
        "final_val_loss": h["val_loss"][-1] if h.get("val_loss") else None, "config": config, "processes": 1,
    })
    run_dir.write_metrics(metrics)
    return metrics


# ---------------------------------------------------------------------------------------- evaluate
def evaluate_dense(model, meta: dict, ds, split: str = "test", batch_size: int = 64) -> dict:
    """The test figures of a run on ``ds[split]``, named as in metrics.json.

    * detection: ``mAP50``, ``mAP`` (COCO's mean over IoU 0.5:0.95), ``mAP75``, ``per_class_AP`` and
      ``per_class_AP50`` (by class name; :func:`striate.detection.mean_average_precision`);
    * segmentation: ``mIoU`` (classes present, background included), ``pixel_accuracy``,
      ``per_class_IoU`` (by mask class name; ignored pixels counted nowhere);
    * localisation: ``class_accuracy``, ``mean_iou``, ``localisation_accuracy`` (class right and IoU
      >= 0.5) and ``per_class_accuracy``.
    """
    from ..detection import (localisation_scores, mean_average_precision, segmentation_confusion_matrix,
                             segmentation_scores)

    task = meta["task"]
    size = tuple(meta["input_shape"])
    data = prepare_split(ds.splits[split], size, task)
    pre = meta["preprocess"]
    x = (data["images"].astype(np.float32) / 255.0 - np.asarray(pre["mean"], np.float32)) / np.asarray(
        pre["std"], np.float32)
    outputs = _outputs(model, x, batch_size)
    names = meta["class_names"]
    task_obj = make_task(task, len(meta["mask_class_names"]) if task == "segmentation" else len(names), size)
    preds = decode(task_obj, task, outputs)
    n = len(data["images"])
    if task == "segmentation":
        mask_names = meta["mask_class_names"]
        truth = np.stack([t["mask"] for t in data["targets"]])
        cm = segmentation_confusion_matrix(truth, preds, len(mask_names))
        s = segmentation_scores(cm)
        return {"mIoU": s["mIoU"], "pixel_accuracy": s["pixel_accuracy"],
                "per_class_IoU": {c: (None if np.isnan(v) else v) for c, v in zip(mask_names, s["per_class_iou"])},
                "num_images": n, "confusion_matrix": cm.tolist()}
    if task == "detection":
        gts = [{"boxes": t["boxes"], "labels": t["labels"], "iscrowd": t["iscrowd"]} for t in data["targets"]]
        dets = [{"boxes": p["boxes"], "scores": p["scores"], "labels": p["classes"]} for p in preds]
        m = mean_average_precision(dets, gts)
        return {"mAP50": m["mAP50"], "mAP": m["mAP"], "mAP75": m["mAP75"],
                "per_class_AP": {names[c]: v for c, v in sorted(m["per_class"].items())},
                "per_class_AP50": {names[c]: v for c, v in sorted(m["per_class_AP50"].items())},
                "num_images": n, "num_boxes": int(sum(len(t["boxes"]) for t in data["targets"]))}
    true_boxes = np.stack([np.asarray(t["boxes"], np.float64).reshape(-1, 4)[0] for t in data["targets"]])
    true_labels = np.array([int(t["labels"][0]) for t in data["targets"]])
    pred_boxes = np.concatenate([p["boxes"] for p in preds])
    pred_labels = np.concatenate([p["classes"] for p in preds])
    s = localisation_scores(pred_boxes, pred_labels, true_boxes, true_labels)
    per_class = {c: (float(np.mean(pred_labels[true_labels == i] == i)) if np.any(true_labels == i) else None)
                 for i, c in enumerate(names)}
    return {"class_accuracy": s["accuracy"], "mean_iou": s["mean_iou"], "localisation_accuracy": s["correct"],
            "per_class_accuracy": per_class, "num_images": n}


# ----------------------------------------------------------------------------------------- predict
def predict_dense(model, meta: dict, images: list) -> list:
    """Boxes or masks for pictures of any size, in their own pixels.

    Args:
        images: uint8 ``(h, w, c)`` arrays with the model's channels.

    Returns:
        Per image ``{"boxes": (k, 4) xyxy, "scores": (k,), "classes": (k,)}`` (localisation: one box;
        detection: the boxes above a score of 0.05, best first) or an ``(h, w)`` int mask of class
        indices (segmentation).
    """
    task = meta["task"]
    H, W, C = meta["input_shape"]
    pre = meta["preprocess"]
    x = []
    for image in images:
        if image.shape[-1] != C:
            raise ValueError(f"the model takes {C}-channel pictures. Received: {image.shape[-1]} channels.")
        x.append(_resize_one(image, {}, (H, W))[0])
    x = (np.stack(x).astype(np.float32) / 255.0 - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"],
                                                                                                    np.float32)
    k = len(meta["mask_class_names"]) if task == "segmentation" else len(meta["class_names"])
    preds = decode(make_task(task, k, (H, W)), task, _outputs(model, x))
    out = []
    for image, p in zip(images, preds):
        h, w = image.shape[:2]
        if task == "segmentation":
            out.append(resize_mask(np.asarray(p, np.int64), (h, w)))
            continue
        boxes = np.asarray(p["boxes"], np.float64) * np.array([w / W, h / H, w / W, h / H])
        out.append({"boxes": boxes, "scores": np.asarray(p["scores"], np.float64),
                    "classes": np.asarray(p["classes"], np.int64)})
    return out


def detections_to_coco(predictions: list, file_names: list, category_ids, image_ids=None) -> list:
    """COCO results (``loadRes``'s format): per box ``image_id``, ``file_name``, ``category_id`` (the data
    set's own id of the class), ``bbox`` ``[x, y, w, h]`` in the picture's pixels and ``score``.
    ``image_ids`` default to 1, 2, ... in the order of the pictures."""
    image_ids = list(range(1, len(predictions) + 1)) if image_ids is None else list(image_ids)
    results = []
    for image_id, name, p in zip(image_ids, file_names, predictions):
        for (x0, y0, x1, y1), s, c in zip(p["boxes"], p["scores"], p["classes"]):
            results.append({"image_id": int(image_id), "file_name": name, "category_id": int(category_ids[int(c)]),
                            "bbox": [round(float(x0), 3), round(float(y0), 3), round(float(x1 - x0), 3),
                                     round(float(y1 - y0), 3)], "score": round(float(s), 5)})
    return results


def coco_image_ids(paths) -> list | None:
    """The ids that the COCO files beside the pictures give them, or None unless every picture has one.

    A picture's COCO file is the one its folder holds (``_annotations.coco.json``, else the folder's
    only ``*.json`` with images, annotations and categories), where an entry's ``file_name`` names that
    picture. COCO evaluation matches results to the ground truth by ``image_id``, and data sets number
    their images as they like (from 0, from 1, or with gaps), so results scored against such a file
    must carry its ids, not the pictures' order.
    """
    import json
    import os

    from ..data.detection_folders import _coco_file

    by_folder, ids = {}, []
    for path in paths:
        full = os.path.normpath(os.path.abspath(path))
        folder = os.path.dirname(full)
        if folder not in by_folder:
            by_folder[folder] = {}
            try:
                coco = _coco_file(folder)
                with open(coco, encoding="utf-8") as f:
                    images = json.load(f)["images"] if coco else []
                for im in images:
                    name = os.path.normpath(os.path.join(folder, str(im["file_name"])))
                    by_folder[folder][name] = im["id"]
            except (OSError, ValueError, TypeError, KeyError):
                pass   # no readable COCO file there: the pictures are counted instead
        if full not in by_folder[folder]:
            return None
        ids.append(by_folder[folder][full])
    whole = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    return ids if whole and len(set(ids)) == len(ids) else None
