"""Which model the page serves: a weights file given by the user, or a default trained in seconds.

A weights or checkpoint file written by ``striate train`` describes its model in ``meta``
(``model``: registry name and arguments; ``input_shape``; ``class_names``; ``preprocess``: the
standardisation), so :func:`load_served_model` rebuilds it without being told the architecture.

Without a file, :func:`default_served_model` trains ``digits_cnn`` on the 8x8 digits embedded in
scikit-learn (a few seconds on a laptop CPU) and caches the weights in
``<cache>/serve/digits_cnn.npz`` (``$STRIATE_CACHE``, else ``~/.cache/striate``, as the data
downloads), in the same format, so later starts load it at once and ``striate predict`` can use it.
"""
from __future__ import annotations

import os
import time

from .dense import DENSE_TASKS, ServedDense
from .inference import ServedModel

# Training recipe of the default model: the embedded digits recipe of `striate train`, shortened.
DEFAULT_EPOCHS = 12        # test accuracy ~98% by epoch 10-12 of cosine decay; each epoch < 1 s on 2 cores
DEFAULT_SEED = 0


class ModelFileError(ValueError):
    """A weights file that cannot be served (missing, corrupt, or not describing its model)."""


def default_model_path() -> str:
    """Where the default model's weights are cached: ``<cache>/serve/digits_cnn.npz``."""
    from ..data.download import default_cache_dir

    return os.path.join(default_cache_dir(), "serve", "digits_cnn.npz")


def _served(model, meta: dict, name: str, source: str, no_shape: str) -> ServedModel:
    """The :class:`ServedModel` of a rebuilt model and its file's description (class names,
    standardisation, input shape); ``no_shape`` is the message for a model without one image input."""
    shape = meta.get("input_shape") or getattr(model, "input_shape", None)
    if not shape or len(shape) != 3:
        raise ModelFileError(no_shape)
    pre = meta.get("preprocess") if isinstance(meta.get("preprocess"), dict) else {}
    return ServedModel(model, tuple(shape), class_names=meta.get("class_names"),
                       mean=pre.get("mean"), std=pre.get("std"), eps=pre.get("eps", 1e-7), name=name, source=source)


def served_from_checkpoint(ckpt, source: str):
    """A :class:`ServedModel` from a loaded :class:`~striate.training.Checkpoint` written by striate
    (``train``, ``finetune`` or ``import``), or a :class:`~striate.serve.dense.ServedDense` when the
    run learnt localisation, detection or segmentation (``meta["task"]``)."""
    from ..training.model_file import model_from_checkpoint

    meta = ckpt.meta or {}
    try:
        model = model_from_checkpoint(ckpt)
    except ValueError as e:
        raise ModelFileError(" ".join(str(e).split())) from None
    if meta.get("task") in DENSE_TASKS:   # localisation, detection, segmentation: boxes or a mask, not classes
        try:
            return ServedDense(model, meta, source=source)
        except ValueError as e:
            raise ModelFileError(f"{ckpt.path}: {' '.join(str(e).split())}") from None
    return _served(model, meta, meta["model"].get("name", "imported graph"), source,
                   f"{ckpt.path} does not record the model's input shape (meta['input_shape']).")


def served_from_onnx(path) -> ServedModel:
    """A :class:`ServedModel` of an ONNX file, read as every command reads one
    (:func:`striate.training.load_model`: the input shape from the graph; class names and
    standardisation when ``st.onnx.export`` stored them)."""
    from ..training.model_file import load_model

    try:
        model, meta = load_model(path, allow_onnx=True)
    except ImportError as e:
        raise ModelFileError(str(e)) from None   # require()'s line: what needs onnx and how to install it
    except (FileNotFoundError, ValueError) as e:
        raise ModelFileError(" ".join(str(e).split())) from None
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return _served(model, meta, name, f"imported from ONNX {path}",
                   f"{path}: the ONNX graph's input is not one image (height, width, channels) of a fixed size "
                   f"(input shape {model.input_shape}); striate serve needs a spatial input.")


