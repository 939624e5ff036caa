"""The settings of a ``striate train`` run from its options: explicit options > the resumed run's saved
settings > the data set's recipe; checked up front with one-line errors. Shared by the commands that
train with a recipe."""
from __future__ import annotations

import argparse
import math
import os

from ..optim.build import OPTIMIZERS, SCHEDULES
from .common import (AUGMENTATIONS, check_seed, dataset_from_files, dataset_key, match_name, one_line, recipe_for,
                     resolve_model)
from .main import CommandError

# options that the recipe (or a resumed run's saved configuration) fills in when left out
TUNABLE = ("model", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup",
           "augment", "crop_padding", "val_split")


# settings a resumed run cannot change: the weights, the optimiser state and the data would not fit
FIXED_ON_RESUME = ("dataset", "model", "optimizer")


def load_resume(path):
    from ..training import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise CommandError(one_line(e)) from None
    if ckpt.kind != "checkpoint":
        raise CommandError(f"{path} is a weights file; --resume needs the checkpoint.npz of a run.")
    return ckpt


def resolve_config(args, ckpt=None) -> dict:
    """The run's settings: explicit options > the resumed run's saved settings > the data set's recipe."""
    saved = dict((ckpt.meta.get("config") or {}) if ckpt is not None else {})
    given = {k: getattr(args, k) for k in TUNABLE if getattr(args, k) is not None}
    if "model" in given:
        given["model"] = resolve_model(given["model"])
    if "optimizer" in given:
        given["optimizer"] = match_name(given["optimizer"], OPTIMIZERS, "--optimizer")
    if "schedule" in given:
        given["schedule"] = match_name(given["schedule"], SCHEDULES, "--schedule")
    data_dir = os.path.abspath(args.data_dir) if args.data_dir is not None else None
    if args.dataset is not None:
        dataset = dataset_key(args.dataset)
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
                raise CommandError(f"{option} {mine[key]} differs from the run being resumed ({saved[key]}, in "
                                   f"{args.resume}); a run continues with its own {key}. Drop {option}, or start a "
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
    config["verify"] = not args.no_verify if (args.no_verify or ckpt is None) else saved.get("verify", True)
    config["seed"] = check_seed(args.seed) if args.seed is not None else int(saved.get("seed", 0))
    if ckpt is not None and saved.get("replan"):
        config["replan"] = saved["replan"]
    validate_config(config)
    return config


def validate_config(c: dict) -> None:
    def need(ok, message):
        if not ok:
            raise CommandError(message)

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
    augs = [match_name(a, AUGMENTATIONS, "--augment") for a in augs]
    c["augment"] = ",".join(a for a in augs if a != "none") or "none"
    c["model"] = resolve_model(c["model"])


# ------------------------------------------------------------------------------------- --config FILE
CONFIG_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}
# options a file may not set: the file itself
NOT_IN_CONFIG = ("config", "command", "help")


