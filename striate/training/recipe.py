"""A run's recipe: the per-data-set defaults (:data:`RECIPES`), the settings resolved from them and a
user's overrides (:func:`resolve_config`), and the pieces a run builds from its settings: the model, the
data, the transforms, the plan of a continued run, and what its files record. ``striate train`` and
:func:`striate.training.train_run` resolve their settings here, and so does every command that trains
with a recipe (``striate tune``, ``striate lr-find``).

A setting's name is the option's of ``striate train`` with ``_`` (``batch_size`` for ``--batch-size``).
Errors are one-line ValueErrors worded with the command's option names (``--crop-padding``, ...).

Example::

    >>> config = resolve_config({"dataset": "digits", "epochs": 5})
    >>> config["model"], config["epochs"], config["lr"]
    ('digits_cnn', 5, 0.05)
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

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
        model="fashion_cnn",   # 32-64-128 batch-norm CNN, dropout 0.3: LeNet-5 under-fits clothes (89.9% in 15
                               # epochs), and so did 24-48-96 with dropout 0.4 (91.8% test, 93.1% on its own
                               # training images, training loss still falling at epoch 15)
        epochs=24,             # more than digits: textures and fine shapes keep improving; 92.9% in 7 min on 2 cores
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

AUGMENTATIONS = ("none", "crop", "flip", "pca")

SEED_MAX = 2**32 - 1  # NumPy's seeds are non-negative and this one is stored as a uint32 in places

# settings that the recipe (or a resumed run's saved configuration) fills in when left out
TUNABLE = ("model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup",
           "augment", "crop_padding", "val_split")
# settings a resumed run cannot change: the weights, the optimiser state and the data would not fit
FIXED_ON_RESUME = ("dataset", "model", "optimizer")
# every setting a user may give: the tunable ones and the data and seed (None: left out)
SETTINGS = ("dataset", "data_dir", "verify", "seed") + TUNABLE
# the type of each numeric setting, checked before its range
_NUMBERS = {"epochs": int, "batch_size": int, "warmup": int, "crop_padding": int, "seed": int,
            "lr": float, "momentum": float, "weight_decay": float, "val_split": float}


def _one_line(e) -> str:
    return " ".join(str(e).split())


def recipe_for(dataset: str) -> dict:
    """The recipe of a named data set (any spelling), or the image-folder recipe for a path.

    Its ``models`` entry (if any) maps a model name to the settings that change when that model is
    chosen instead of the recipe's own (e.g. a lower rate for a net without batch norm)."""
    from ..data.datasets import canonical_name

    return dict(RECIPES.get(canonical_name(dataset) or "", RECIPES["folder"]))


def match_choice(value: str, choices, option: str) -> str:
    """The entry of ``choices`` that ``value`` means, ignoring case, ``-`` and ``_``; else a ValueError
    naming the option, with the closest choice ("did you mean").

    Example: ``match_choice("LeNet-5", models.list_models(), "--model")`` -> ``"lenet5"``.
    """
    from ..names import did_you_mean, match

    choices = list(choices)
    found = match(value, choices)
    if found is not None:
        return found
    raise ValueError(f"unknown {option} {value!r}.{did_you_mean(value, choices)} Choose from: {', '.join(choices)}. "
                     f"Received: {value!r}.")


def resolve_model(name: str) -> str:
    """A model name of the zoo, matched forgivingly (``ResNet-20`` -> ``resnet20``), or a layer list
    (``"conv 8 5 relu, pool 2, dense 10"``, see :func:`striate.nn.parse_layers`) checked and tidied."""
    from .. import models
    from ..nn import is_layer_list, parse_layers

    if is_layer_list(name):
        try:
            return parse_layers(name).layer_list
        except ValueError as e:
            raise ValueError(f"--model {_one_line(e)}") from None
    return match_choice(name, models.list_models(), "--model")


def dataset_key(dataset: str) -> str:
    """The one spelling of a data set: the canonical name of a known one (``Fashion-MNIST`` ->
    ``fashion_mnist``), the absolute path of an image folder; else a ValueError."""
    from ..data.datasets import DATASETS, canonical_name
    from ..names import did_you_mean

    canonical = canonical_name(dataset)
    if canonical is not None:
        return canonical
    if os.path.isdir(dataset):
        return os.path.abspath(dataset)  # an image folder: evaluate may run from another directory
    if os.path.exists(dataset):
        raise ValueError(f"--dataset {dataset!r} is a file; give a data set name ({', '.join(DATASETS)}) or a "
                         "folder with one sub-folder of images per class.")
    hint = did_you_mean(dataset, DATASETS)
    raise ValueError(f"unknown --dataset {dataset!r}: not a known name and not a folder.{hint} Known names: "
                     f"{', '.join(DATASETS)}; or give a folder with one sub-folder of images per class.")


