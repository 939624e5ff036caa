"""Hyperparameter search with Optuna: a search space written as text, TPE sampling, median pruning
of trials whose validation curve lags, SQLite storage (a stopped search resumes), parallel processes.

A search parameter is written ``NAME=LOW..HIGH`` (uniform), ``NAME=LOW..HIGH:log`` (log-uniform, for
rates and decays) or ``NAME=A,B,C`` (a choice; ``;`` separates choices that hold commas themselves,
such as layer lists). The names are the options of ``striate train`` (:data:`SEARCHABLE`).

Optuna (``pip install "striate[tune]"``) is imported only when a search runs.

Example::

    >>> space = [parse_search("lr=0.001..0.1:log"), parse_search("batch_size=32,64,128")]
    >>> def objective(params, trial):
    ...     pruning = TrialPruning(trial)              # reports val_acc per epoch, stops weak trials
    ...     fit(make_model(), loader(params["batch_size"]), val, epochs=3,
    ...         optimizer=SGD(..., lr=params["lr"]), callbacks=[pruning])
    ...     pruning.raise_if_pruned()
    ...     return pruning.best
    >>> study = tune(objective, space, n_trials=20, storage="runs/tune/study.db", jobs=2)  # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..names import did_you_mean, match
from ..optional import require
from .callbacks import Callback

# the options of striate train a search may vary, with the type of their values
SEARCHABLE = {"lr": float, "momentum": float, "weight_decay": float, "val_split": float,
              "batch_size": int, "epochs": int, "warmup": int, "crop_padding": int,
              "augment": str, "model": str, "optimizer": str, "schedule": str}

STUDY_NAME = "striate"


class TrialFailed(Exception):
    """A trial that could not train (its settings diverged or do not fit the data); the search goes on."""


def _optuna():
    import warnings

    with warnings.catch_warnings():  # optuna's progress bars ask tqdm for notebook widgets striate never uses
        warnings.filterwarnings("ignore", message="IProgress not found")
        optuna = require("optuna", "tune", "a hyperparameter search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # striate prints one line per trial instead
    return optuna


@dataclass
class SearchParam:
    """One dimension of a search: a range (``low``..``high``, optionally log-scaled) or a list of choices.

    Args:
        name: the ``striate train`` option it sets (``lr``, ``batch_size``, ...).
        kind: ``"float"``, ``"int"`` or ``"choice"``.
        low, high: the range's ends (``kind`` float or int).
        log: sample the range on a log scale.
        choices: the values of a choice.
        text: the parameter as written.
    """
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list = field(default_factory=list)
    text: str = ""

    def suggest(self, trial):
        """The value Optuna's ``trial`` proposes for this parameter."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, self.choices)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")


def _number(text: str, kind, where: str):
    try:
        value = kind(text.strip())
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ValueError(f"{where}: {text.strip()!r} is not {noun}.") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {text.strip()!r} is not a finite number.")
    return value


def parse_search(text: str) -> SearchParam:
    """A search parameter from its text: ``lr=0.001..0.1:log``, ``weight_decay=0..0.001``,
    ``batch_size=32,64,128``, ``augment=none,crop,crop+flip`` (``+`` joins augmentations),
    ``model=digits_cnn;conv 8 3 relu, pool 2, dense 10`` (``;`` when a choice holds commas).

    Raises:
        ValueError: one line naming the parameter and what is wrong (unknown name with the nearest
            one; a range of zero width, reversed, or on a log scale through 0; fewer than two choices).
    """
    text = str(text)
    where = f"search {text!r}"
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ValueError(f"{where}: write NAME=LOW..HIGH, NAME=LOW..HIGH:log or NAME=A,B,C "
                         "(e.g. lr=0.001..0.1:log, batch_size=32,64,128).")
    known = match(name.strip(), SEARCHABLE)
    if known is None:
        raise ValueError(f"{where}: unknown parameter {name.strip()!r}.{did_you_mean(name.strip(), SEARCHABLE)} "
                         f"Searchable: {', '.join(SEARCHABLE)}.")
    kind = SEARCHABLE[known]
    spec = spec.strip()
    if ".." in spec and kind is not str:
        body, _, scale = spec.partition(":")
        if scale.strip() not in ("", "log"):
            raise ValueError(f"{where}: unknown scale {scale.strip()!r}; the only one is :log.")
        low_text, _, high_text = body.partition("..")
        low, high = _number(low_text, kind, where), _number(high_text, kind, where)
        log = scale.strip() == "log"
        if low == high:
            raise ValueError(f"{where}: the range has zero width ({low:g}..{high:g}); give LOW < HIGH, or set "
                             f"--{known.replace('_', '-')} {low:g} without searching it.")
        if low > high:
            raise ValueError(f"{where}: the range is reversed ({low:g} > {high:g}); write "
                             f"{known}={high_text.strip()}..{low_text.strip()}" + (":log." if log else "."))
        if log and low <= 0:
            raise ValueError(f"{where}: a :log range must lie above 0 (LOW is {low:g}); start it at a small "
                             "positive value such as 1e-5, or drop :log.")
        return SearchParam(known, "float" if kind is float else "int", low, high, log, text=text)
    if ":log" in spec:
        raise ValueError(f"{where}: :log belongs to a range LOW..HIGH, not to a list of choices.")
    parts = [p.strip() for p in (spec.split(";") if ";" in spec else spec.split(","))]
    if any(not p for p in parts):
        raise ValueError(f"{where}: an empty choice; separate the choices by single commas (a,b,c).")
    if kind is str:
        choices = [p.replace("+", ",") if known == "augment" else p for p in parts]
    else:
        choices = [_number(p, kind, where) for p in parts]
    if len(choices) < 2:
        raise ValueError(f"{where}: a choice needs at least two values (A,B); for one value set "
                         f"--{known.replace('_', '-')} {choices[0]} without searching it.")
    if len(set(choices)) < len(choices):
        raise ValueError(f"{where}: a value is listed twice; list each choice once.")
    return SearchParam(known, "choice", choices=choices, text=text)


