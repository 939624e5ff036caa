"""A whole training run in one call: :func:`train_run` does what ``striate train`` does — resolve the
settings from the data set's recipe, load the data, build the model, optimiser and schedule, train with
the run folder's callbacks, evaluate on the test set — and writes the same files (``weights.npz``,
``checkpoint.npz``, ``checkpoint_best.npz``, ``log.csv``, ``metrics.json``) into a
:class:`~striate.training.RunDir`.

Example::

    >>> import striate as st
    >>> result = st.training.train_run(dict(dataset="digits", epochs=5), out="runs/a")
    >>> result.metrics["test_accuracy"]                        # also in runs/a/metrics.json
    0.97...
    >>> result = st.training.train_run(resume="runs/a/checkpoint.npz", epochs=10)   # continue it
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

from . import recipe


class TrainingFailed(RuntimeError):
    """A run that could not finish — its loss diverged, memory ran out, or its files could not be
    written — with one line saying what to change. The files already written stay whole."""


@dataclass
class RunResult:
    """What :func:`train_run` and :func:`~striate.training.finetune_run` give back.

    Attributes:
        out: the run folder.
        metrics: what ``metrics.json`` holds (``test_accuracy``, ``test_loss``, ``epochs``, ``seconds``, ...);
            None on the processes of a data-parallel run other than the first, which write no files.
        history: the per-epoch logs (:class:`~striate.training.History`, or a list of rows for a fine-tuning).
        model: the trained model.
        config: the run's settings, as its files record them.
    """
    out: str
    metrics: dict | None
    history: object = field(repr=False)
    model: object = field(repr=False)
    config: dict = field(repr=False)

    @property
    def test_accuracy(self):
        return None if self.metrics is None else self.metrics["test_accuracy"]


def load_resume(path):
    """The :class:`~striate.training.Checkpoint` of a run to continue: a ``checkpoint.npz`` (not a weights
    file, which holds no optimiser state). Raises FileNotFoundError or a one-line ValueError."""
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.kind != "checkpoint":
        raise ValueError(f"{path} is a weights file; --resume needs the checkpoint.npz of a run.")
    return ckpt


def settings_from(config) -> dict:
    """The settings of ``config``: a dict, or the path of a TOML or YAML file (keys spelled ``batch-size`` or
    ``batch_size``; ``no-verify = true`` is ``verify = false``)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"config must be a dict of settings or the path of a .toml or .yaml file. Received: "
                        f"config={config!r}.")
    from .config_file import read_config_file

    settings = {}
    for key, value in read_config_file(config).items():
        name = str(key).strip().lstrip("-").replace("-", "_")
        if name == "no_verify":
            name, value = "verify", not value
        settings[name] = value
    return settings


def run_callbacks(run_dir, meta: dict, with_best: bool) -> list:
    """The callbacks that write a run folder's files while it trains: ``checkpoint.npz`` every epoch,
    ``checkpoint_best.npz`` (best val_acc, when there is a validation split) and ``log.csv``."""
    from .callbacks import CSVLogger, ModelCheckpoint

    callbacks = [ModelCheckpoint(run_dir.checkpoint, meta=meta)]
    if with_best:
        callbacks.append(ModelCheckpoint(run_dir.best, monitor="val_acc", save_best_only=True, meta=meta))
    callbacks.append(CSVLogger(run_dir.log))
    return callbacks


def _classification_only(config: dict, ckpt) -> None:
    from ..data.annotated import TASKS
    from ..data.canvas import CANVAS_SETS

    task = (ckpt.meta.get("task") if ckpt is not None else None)
    if task in TASKS or config["dataset"] in CANVAS_SETS:
        raise ValueError(f"train_run trains classifiers; {config['dataset'] or 'this run'} is for "
                         f"{task or 'localisation and detection'}: train it with striate train --dataset "
                         f"{config['dataset']} (striate.training.dense_run.train_dense).")


