"""The options of ``striate train`` turned into a run's settings, and ``--config FILE`` merged with the
options typed: the argparse side of :mod:`striate.training.recipe` (which resolves and checks the settings)
and :mod:`striate.training.config_file` (which reads the file). Shared by the commands that train with a
recipe."""
from __future__ import annotations

import argparse
import os

from ..optim.build import OPTIMIZERS, SCHEDULES
from ..training.recipe import SETTINGS, TUNABLE
from .common import AUGMENTATIONS, check_seed, lib, match_name, one_line
from .main import CommandError


def load_resume(path):
    """The checkpoint of ``--resume`` (:func:`striate.training.load_resume`); one-line errors."""
    from ..training import CheckpointError
    from ..training.run import load_resume as load

    try:
        return load(path)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        raise CommandError(one_line(e)) from None


def settings_of(args) -> dict:
    """The settings typed (or read from --config) as options: setting name -> value, the left-out ones
    absent (``--no-verify`` is ``verify=False``)."""
    settings = {k: getattr(args, k, None) for k in SETTINGS if k != "verify"}
    if getattr(args, "no_verify", False):
        settings["verify"] = False
    return {k: v for k, v in settings.items() if v is not None}


def resolve_config(args, ckpt=None) -> dict:
    """The run's settings: explicit options > the resumed run's saved settings > the data set's recipe
    (:func:`striate.training.recipe.resolve_config`); one-line errors."""
    from ..training import recipe
    return lib(recipe.resolve_config, settings_of(args), ckpt)


def validate_config(c: dict) -> None:
    from ..training import recipe
    lib(recipe.validate_config, c)


# ------------------------------------------------------------------------------------- --config FILE
# options a file may not set: the file itself
NOT_IN_CONFIG = ("config", "command", "help")


def read_config_file(path) -> dict:
    """The table of a ``--config`` file (:func:`striate.training.read_config_file`); one-line errors."""
    from ..training.config_file import read_config_file as read

    try:
        return read(path)
    except ValueError as e:
        raise CommandError(f"--config {one_line(e)}") from None
    except OSError as e:
        raise CommandError(f"--config {path}: {e.strerror or one_line(e)}.") from None
    except ImportError as e:
        raise CommandError(one_line(e)) from None


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