def search_space(texts) -> list[SearchParam]:
    """The parameters of several ``--search`` texts, each name at most once."""
    space = [parse_search(t) for t in texts]
    seen = {}
    for p in space:
        if p.name in seen:
            raise ValueError(f"search {p.text!r}: {p.name} is already searched ({seen[p.name]!r}); give each "
                             "parameter once.")
        seen[p.name] = p.text
    if not space:
        raise ValueError("a search needs at least one parameter, e.g. lr=0.001..0.1:log.")
    return space


class TrialPruning(Callback):
    """Report a monitored metric to an Optuna trial after every epoch and stop the run when the pruner
    says the trial is weak (its value lies below the median of earlier trials at the same epoch); the
    last epoch is reported but never pruned (stopping would save nothing).

    The run ends cleanly (its files are written); call :meth:`raise_if_pruned` afterwards to tell
    Optuna. ``best`` is the best value seen (the objective of the trial).

    Args:
        trial: the ``optuna.trial.Trial`` of this run.
        monitor: the metric of the epoch logs, default ``"val_acc"`` (maximised).
    """

    def __init__(self, trial, monitor: str = "val_acc"):
        self.trial, self.monitor = trial, monitor
        self.best, self.pruned_at, self.values = None, None, []

    def on_train_begin(self, run):
        self.run = run

    def on_epoch_end(self, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"TrialPruning monitors {self.monitor!r}, which the epoch logs lack (keys: "
                             f"{', '.join(sorted(logs))}); give fit a validation set.")
        value = float(value)
        self.values.append(value)
        self.best = value if self.best is None or value > self.best else self.best
        self.trial.report(value, epoch + 1)
        last = epoch + 1 >= self.run.epochs  # nothing left to save by stopping
        if not last and self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.run.stop_training = True

    def raise_if_pruned(self):
        """Raise ``optuna.TrialPruned`` when the pruner stopped this trial."""
        if self.pruned_at is not None:
            raise _optuna().TrialPruned(f"pruned after epoch {self.pruned_at}")


def storage_url(path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return "sqlite:///" + os.path.abspath(os.fspath(path))


def _storage(optuna, storage):
    if storage is None:
        return None
    # a worker waits for the others' writes instead of failing on a locked database
    return optuna.storages.RDBStorage(storage_url(storage), engine_kwargs={"connect_args": {"timeout": 60}})


def _make_study(optuna, storage, seed, startup, warmup, create):
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, startup))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if create:
        return optuna.create_study(study_name=STUDY_NAME, storage=_storage(optuna, storage), direction="maximize",
                                   sampler=sampler, pruner=pruner, load_if_exists=True)
    return optuna.load_study(study_name=STUDY_NAME, storage=_storage(optuna, storage), sampler=sampler,
                             pruner=pruner)


def _work(objective, space, n_trials, storage, seed, startup, warmup):
    """One worker process: its own sampler (seeded apart) on the shared storage."""
    optuna = _optuna()
    study = _make_study(optuna, storage, seed, startup, warmup, create=False)
    study.optimize(lambda trial: objective({p.name: p.suggest(trial) for p in space}, trial), n_trials=n_trials,
                   catch=(TrialFailed,))