def dataset_from_files(data_dir: str) -> str:
    """The data set a ``--data-dir`` given without ``--dataset`` holds (recognised by its files), or a
    ValueError saying what to add."""
    from ..data.datasets import identify_files

    if not os.path.isdir(data_dir):
        raise ValueError(f"--data-dir {data_dir!r} is not a folder.")
    name, layout = identify_files(data_dir)
    if name is not None:
        return name
    if layout == "idx":
        raise ValueError(f"--data-dir {data_dir!r} holds MNIST-layout IDX files that are neither MNIST's nor "
                         "Fashion-MNIST's (by SHA-256): say what they are with --dataset mnist or "
                         "--dataset fashion_mnist, and --no-verify for a copy of your own.")
    raise ValueError(f"--data-dir {data_dir!r} was given without --dataset and holds no files of a known data set "
                     "(train-images-idx3-ubyte.gz, ..., cifar-10-python.tar.gz): add --dataset NAME, or "
                     "--dataset DIR for a folder of images.")


def check_seed(seed) -> int:
    """``seed`` as an int in 0 .. :data:`SEED_MAX` (None: 0); else a ValueError."""
    if seed is None:
        return 0
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"--seed must be an integer in 0 .. {SEED_MAX}. Received: {seed}.")
    return int(seed)


# ------------------------------------------------------------------------------------ the settings
def _check_types(given: dict) -> None:
    """Each given setting of the type its option takes (a file or a Python caller may give anything)."""
    for key, value in given.items():
        kind = _NUMBERS.get(key)
        option = "--" + key.replace("_", "-")
        if key == "verify":
            ok, what = isinstance(value, (bool, np.bool_)), "true or false"
        elif kind is int:
            ok, what = isinstance(value, (int, np.integer)) and not isinstance(value, bool), "an integer"
        elif kind is float:
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            what = "a number"
        elif key == "augment" and isinstance(value, (list, tuple)):
            ok, what = all(isinstance(v, str) for v in value), "text"
        else:
            ok, what = isinstance(value, (str, os.PathLike)), "text"
        if not ok:
            raise TypeError(f"{option} must be {what}. Received: {key}={value!r}.")


def resolve_config(settings: dict | None = None, resume=None) -> dict:
    """A run's settings: the given ``settings`` > the resumed run's saved settings > the data set's recipe.

    Args:
        settings: setting name -> value (:data:`SETTINGS`: ``dataset``, ``data_dir``, ``verify``, ``seed``,
            ``model``, ``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``momentum``, ``weight_decay``,
            ``schedule``, ``warmup``, ``augment``, ``crop_padding``, ``val_split``); None or left out: the
            recipe's value. Names are matched forgivingly (``ResNet-20``, ``Fashion-MNIST``).
        resume: the :class:`~striate.training.Checkpoint` of a run being continued (its data set, model and
            optimizer stay; its other settings are the defaults).

    Returns:
        The full settings (a new dict), checked: what a run's files record as ``config``.

    Example::

        >>> resolve_config({"dataset": "mnist", "model": "LeNet-5"})["lr"]   # the recipe's rate for a LeNet
        0.02
    """
    ckpt = resume
    settings = dict(settings or {})
    unknown = [k for k in settings if k not in SETTINGS]
    if unknown:
        from ..names import did_you_mean
        raise ValueError(f"unknown setting {unknown[0]!r}.{did_you_mean(unknown[0], SETTINGS)} The settings are: "
                         f"{', '.join(SETTINGS)}.")
    settings = {k: v for k, v in settings.items() if v is not None}
    _check_types(settings)
    saved = dict((ckpt.meta.get("config") or {}) if ckpt is not None else {})
    given = {k: settings[k] for k in TUNABLE if k in settings}
    if isinstance(given.get("augment"), (list, tuple)):
        given["augment"] = ",".join(given["augment"])
    if "model" in given:
        given["model"] = resolve_model(given["model"])
    if "optimizer" in given:
        from ..optim.build import OPTIMIZERS
        given["optimizer"] = match_choice(given["optimizer"], OPTIMIZERS, "--optimizer")
    if "schedule" in given:
        from ..optim.build import SCHEDULES
        given["schedule"] = match_choice(given["schedule"], SCHEDULES, "--schedule")
    data_dir = os.path.abspath(settings["data_dir"]) if "data_dir" in settings else None
    if "dataset" in settings:
        dataset = dataset_key(os.fspath(settings["dataset"]))
    elif ckpt is not None and saved.get("dataset"):
        dataset = saved["dataset"]
    elif data_dir is not None:
        dataset = dataset_from_files(data_dir)  # a folder of MNIST files must not train the digits
    else:
        dataset = "digits"
    if ckpt is not None:
        mine = dict(given, dataset=dataset)
        for key in FIXED_ON_RESUME:
            if key in saved and key in mine and mine[key] != saved[key]:
                option = "--" + key.replace("_", "-")
                raise ValueError(f"{option} {mine[key]} differs from the run being resumed ({saved[key]}, in "
                                 f"{ckpt.path}); a run continues with its own {key}. Drop {option}, or start a "
                                 "new run without --resume.")
        if data_dir is None:
            data_dir = saved.get("data_dir")
    config = recipe_for(dataset)
    per_model = config.pop("models", {})
    config.update({k: v for k, v in saved.items() if k in TUNABLE})
    config.update(given)
    chosen = config["model"] = resolve_model(config["model"])
    for k, v in per_model.get(chosen, {}).items():  # e.g. --model lenet5 on MNIST: its own rate
        if k not in given and k not in saved:
            config[k] = v
    if "warmup" not in given and "warmup" not in saved and config["warmup"] >= config["epochs"]:
        config["warmup"] = config["epochs"] - 1  # the recipe's warm-up shortened for a short run (not an error)
    config["dataset"] = dataset
    config["data_dir"] = data_dir
    if "verify" in settings:
        config["verify"] = bool(settings["verify"])
    else:
        config["verify"] = True if ckpt is None else saved.get("verify", True)
    config["seed"] = check_seed(settings["seed"]) if "seed" in settings else int(saved.get("seed", 0))
    if ckpt is not None and saved.get("replan"):
        config["replan"] = saved["replan"]
    validate_config(config)
    return config