def read_config_file(path) -> dict:
    """The table of a ``--config`` file: TOML (``.toml``, read with tomllib) or YAML (``.yaml``/``.yml``,
    PyYAML), one mapping of option names to values."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in CONFIG_FORMATS:
        raise CommandError(f"--config {path}: unknown file type {ext or '(none)'!r}; give a .toml, .yaml or .yml "
                           "file.")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CommandError(f"--config {path}: {e.strerror or one_line(e)}.") from None
    try:
        if ext == ".toml":
            import tomllib
            table = tomllib.loads(raw.decode("utf-8"))
        else:
            from ..optional import require
            yaml = require("yaml", "cli", "reading a YAML --config file")
            table = yaml.safe_load(raw.decode("utf-8"))
    except ImportError as e:
        raise CommandError(one_line(e)) from None
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError: the parser's words
        raise CommandError(f"--config {path} is not valid {CONFIG_FORMATS[ext]}: {one_line(e)}") from None
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise CommandError(f"--config {path} must hold a table of option = value. Received: a "
                           f"{type(table).__name__}.")
    return table


def _option_value(path, key: str, value, action):
    """A file's value for one option, typed as the option's own parser types it on the command line."""
    option = action.option_strings[-1] if action.option_strings else "--" + key
    where = f"--config {path}: {key}"
    if action.nargs == 0:  # a flag: --overwrite, -q
        if not isinstance(value, bool):
            raise CommandError(f"{where} is a flag ({option}); give true or false. Received: {value!r}.")
        return value
    if action.nargs is None and isinstance(action, argparse._AppendAction):  # --search, given once or more
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise CommandError(f"{where} takes text or a list of text, like {option}. Received: {value!r}.")
        return list(values)
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)) and key != "augment":
        raise CommandError(f"{where} takes a value like {option} does. Received: {value!r}.")
    if isinstance(value, list):  # augment = ["crop", "flip"]
        value = ",".join(str(v) for v in value)
    kind = action.type or str
    if kind is int and not isinstance(value, int):
        raise CommandError(f"{where} must be an integer. Received: {value!r}.")
    if kind is float and not isinstance(value, (int, float)):
        raise CommandError(f"{where} must be a number. Received: {value!r}.")
    return kind(value)


def apply_config_file(args, parser, path=None) -> dict:
    """Fill the options left out on the command line from ``--config FILE`` (typed options win).

    Keys are the command's option names, with ``-`` or ``_`` (``batch-size`` or ``batch_size``); an
    unknown key is refused with the nearest option name. Returns the table as applied (dest -> value).
    """
    from ..names import did_you_mean

    path = path if path is not None else getattr(args, "config", None)
    if path is None:
        return {}
    table = read_config_file(path)
    actions = {a.dest: a for a in parser._actions if a.dest not in NOT_IN_CONFIG and a.option_strings}
    applied = {}
    for key, value in table.items():
        dest = str(key).strip().lstrip("-").replace("-", "_")
        if dest not in actions:
            names = [d.replace("_", "-") for d in actions]
            raise CommandError(f"--config {path}: unknown option {key!r}.{did_you_mean(key, names)} The file's "
                               f"keys are the options of striate {getattr(args, 'command', 'train')} "
                               "(see --help).")
        if dest in applied:
            raise CommandError(f"--config {path}: option {key!r} is given twice.")
        applied[dest] = _option_value(path, key, value, actions[dest])
    for dest, value in applied.items():
        typed = getattr(args, dest, None)
        if typed is None or typed is False:  # left out on the command line
            setattr(args, dest, value)
    return applied


def write_config_file(path, settings: dict) -> None:
    """Write ``settings`` (option dest -> value) as a TOML file that ``--config`` reads, atomically."""
    import json

    from ..atomic import atomic_write_text

    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value) if isinstance(value, int) else repr(float(value))
        else:
            text = json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's
        lines.append(f"{key.replace('_', '-')} = {text}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def add_data_model_options(p) -> None:
    """The data, model and optimisation options of ``striate train`` (shared with ``striate tune``)."""
    data = p.add_argument_group("data")
    data.add_argument("--dataset", metavar="NAME|DIR",
                      help="digits (default, offline), mnist, fashion_mnist, cifar10, or an image folder; "
                           "digits_anywhere, digits_localisation (offline), mnist_anywhere, mnist_localisation, "
                           "or a COCO, YOLO or mask folder for localisation, detection, segmentation")
    data.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (no download); "
                      "without --dataset the files say which data set it is")
    data.add_argument("--task", metavar="TASK", help="localisation, detection or segmentation (default: what the "
                      "data hold; segmentation needs masks)")
    data.add_argument("--no-verify", action="store_true", help="accept --data-dir files that are not the "
                      "published ones (SHA-256), e.g. your own re-packaged copy")
    data.add_argument("--val-split", type=float, metavar="F", help="fraction of the training set held out for "
                      "validation, in [0, 1) (recipe: 0.05-0.1)")
    data.add_argument("--augment", metavar="LIST", help=f"comma-separated: {', '.join(AUGMENTATIONS)} "
                      "(crop = padded random crop, flip = horizontal mirror, pca = AlexNet colour lighting); "
                      "for boxes and masks: none, translate, flip, scale (they move with the image)")
    data.add_argument("--crop-padding", type=int, metavar="PX", help="padding of the random crop, in pixels "
                      "(for boxes and masks: the largest translation)")
    model = p.add_argument_group("model and optimisation")
    model.add_argument("--model", metavar="NAME", help="architecture (striate models lists them), or a layer list "
                       "such as \"conv 8 5 relu, pool 2, conv 16 5 relu, pool 2, dense 10\"")
    model.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    model.add_argument("--batch-size", type=int, metavar="N", help="images per step")
    model.add_argument("--optimizer", metavar="NAME", help="sgd (momentum, Nesterov), adam or adamw")
    model.add_argument("--lr", type=float, metavar="RATE", help="initial learning rate")
    model.add_argument("--momentum", type=float, metavar="MU", help="SGD momentum in [0, 1)")
    model.add_argument("--weight-decay", type=float, metavar="L2", help="L2 weight decay (decoupled for adamw)")
    model.add_argument("--schedule", metavar="NAME",
                       help="learning-rate schedule: cosine annealing, /10 at 50%% and 75%% of the epochs, "
                            "/10 on a val_loss plateau, or constant")
    model.add_argument("--warmup", type=int, metavar="N", help="epochs of linear learning-rate warm-up")


# ------------------------------------------------------------------- localisation, detection, segmentation
def dense_request(args, ckpt=None):
    """Whether ``striate train`` is asked for localisation, detection or segmentation: ``(task or None,
    dataset, data_dir)`` when it is (the task None until the data say), else None (classification).

    It is when the run being resumed was one, ``--task`` is given, ``--dataset`` names a canvas set
    or a COCO, YOLO or mask folder, ``--data-dir`` (alone) holds such a folder, or ``--model`` is a
    localisation, detection or segmentation model."""
    from ..data.annotated import TASKS
    from ..data.canvas import CANVAS_SETS
    from ..data.datasets import canonical_name
    from ..training.dense_run import TASK_OF_MODEL

    task = match_name(args.task, TASKS, "--task") if getattr(args, "task", None) else None
    model_task = None
    if args.model is not None and not args.model.strip().count(" "):
        from ..names import match
        model_task = TASK_OF_MODEL.get(match(args.model, list(TASK_OF_MODEL)) or "")
    data_dir = os.path.abspath(args.data_dir) if args.data_dir is not None else None
    if ckpt is not None:
        saved = ckpt.meta.get("config") or {}
        if ckpt.meta.get("task") not in TASKS:
            return None
        if task is not None and task != ckpt.meta["task"]:
            raise CommandError(f"--task {task} differs from the run being resumed ({ckpt.meta['task']}); a run "
                               "continues with its own task.")
        if args.dataset is not None and canonical_name(args.dataset) != saved.get("dataset"):
            raise CommandError(f"--dataset {args.dataset} differs from the run being resumed "
                               f"({saved.get('dataset') or saved.get('data_dir')}); drop --dataset.")
        return ckpt.meta["task"], saved.get("dataset"), data_dir or saved.get("data_dir")
    hint = task or model_task
    if args.dataset is not None:
        name = canonical_name(args.dataset)
        if name in CANVAS_SETS:
            return hint or ("localisation" if CANVAS_SETS[name][4] == (1, 1) else "detection"), name, data_dir
        if name is None and os.path.isdir(args.dataset):
            layout = _layout(args.dataset)
            if layout.task != "classification":
                return hint or layout.task, None, os.path.abspath(args.dataset)
        if hint is not None:
            raise CommandError(f"--dataset {args.dataset} holds no boxes or masks for {hint}: give a canvas set "
                               f"({', '.join(CANVAS_SETS)}) or a COCO, YOLO or mask folder.")
        return None
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise CommandError(f"--data-dir {args.data_dir!r} is not a folder.")
        layout = _layout(data_dir)
        if layout.task != "classification":
            return hint or layout.task, None, data_dir
        if hint is not None:
            raise CommandError(f"--data-dir {args.data_dir!r} holds no COCO, YOLO or mask layout for {hint}: no "
                               "data.yaml, no COCO JSON, no images/ beside masks/.")
        return None
    if hint is not None:
        return hint, "digits_localisation" if hint == "localisation" else "digits_anywhere", None
    return None


def _layout(folder):
    from ..data.detection_folders import detect_layout

    try:
        return detect_layout(folder)
    except (ValueError, FileNotFoundError) as e:
        raise CommandError(one_line(e)) from None


def resolve_dense_config(args, request, ckpt=None) -> dict:
    """The settings of a localisation, detection or segmentation run: explicit options > the resumed
    run's settings > the task's recipe (:data:`striate.training.dense_run.DENSE_RECIPES`)."""
    from ..training.dense_run import AUGMENTATIONS as DENSE_AUGMENTATIONS
    from ..training.dense_run import DENSE_RECIPES, TASK_OF_MODEL

    task, dataset, data_dir = request
    saved = dict((ckpt.meta.get("config") or {}) if ckpt is not None else {})
    given = {k: getattr(args, k) for k in TUNABLE if getattr(args, k) is not None}
    if "model" in given:
        given["model"] = match_name(given["model"], list(TASK_OF_MODEL), "--model")
    if "optimizer" in given:
        given["optimizer"] = match_name(given["optimizer"], OPTIMIZERS, "--optimizer")
    if "schedule" in given:
        given["schedule"] = match_name(given["schedule"], SCHEDULES, "--schedule")
    if ckpt is not None:
        for key in ("model", "optimizer"):
            if key in given and key in saved and given[key] != saved[key]:
                raise CommandError(f"--{key} {given[key]} differs from the run being resumed ({saved[key]}, in "
                                   f"{args.resume}); a run continues with its own {key}.")
    config = dict(DENSE_RECIPES[task])
    config.update({k: v for k, v in saved.items() if k in TUNABLE})
    config.update(given)
    if "warmup" not in given and "warmup" not in saved and config["warmup"] >= config["epochs"]:
        config["warmup"] = config["epochs"] - 1
    config.update(task=task, dataset=dataset, data_dir=data_dir, verify=True)
    config["seed"] = check_seed(args.seed) if args.seed is not None else int(saved.get("seed", 0))
    if ckpt is not None and saved.get("replan"):
        config["replan"] = saved["replan"]
    if args.crop_padding is None and "crop_padding" not in saved and config["crop_padding"] < 0:
        config["crop_padding"] = 0
    augs = [a.strip() for a in str(config["augment"]).split(",") if a.strip()]
    augs = [match_name(a, DENSE_AUGMENTATIONS, "--augment") for a in augs]
    config["augment"] = ",".join(a for a in augs if a != "none") or "none"
    if config["model"] not in TASK_OF_MODEL:
        raise CommandError(f"--model {config['model']} is not a {task} model; choose "
                           f"{' or '.join(m for m, t in TASK_OF_MODEL.items() if t == task)}.")
    if TASK_OF_MODEL[config["model"]] != task:
        raise CommandError(f"--model {config['model']} is a {TASK_OF_MODEL[config['model']]} model; for {task} "
                           f"choose {' or '.join(m for m, t in TASK_OF_MODEL.items() if t == task)}.")
    saved_augment, config["augment"] = config["augment"], "none"   # the classification list does not apply
    validate_config(config)
    config["augment"] = saved_augment
    return config


# ------------------------------------------------------------------------------ the run folder
def check_run_dir(out: str, args, run_id, main: bool = True):
    """The run folder, checked before the data are read (nothing created yet): a folder or a path where
    one can be made, writable, and holding no other run unless --overwrite."""
    from ..training import RunDir, RunDirError

    run_dir = RunDir(out)
    if main:
        try:
            run_dir.check(overwrite=args.overwrite, run_id=run_id, resume=args.resume)
        except RunDirError as e:
            raise CommandError(one_line(e)) from None
    return run_dir


def open_run_dir(run_dir, args, run_id) -> None:
    """Create and lock the folder; with --overwrite remove every file of the replaced run; remove the
    temporary files a killed write left."""
    from ..training import RunDirError

    try:
        run_dir.open(overwrite=args.overwrite, run_id=run_id, resume=args.resume)
    except RunDirError as e:
        raise CommandError(one_line(e)) from None