def load_served_model(path):
    """Serve the model in a weights or checkpoint file written by ``striate train`` (or ``striate
    import``), or an ONNX file (``.onnx``, imported with :func:`striate.onnx.load`): a
    :class:`ServedModel` for a classifier, a :class:`~striate.serve.dense.ServedDense` for a
    localisation, detection or segmentation run.

    Raises:
        ModelFileError: no such file, not a striate or ONNX file, or weights that do not fit.
    """
    from ..training import CheckpointError, load_checkpoint

    if os.fspath(path).lower().endswith(".onnx"):
        return served_from_onnx(path)
    if os.path.isdir(path):   # a run folder: its final weights, else its last checkpoint
        found = [os.path.join(path, n) for n in ("weights.npz", "checkpoint.npz")
                 if os.path.isfile(os.path.join(path, n))]
        if not found:
            raise ModelFileError(f"{path} is a folder without weights.npz or checkpoint.npz; give a run folder "
                                 "written by striate train, or the weights file itself.")
        path = found[0]

    try:
        ckpt = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise ModelFileError(str(e)) from None
    return served_from_checkpoint(ckpt, f"weights from {path}")


def train_default_model(path: str, epochs: int = DEFAULT_EPOCHS, seed: int = DEFAULT_SEED) -> dict:
    """Train ``digits_cnn`` on the embedded digits and save it to ``path`` (atomically).

    Returns ``{"test_accuracy", "seconds", "epochs"}``.
    """
    from .. import models, optim, random
    from ..data import DataLoader, load_dataset
    from ..data.transforms import Standardize
    from ..training import evaluate, fit, save_weights

    started = time.perf_counter()
    random.manual_seed(seed)
    ds = load_dataset("digits")
    standardize = Standardize().fit(ds.x_train)
    args = {"num_classes": ds.num_classes, "input_shape": list(ds.input_shape)}
    model = models.get("digits_cnn", rng=seed, **args)
    # the recipe of `striate train` for the digits (see striate/training/recipe.py, RECIPES["digits"])
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    schedule = optim.CosineAnnealingLR(opt, t_max=epochs)
    train = DataLoader(ds.x_train, ds.y_train, batch_size=32, shuffle=True, transform=standardize, rng=seed + 1)
    fit(model, train, epochs=epochs, optimizer=opt, schedule=schedule, verbose=0)
    test = DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=standardize)
    accuracy = float(evaluate(model, test, details=False)["accuracy"])
    seconds = time.perf_counter() - started
    meta = {"model": {"name": "digits_cnn", "args": args}, "dataset": "digits",
            "class_names": list(ds.class_names), "input_shape": list(ds.input_shape),
            "preprocess": {"scale": 1 / 255, "mean": standardize.mean.tolist(), "std": standardize.std.tolist(),
                           "eps": standardize.eps},
            "trained_by": "striate serve", "epochs": int(epochs), "test_accuracy": accuracy,
            "seconds": round(seconds, 2)}
    save_weights(path, model, meta=meta)
    return {"test_accuracy": accuracy, "seconds": seconds, "epochs": int(epochs)}


def default_served_model(path: str | None = None, retrain: bool = False, say=print) -> ServedModel:
    """The default model: cached weights at ``path`` (:func:`default_model_path`), trained first if absent.

    ``say`` receives one line saying what happened (trained now, or loaded from the cache).
    """
    from ..training import CheckpointError, load_checkpoint

    path = path or default_model_path()
    if os.path.exists(path) and not retrain:
        try:
            ckpt = load_checkpoint(path)
            served = served_from_checkpoint(ckpt, f"default model, cached at {path}")
            acc = ckpt.meta.get("test_accuracy")
            say(f"no --checkpoint given: serving the default digits_cnn cached at {path}"
                + (f" (test accuracy {100 * acc:.1f}% on the embedded digits)" if isinstance(acc, float) else ""))
            return served
        except (CheckpointError, ModelFileError) as e:
            say(f"the cached default model at {path} cannot be used ({e}); training it again")
    say("no --checkpoint given and no default model cached: training digits_cnn on the embedded 8x8 digits "
        f"({DEFAULT_EPOCHS} epochs, a few seconds) ...")
    result = train_default_model(path)
    say(f"trained in {result['seconds']:.1f} s, test accuracy {100 * result['test_accuracy']:.1f}%; "
        f"cached at {path} (delete it or use --retrain to train again)")
    return served_from_checkpoint(load_checkpoint(path), f"default model, trained now, cached at {path}")