def validate_config(c: dict) -> None:
    """Check a run's settings (ranges, combinations) and tidy its ``augment`` list and ``model`` name, in
    place; a one-line ValueError names the first setting that is wrong."""
    def need(ok, message):
        if not ok:
            raise ValueError(message)

    need(c["epochs"] >= 1, f"--epochs must be a positive integer. Received: {c['epochs']}.")
    need(c["batch_size"] >= 1, f"--batch-size must be a positive integer. Received: {c['batch_size']}.")
    need(math.isfinite(c["lr"]) and c["lr"] > 0, f"--lr must be a positive number. Received: {c['lr']}.")
    need(0 <= c["momentum"] < 1, f"--momentum must lie in [0, 1). Received: {c['momentum']}.")
    need(math.isfinite(c["weight_decay"]) and c["weight_decay"] >= 0,
         f"--weight-decay must be >= 0. Received: {c['weight_decay']}.")
    need(0 <= c["val_split"] < 1, f"--val-split must lie in [0, 1). Received: {c['val_split']}.")
    need(c["warmup"] >= 0, f"--warmup must be >= 0 epochs. Received: {c['warmup']}.")
    need(c["warmup"] == 0 or c["warmup"] < c["epochs"],
         f"--warmup must be shorter than the run (--epochs {c['epochs']}), or the rate never leaves the warm-up. "
         f"Received: --warmup {c['warmup']}.")
    need(c["crop_padding"] >= 0, f"--crop-padding must be >= 0 pixels. Received: {c['crop_padding']}.")
    need(c["schedule"] != "plateau" or c["val_split"] > 0, "--schedule plateau watches val_loss: give --val-split > 0.")
    need(c["schedule"] != "plateau" or c["warmup"] == 0, "--warmup does not combine with --schedule plateau; use "
                                                           "--warmup 0.")
    augs = [a.strip() for a in str(c["augment"]).split(",") if a.strip()]
    augs = [match_choice(a, AUGMENTATIONS, "--augment") for a in augs]
    c["augment"] = ",".join(a for a in augs if a != "none") or "none"
    c["model"] = resolve_model(c["model"])