def finished(study) -> int:
    """The trials of a study that ended (complete, pruned or failed), not counting those a stopped
    search interrupted (they are run again)."""
    from optuna.trial import TrialState
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               and not t.user_attrs.get("interrupted") for t in study.trials)


def tune(objective, space, n_trials: int, storage=None, jobs: int = 1, seed: int = 0, startup: int = 2,
         warmup: int = 0, attrs: dict | None = None):
    """Search ``space`` with Optuna's TPE sampler, maximising what ``objective`` returns.

    ``n_trials`` is the size of the whole study: a search stored in ``storage`` that was stopped
    resumes and runs only the trials still missing (trials left running by the stop are marked failed,
    with the user attribute ``interrupted``, and run again).

    Args:
        objective: ``objective(params, trial) -> float``, ``params`` a dict name -> value; it may report
            per-epoch values through :class:`TrialPruning`, raise ``optuna.TrialPruned`` or raise
            :class:`TrialFailed` (the trial is recorded as failed and the search goes on). With
            ``jobs > 1`` it must be picklable (a module-level function or a ``functools.partial`` of one).
        space: the :class:`SearchParam` list (:func:`search_space`).
        n_trials: trials the study should hold, >= 1.
        storage: an SQLite file (created if absent; resumed if it holds a search), or None (in memory).
        jobs: worker processes on the shared storage, each with its own sampler (seed + worker).
        seed: the sampler's seed.
        startup: trials sampled at random (and never pruned) before TPE and the pruner start.
        warmup: epochs of each trial that are never pruned.
        attrs: JSON-able facts stored with a new study (e.g. the fixed settings); a resumed study must
            have been made with the same ones.

    Returns:
        The ``optuna.study.Study``.

    Example::

        >>> study = st.training.tune(objective, space, n_trials=4)  # doctest: +SKIP
        >>> study.best_params
    """
    optuna = _optuna()
    from optuna.trial import TrialState

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"tune: n_trials must be a positive integer. Received: n_trials={n_trials!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"tune: jobs must be a positive integer. Received: jobs={jobs!r}.")
    if jobs > 1 and storage is None:
        raise ValueError("tune: jobs > 1 needs a storage file that the processes share. Received: storage=None.")
    study = _make_study(optuna, storage, seed, startup, warmup, create=True)
    attrs = dict(attrs or {}, search=[p.text for p in space])
    if not study.trials and not study.user_attrs:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
    else:
        differs = [k for k, v in attrs.items() if study.user_attrs.get(k) != v]
        if differs:
            raise ValueError(f"tune: {storage} holds a search with other {', '.join(differs)} "
                             f"({', '.join(f'{k}={study.user_attrs.get(k)!r}' for k in differs)}); give the "
                             "same settings to resume it, or start a new search elsewhere.")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # left running by a search that was stopped: it will never report again
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    left = n_trials - finished(study)
    if left <= 0:
        return study
    if jobs == 1:
        study.optimize(lambda trial: objective({p.name: p.suggest(trial) for p in space}, trial), n_trials=left,
                       catch=(TrialFailed,))
        return study
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked database connections
    shares = [left // jobs + (i < left % jobs) for i in range(min(jobs, left))]
    workers = [ctx.Process(target=_work, args=(objective, space, k, storage, seed + 1 + i, startup, warmup))
               for i, k in enumerate(shares)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise
    failed = [w.exitcode for w in workers if w.exitcode]
    if failed:
        raise RuntimeError(f"tune: {len(failed)} of {len(workers)} worker processes ended with an error "
                           f"(exit codes {failed}); the trials they finished are kept in {storage}.")
    return _make_study(optuna, storage, seed, startup, warmup, create=False)


def trial_rows(study) -> list[dict]:
    """One row per trial: number, state, value, each parameter, and the trial's user attributes."""
    names = []
    for t in study.trials:
        names += [n for n in t.params if n not in names]
    rows = []
    for t in study.trials:
        value = t.value
        if value is None and t.intermediate_values:  # a pruned trial: the best it reported
            value = max(t.intermediate_values.values())
        row = {"trial": t.number, "state": t.state.name.lower(), "value": value,
               "epochs": len(t.intermediate_values)}
        row.update({n: t.params.get(n) for n in names})
        row.update(t.user_attrs)
        rows.append(row)
    return rows


def param_importances(study) -> dict:
    """Each parameter's importance to the objective (Optuna's fANOVA evaluator, summing to 1), over the
    complete trials.

    Raises:
        ValueError: fewer than two complete trials, or no parameter varied among them.
    """
    optuna = _optuna()
    from optuna.trial import TrialState
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        raise ValueError(f"parameter importances need at least 2 complete trials; this search has {len(done)}.")
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)))
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"parameter importances could not be computed: {e}") from None