def _tensorboard(log_dir):
    """The TensorBoard callback, its errors (a second writer, no tensorboardX) as one line."""
    from .tensorboard import TensorBoard

    try:
        return TensorBoard(log_dir)
    except ImportError as e:
        raise ImportError(f"--tensorboard: {recipe._one_line(e).replace('TensorBoard: ', '')}") from None
    except (ValueError, TypeError) as e:
        raise ValueError(f"--tensorboard: {recipe._one_line(e).replace('TensorBoard: ', '')}") from None
    except OSError as e:
        raise ValueError(f"--tensorboard {os.fspath(log_dir)!r}: {e.strerror or recipe._one_line(e)}.") from None


def _announce(config, model, counts, strategy) -> None:
    n_train, n_val, n_test = counts
    name = os.path.basename(os.path.normpath(config["dataset"])) or "data"
    size = None if strategy is None else strategy.size
    print(f"training {config['model']} ({model.num_parameters():,} parameters) on {name}: "
          f"{n_train} train / {n_val} val / {n_test} test images, "
          f"{config['epochs']} epochs, {config['optimizer']} lr {config['lr']:g}, batch {config['batch_size']}, "
          f"{config['schedule']} schedule, augment {config['augment']}"
          + (f", {size} processes x {config['batch_size'] // size}" if size else ""))
    if config.get("replan"):
        plan = config["replan"]
        print(f"continuing after epoch {plan['epoch']} to {config['epochs']}: the {config['schedule']} schedule "
              f"goes on from lr {plan['lr']:.3g}")


def train_run(config=None, out=None, *, resume=None, overwrite: bool = False, callbacks=(), tensorboard=None,
              strategy=None, verbose: int = 1, **settings) -> RunResult:
    """Train a model on a data set with its recipe and write the run folder, as ``striate train`` does.

    Every setting left out comes from the data set's recipe (:data:`striate.training.recipe.RECIPES`), or,
    when resuming, from the run being continued.

    Args:
        config: the settings (:data:`striate.training.recipe.SETTINGS`: ``dataset``, ``model``, ``epochs``,
            ``batch_size``, ``optimizer``, ``lr``, ...) as a dict, or the path of a TOML or YAML file of
            them (e.g. the ``best.toml`` of ``striate tune``).
        out: the run folder (default ``runs/<dataset>-<model>``; when resuming, the checkpoint's folder).
            A folder holding another run is never written into unless ``overwrite``.
        resume: a run's ``checkpoint.npz`` (or its loaded :class:`~striate.training.Checkpoint`) to continue:
            its data set, model and optimizer stay; ``epochs`` may set a larger total.
        overwrite: replace the files of the run already in ``out`` (every one of them goes).
        callbacks: more :class:`~striate.training.Callback` objects, after the run folder's own.
        tensorboard: a folder to write TensorBoard event files into (``pip install 'striate[tensorboard]'``).
        strategy: how the run spreads over processes, e.g. :class:`striate.distributed.DataParallel` under
            ``mpiexec`` (``batch_size`` stays the global batch); None: this process alone.
        verbose: 0 silent, 1 a line describing the run, a progress bar and a line per epoch.
        **settings: settings that override those of ``config``.

    Returns:
        A :class:`RunResult`: the folder, the metrics written to ``metrics.json``, the history, the model and
        the settings.

    Raises:
        ValueError: a setting, the data or the folder that cannot work (one line, naming the setting the
            way the command line's option does: ``--lr``, ``--out``, ...).
        TrainingFailed: the run diverged, ran out of memory, or could not write its files.

    Example::

        >>> result = train_run(dict(dataset="digits", epochs=5), out="runs/a")
        >>> sorted(os.listdir("runs/a"))
        ['checkpoint.npz', 'checkpoint_best.npz', 'log.csv', 'metrics.json', 'weights.npz']
        >>> train_run("runs/tune/best.toml", out="runs/best", epochs=30)   # a file's settings, one changed
    """
    from .run_dir import RunDir, default_folder

    started = time.perf_counter()
    ckpt = load_resume(resume) if isinstance(resume, (str, os.PathLike)) else resume
    config = recipe.resolve_config({**settings_from(config), **settings}, ckpt)
    _classification_only(config, ckpt)
    if strategy is not None:
        strategy.setup(config["batch_size"])
    main = strategy is None or strategy.is_main   # the one process that prints and writes files
    if ckpt is not None:
        plan = recipe.continue_plan(config, ckpt)
        if plan:
            config["replan"] = plan
    run_id = (ckpt.meta.get("run_id") if ckpt is not None else None) or uuid.uuid4().hex
    resume_path = ckpt.path if ckpt is not None else None
    model_name = "layers" if " " in config["model"] else config["model"]  # a layer list makes no folder name
    out = os.fspath(out) if out is not None else default_folder("train", config["dataset"], model_name,
                                                                 resume=resume_path)
    run_dir = RunDir(out)
    if main:   # checked before the data are read: nothing is made yet
        run_dir.check(overwrite=overwrite, run_id=run_id, resume=resume_path)
    ds = recipe.load_data(config["dataset"], config["data_dir"], verify=config["verify"])
    recipe.check_fits_data(config, ds.input_shape)
    if main:
        run_dir.open(overwrite=overwrite, run_id=run_id, resume=resume_path)
    try:
        return _train(config, ckpt, ds, run_dir, run_id, callbacks, tensorboard, strategy, main, verbose, started)
    finally:
        run_dir.close()