# ------------------------------------------------------------------------------------ the pieces
def load_data(dataset: str, data_dir=None, verify: bool = True, test_only: bool = False):
    """:func:`striate.data.load_dataset` with its errors as one-line ValueErrors worded with the options
    (``--data-dir``, ``--no-verify``): a missing folder, files that are not the published ones, every
    download mirror failing."""
    from ..data import load_dataset
    from ..data.download import DownloadError

    if data_dir is not None and not os.path.isdir(data_dir):
        raise ValueError(f"--data-dir {data_dir!r} is not a folder.")
    try:
        return load_dataset(dataset, data_dir=data_dir, verify=verify, test_only=test_only)
    except (ValueError, FileNotFoundError, TypeError, ImportError) as e:
        raise ValueError(_one_line(e).replace("verify=False (striate: --no-verify)", "--no-verify")) from None
    except MemoryError:
        raise ValueError(f"not enough memory to load {dataset!r}.") from None
    except DownloadError as e:  # every mirror failed: each reason once, and the option that avoids the network
        reasons = sorted(set(e.failures.values()))
        why = (f"{len(e.failures)} mirrors: {reasons[0]}" if len(reasons) == 1 and len(e.failures) > 1
               else "; ".join(f"{url}: {r}" for url, r in e.failures.items()))
        raise ValueError(f"could not download {os.path.basename(e.path)} of {dataset!r} ({why}). Download the data "
                         "set's files by hand into a folder and pass it with --data-dir.") from None
    except OSError as e:  # a failed download
        raise ValueError(f"could not load {dataset!r}: {_one_line(e)}") from None


def build_model(name: str, model_args: dict, rng=None):
    """A zoo model (``st.models.get(name, **model_args)``) or a layer list built for the data
    (``model_args["input_shape"]``), its output checked against ``model_args["num_classes"]``;
    one-line ValueErrors."""
    from .. import models
    from ..nn import is_layer_list, parse_layers
    from ..tensor import Tensor, no_grad

    if not is_layer_list(name):
        try:
            return models.get(name, **model_args, **({} if rng is None else {"rng": rng}))
        except (ValueError, TypeError) as e:
            raise ValueError(_one_line(e)) from None
    shape = tuple(model_args.get("input_shape") or ())
    try:
        model = parse_layers(name, input_shape=shape or None, rng=rng)
    except ValueError as e:
        raise ValueError(f"--model {_one_line(e)}") from None
    if shape and model_args.get("num_classes") is not None:
        model.eval()
        with no_grad():
            out = model(Tensor(np.zeros((1,) + shape, np.float32))).shape
        model.train()
        if out != (1, model_args["num_classes"]):
            k = model_args["num_classes"]
            raise ValueError(f"--model: the layer list gives {'x'.join(map(str, out[1:]))} outputs per image, but "
                             f"the data have {k} classes; end it with 'dense {k}'.")
    return model


@dataclass
class RunPieces:
    """What :func:`build_run` makes from a run's settings: the model, the optimiser, the training and
    validation batches, the evaluation transform (standardisation) and the model's build arguments."""
    model: object
    optimizer: object
    train: object
    val: object
    eval_transform: object
    model_args: dict
    counts: tuple   # images: (train, val, test)


def build_run(config: dict, ds, resume=None) -> RunPieces:
    """The model, optimiser and batches that ``config`` describes for the data set ``ds``, seeded by
    ``config["seed"]`` (the same settings give the same pieces): the split held out for validation, the
    recipe's augmentation, the model built for the data, the optimiser on its parameters.

    Args:
        config: the settings of :func:`resolve_config`.
        ds: the loaded data set (:func:`load_data`).
        resume: the checkpoint of a continued run: its model must have been built for the same data.

    Example::

        >>> pieces = build_run(resolve_config({"dataset": "digits"}), load_data("digits"))
        >>> pieces.train.batch_size, pieces.counts
        (32, (1408, 29, 360))
    """
    from .. import random
    from ..data import DataLoader, validation_split
    from ..optim import build_optimizer

    random.manual_seed(config["seed"])
    x_tr, y_tr, x_val, y_val = validation_split(ds, config["val_split"], config["seed"])
    train_t, eval_t = build_transforms(config, x_tr, ds.input_shape)
    model_args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
    saved = ((resume.meta.get("model") or {}).get("args")) if resume is not None else None
    if saved is not None and dict(saved) != model_args:
        raise ValueError(f"the data of this run no longer fit the checkpoint {resume.path}: the model was "
                         f"built for {saved}, the data give {model_args}.")
    model = build_model(config["model"], model_args, rng=config["seed"])
    opt = build_optimizer(config["optimizer"], model.parameters(), config["lr"], config["momentum"],
                          config["weight_decay"])
    train = DataLoader(x_tr, y_tr, batch_size=config["batch_size"], shuffle=True, transform=train_t,
                       rng=config["seed"] + 1)
    val = None if x_val is None else DataLoader(x_val, y_val, batch_size=256, shuffle=False, transform=eval_t)
    counts = (len(y_tr), 0 if y_val is None else len(y_val), len(ds.y_test))
    return RunPieces(model, opt, train, val, eval_t, model_args, counts)


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
