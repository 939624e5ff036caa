"""``striate tune``: a hyperparameter search with Optuna over the options of ``striate train``; each trial
is an ordinary run folder, the search a results table, two plots and the best settings as a --config file."""
from __future__ import annotations

import argparse
import csv
import functools
import os
import sys

from .common import AUGMENTATIONS, match_name, one_line, one_line_warnings, resolve_model
from .main import CommandError
from .train_config import add_data_model_options

EPILOG = """\
examples:
  striate tune --trials 20 --search lr=0.001..0.1:log --search weight_decay=0..0.001 --out runs/tune
  striate tune --epochs 3 --search batch_size=32,64,128 --search augment=none,crop,crop+flip
  striate tune --dataset mnist --model lenet5 --search lr=0.005..0.2:log --jobs 2 --trials 12
  striate tune --search "model=digits_cnn; conv 8 3 relu, pool 2, dense 10" --search lr=0.01..0.3:log

A parameter is NAME=LOW..HIGH (uniform), NAME=LOW..HIGH:log (log-uniform: rates, decays) or NAME=A,B,C
(a choice; ';' separates choices that hold commas, such as layer lists; in augment '+' joins two).
Searchable: {names}. Every other train option (--dataset, --model, --epochs per trial, ...) is fixed
for all trials; options left out come from the data set's recipe, as in striate train.

Sampling is Optuna's TPE after --startup random trials. After each epoch a trial reports its validation
accuracy; from epoch --prune-after on, a trial below the median of the earlier trials at that epoch
is stopped (pruned: its run folder stays, with the epochs it trained). A trial's value is its best
validation accuracy (the test set is never used to choose).

OUT receives study.db (Optuna's SQLite storage: run the same command again to resume a stopped
search, up to --trials in all), trial-NNN/ (a run folder each: striate evaluate --checkpoint
OUT/trial-NNN/weights.npz), results.csv, history.png, importances.png and best.toml, the best trial's
settings: striate train --config OUT/best.toml --epochs 30.
"""