def _train(config, ckpt, ds, run_dir, run_id, callbacks, tensorboard, strategy, main, verbose, started):
    """The run proper, in its locked folder."""
    from ..data import DataLoader
    from ..optim import build_schedule
    from .checkpoint import save_weights
    from .loop import evaluate, fit

    pieces = recipe.build_run(config, ds, resume=ckpt)
    model, opt, train, val, eval_t = pieces.model, pieces.optimizer, pieces.train, pieces.val, pieces.eval_transform
    meta = recipe.run_meta(config, pieces.model_args, run_id, ds, eval_t)
    every = run_callbacks(run_dir, meta, with_best=val is not None)
    if tensorboard is not None and main:
        every.append(_tensorboard(tensorboard))
    every += list(callbacks or ())   # e.g. striate tune's pruning of weak trials
    if strategy is not None:
        model, opt, train, val, every = strategy.wrap(model, opt, train, val, every)
    schedule = build_schedule(config["schedule"], opt, config["epochs"], config["warmup"], config.get("replan"))
    if ckpt is not None and config.get("replan") and ckpt.state.get("schedule") is not None:
        ckpt.state["schedule"] = schedule.state_dict()  # the new plan, not the old one
    if main and verbose:
        _announce(config, model, pieces.counts, strategy)
    try:
        history = fit(model, train, val, epochs=config["epochs"], optimizer=opt, schedule=schedule,
                      callbacks=every, verbose=verbose if main else 0, resume=ckpt,
                      reduce=None if strategy is None else strategy.reduce)
        train_seconds = time.perf_counter() - started
        test = DataLoader(ds.x_test, ds.y_test, batch_size=256, shuffle=False, transform=eval_t)
        result = evaluate(model, test) if strategy is None else strategy.evaluate(model, test)
        if not main:
            return RunResult(run_dir.path, None, history, model, config)
        save_weights(run_dir.weights, model, meta=meta)
        metrics = recipe.run_metrics(result, history, model, ds, config, started, train_seconds,
                                     1 if strategy is None else strategy.size)
        run_dir.write_metrics(metrics)
    except FloatingPointError as e:
        raise TrainingFailed(str(e).replace("fit: ", "") + " (--lr)") from None
    except MemoryError:
        raise TrainingFailed(f"out of memory training {config['model']} with --batch-size {config['batch_size']}: "
                             "lower --batch-size or choose a smaller --model.") from None
    except BrokenPipeError:  # the reader of the output went away (`| head`): not the disk
        raise
    except OSError as e:  # a full or vanished disk: every file there is whole (atomic writes)
        raise TrainingFailed(f"could not write the run into {run_dir.path!r}: {e.strerror or recipe._one_line(e)}. "
                             "The files already there are intact; free space (or choose another --out) and "
                             f"--resume {run_dir.checkpoint}.") from None
    return RunResult(run_dir.path, metrics, history, model, config)
