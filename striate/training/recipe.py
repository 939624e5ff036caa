"""The pieces of a training run described by a recipe ``config`` (the settings ``striate train``
resolves: model, epochs, batch_size, optimizer, lr, momentum, weight_decay, schedule, warmup, augment,
crop_padding, val_split, dataset, data_dir, seed): its transforms, the plan of a continued run, and
what its files record. ``striate train`` and any command that trains with a recipe build them here.

Errors are one-line ValueErrors worded with the command's option names (``--crop-padding``, ...).
"""
from __future__ import annotations

import time

import numpy as np


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