def add_parser(subparsers):
    from ..training.search import SEARCHABLE

    p = subparsers.add_parser(
        "tune", help="hyperparameter search (Optuna): trials as run folders, results, plots, best settings",
        description="Search the settings of `striate train` with Optuna (TPE sampling, median pruning of\n"
                    "weak trials, SQLite storage that resumes, parallel worker processes).",
        epilog=EPILOG.format(names=", ".join(SEARCHABLE)), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_argument_group("the search")
    s.add_argument("--search", action="append", metavar="NAME=SPEC", default=None,
                   help="a parameter to search, e.g. lr=0.001..0.1:log, weight_decay=0..0.001, batch_size=32,64,128 "
                        "(repeat for several)")
    s.add_argument("--trials", type=int, metavar="N", help="trials in the whole search (default 20)")
    s.add_argument("--jobs", type=int, metavar="N", help="trials trained at once, in N processes "
                   "(default 1)")
    s.add_argument("--startup", type=int, metavar="N", help="random trials before TPE and pruning start (default: "
                   "a quarter of --trials, 1 to 5)")
    s.add_argument("--prune-after", type=int, metavar="EPOCH", help="first epoch after which a weak "
                   "trial may be stopped (default 1; 0 turns pruning off)")
    s.add_argument("--out", metavar="DIR",
                   help="folder of the search (default runs/tune); an existing search there is resumed")
    s.add_argument("--config", metavar="FILE", help="a TOML or YAML file of option = value for the options here; "
                   "options typed on the command line win")
    s.add_argument("--seed", type=int, help="seed of every trial's training and of the sampler (default 0)")
    s.add_argument("-q", "--quiet", action="store_true", help="print only the results table")
    add_data_model_options(p)
    p.set_defaults(command="tune")
    return p


def _own_parser():
    sub = argparse.ArgumentParser(prog="striate", add_help=False).add_subparsers()
    return add_parser(sub)


def _train_dests() -> list[str]:
    p = argparse.ArgumentParser(add_help=False)
    add_data_model_options(p)
    return [a.dest for a in p._actions]


# ------------------------------------------------------------------------------------------------ checks
def _check_space(space) -> None:
    """The values a search may propose must be ones striate train accepts."""
    for p in space:
        where = f"--search {p.text!r}"
        if p.kind == "choice" and p.name == "model":
            for m in p.choices:
                resolve_model(m)
        elif p.kind == "choice" and p.name == "augment":
            for choice in p.choices:
                for a in choice.split(","):
                    match_name(a.strip(), AUGMENTATIONS, f"{where}: augmentation")
        elif p.kind == "choice" and p.name in ("optimizer", "schedule"):
            from ..optim.build import OPTIMIZERS, SCHEDULES
            for c in p.choices:
                match_name(c, OPTIMIZERS if p.name == "optimizer" else SCHEDULES, where)
        values = p.choices if p.kind == "choice" else [p.low, p.high]
        if p.name == "lr" and min(values) <= 0:
            raise CommandError(f"{where}: a learning rate must be > 0; start the range above 0 (e.g. 1e-4..0.1:log).")
        if p.name in ("batch_size", "epochs") and min(values) < 1:
            raise CommandError(f"{where}: {p.name} must be >= 1.")
        if p.name in ("warmup", "crop_padding", "weight_decay") and min(values) < 0:
            raise CommandError(f"{where}: {p.name} must be >= 0.")
        if p.name == "momentum" and (min(values) < 0 or max(values) >= 1):
            raise CommandError(f"{where}: momentum must lie in [0, 1).")
        if p.name == "val_split" and (min(values) <= 0 or max(values) >= 1):
            raise CommandError(f"{where}: val_split must lie in (0, 1): trials are compared on the validation set.")


def _check_args(args) -> None:
    for option, value, least in (("--trials", args.trials, 1), ("--jobs", args.jobs, 1),
                                 ("--prune-after", args.prune_after, 0), ("--startup", args.startup, 0)):
        if value is not None and value < least:
            raise CommandError(f"{option} must be an integer >= {least}. Received: {value}.")


def _base_settings(args, space) -> dict:
    """The train options typed (or read from --config) for every trial, checked with train's own rules."""
    from .main import command_parser
    from .train_config import resolve_config

    base = {}
    for dest in _train_dests():
        value = getattr(args, dest, None)
        if value is not None and value is not False:
            base[dest] = value
    searched = {p.name for p in space}
    both = sorted(searched & set(base))
    if both:
        option = "--" + both[0].replace("_", "-")
        raise CommandError(f"{both[0]} is both fixed ({option} {base[both[0]]}) and searched; drop {option} or "
                           f"its --search.")
    if args.seed is not None:
        base["seed"] = args.seed
    if "task" in base:
        raise CommandError(f"striate tune compares classifiers on their validation accuracy; drop --task "
                           f"{base['task']}.")
    probe = command_parser("train").parse_args([])
    for key, value in base.items():
        setattr(probe, key, value)
    config = resolve_config(probe)  # an unknown data set or model, a bad rate: one line now, not per trial
    if not config["val_split"] > 0 and "val_split" not in searched:
        raise CommandError("trials are compared on their validation accuracy: give --val-split > 0 (e.g. 0.1).")
    return base


def _out_folder(out: str) -> str:
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} is a file; give a folder for the search.")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, "study.db")):
        raise CommandError(f"--out {out!r} holds other files and no search (study.db); choose another --out.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CommandError(f"--out {out!r}: cannot create the folder: {e.strerror or one_line(e)}.") from None
    return out


# ------------------------------------------------------------------------------------------------ a trial
def _describe(params: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def run_trial(params: dict, trial, base: dict, out: str, quiet: bool = False) -> float:
    """One trial: a ``striate train`` run (:func:`striate.training.train_run`) with the fixed options and this
    trial's ``params``, into OUT/trial-NNN, reporting validation accuracy per epoch to Optuna (which may stop
    it early)."""
    from ..training import TrainingFailed, train_run
    from ..training.search import TrialFailed, TrialPruning
    from .main import command_parser
    from .train_config import settings_of

    args = command_parser("train").parse_args([])
    for key, value in {**base, **params}.items():
        setattr(args, key, value)
    folder = os.path.join(out, f"trial-{trial.number:03d}")
    pruning = TrialPruning(trial, monitor="val_acc")
    try:
        with one_line_warnings():
            result = train_run(settings_of(args), out=folder, callbacks=[pruning], verbose=0)
    except (ValueError, ImportError, TrainingFailed) as e:
        error = one_line(e)
        trial.set_user_attr("error", error)
        if not quiet:
            print(f"trial {trial.number:3d}  failed: {error}  ({_describe(params)})", flush=True)
        raise TrialFailed(error) from None
    metrics = result.metrics
    trial.set_user_attr("test_acc", metrics["test_accuracy"])
    trial.set_user_attr("seconds", round(metrics["seconds"], 1))
    trial.set_user_attr("run", folder)
    if not quiet:
        state = f"pruned after epoch {pruning.pruned_at}" if pruning.pruned_at else "complete"
        print(f"trial {trial.number:3d}  val_acc {pruning.best:.4f}  test_acc {metrics['test_accuracy']:.4f}  "
              f"{_describe(params)}  ({state}, {metrics['seconds']:.0f}s)", flush=True)
    pruning.raise_if_pruned()
    return pruning.best


# ------------------------------------------------------------------------------------------------ results
def _table(rows, names) -> tuple[list[str], list[list[str]]]:
    header = ["trial", "state", "val_acc", "test_acc", "epochs", *names, "seconds"]

    def cell(v):
        if v is None:
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    body = [[cell(r.get(h if h != "val_acc" else "value")) for h in header] for r in rows]
    return header, body


def _write_results(out: str, rows, names) -> str:
    from ..atomic import atomic_open

    header, _ = _table(rows, names)
    path = os.path.join(out, "results.csv")
    with atomic_open(path, "w", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header + ["run", "error"])
        for r in rows:
            values = [r.get("value" if h == "val_acc" else h) for h in header] + [r.get("run"), r.get("error")]
            w.writerow(["" if v is None else v for v in values])
    return path


def _print_table(rows, names, best) -> None:
    header, body = _table(rows, names)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r, b in zip(rows, body):
        mark = "  <- best" if best is not None and r["trial"] == best else ""
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() + mark)


def _plots(out: str, study, rows) -> list[str]:
    from ..training.search import param_importances
    from ..vis.tune_plots import importances_figure, save_plot, tune_history_figure

    written = []
    path = os.path.join(out, "history.png")
    save_plot(tune_history_figure(rows), path)
    written.append(path)
    try:
        importances = param_importances(study)
    except ValueError as e:
        print(f"no importances.png: {e}")
    else:
        path = os.path.join(out, "importances.png")
        save_plot(importances_figure(importances), path)
        written.append(path)
    return written


def run(args) -> int:
    from ..training.search import search_space, trial_rows, tune
    from ..training.config_file import write_config_file
    from .train_config import apply_config_file

    from ..optional import require

    apply_config_file(args, _own_parser())
    for key, default in (("trials", 20), ("jobs", 1), ("prune_after", 1), ("out", os.path.join("runs", "tune"))):
        if getattr(args, key) is None:  # left out on the command line and in --config
            setattr(args, key, default)
    _check_args(args)
    try:
        require("optuna", "tune", "striate tune")
    except ImportError as e:
        raise CommandError(one_line(e)) from None
    if not args.search:
        raise CommandError("nothing to search: give at least one --search NAME=SPEC, e.g. --search "
                           "lr=0.001..0.1:log.")
    try:
        space = search_space(args.search)
    except ValueError as e:
        raise CommandError(one_line(e).replace("search '", "--search '", 1)) from None
    _check_space(space)
    base = _base_settings(args, space)
    out = _out_folder(args.out)
    startup = args.startup if args.startup is not None else max(1, min(5, args.trials // 4))
    objective = functools.partial(run_trial, base=base, out=out, quiet=args.quiet)
    if not args.quiet:
        print(f"search {', '.join(p.describe() for p in space)}: {args.trials} trials, {args.jobs} at a time -> "
              f"{out}/", flush=True)
    try:
        study = tune(objective, space, args.trials, storage=os.path.join(out, "study.db"), jobs=args.jobs,
                     seed=base.get("seed", 0), startup=startup,
                     warmup=args.prune_after if args.prune_after > 0 else 10**9,
                     attrs={"fixed": {k: v for k, v in base.items()}})
    except (ValueError, RuntimeError) as e:
        raise CommandError(one_line(e)) from None
    except ImportError as e:
        raise CommandError(one_line(e)) from None
    rows = trial_rows(study)
    names = [p.name for p in space]
    from optuna.trial import TrialState
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value) if complete else None
    results = _write_results(out, rows, names)
    _print_table(rows, names, best.number if best else None)
    written = [results] + _plots(out, study, rows)
    if best is None:
        print(f"no trial completed; see {results}", file=sys.stderr)
        return 1
    best_file = os.path.join(out, "best.toml")
    write_config_file(best_file, {**base, **best.params})
    print(f"best: trial {best.number}, val_acc {best.value:.4f}, {_describe(best.params)}  ->  "
          f"{', '.join(written + [best_file])}")
    print(f"then: striate train --config {best_file}")
    return 0
