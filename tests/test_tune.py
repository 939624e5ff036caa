"""`striate tune` and st.training.tune: the search text, Optuna's TPE with median pruning, SQLite resume,
parallel workers, run folders per trial, results, plots and best settings that train --config reads."""
import csv
import json

import pytest

optuna = pytest.importorskip("optuna")

import striate as st  # noqa: E402
from striate.cli.main import build_parser, main  # noqa: E402
from striate.training import parse_search, search_space  # noqa: E402

LAYERS = "conv 4 3 relu, pool 2, dense 10"


# ------------------------------------------------------------------------------------------- search text
def test_parse_ranges_and_choices():
    p = parse_search("lr=0.001..0.1:log")
    assert (p.name, p.kind, p.low, p.high, p.log) == ("lr", "float", 0.001, 0.1, True)
    p = parse_search("weight-decay=0..0.001")
    assert (p.name, p.kind, p.low, p.high, p.log) == ("weight_decay", "float", 0.0, 0.001, False)
    p = parse_search("batch_size=32,64,128")
    assert (p.name, p.kind, p.choices) == ("batch_size", "choice", [32, 64, 128])
    assert parse_search("batch_size=16..128").kind == "int"
    assert parse_search("augment=none,crop,crop+flip").choices == ["none", "crop", "crop,flip"]
    assert parse_search("model=digits_cnn; conv 8 3 relu, dense 10").choices == ["digits_cnn",
                                                                                 "conv 8 3 relu, dense 10"]


@pytest.mark.parametrize("text, words", [
    ("lrr=0.01..0.1", ["unknown parameter 'lrr'", "Did you mean 'lr'?"]),
    ("wieght_decay=0..1", ["Did you mean 'weight_decay'?"]),
    ("lr=0.1..0.1", ["zero width"]),
    ("lr=0.1..0.001", ["reversed", "lr=0.001..0.1"]),
    ("weight_decay=0..0.01:log", [":log range must lie above 0"]),
    ("lr=0.01..0.1:ln", ["unknown scale 'ln'"]),
    ("batch_size=32", ["at least two values"]),
    ("batch_size=32,32", ["listed twice"]),
    ("batch_size=32,big", ["'big' is not an integer"]),
    ("batch_size=32,,64", ["empty choice"]),
    ("lr", ["write NAME=LOW..HIGH"]),
    ("batch_size=1.5..8", ["not an integer"]),
])
def test_bad_search_text(text, words):
    with pytest.raises(ValueError) as e:
        parse_search(text)
    msg = str(e.value)
    assert "\n" not in msg and text in msg
    for w in words:
        assert w in msg, msg


def test_each_parameter_once():
    with pytest.raises(ValueError, match="already searched"):
        search_space(["lr=0.01..0.1", "lr=0.001..0.01"])


# ------------------------------------------------------------------------------------------- the library
def curve_objective(params, trial):
    """A trial whose 'validation curve' rises to x over 4 epochs: the pruner can tell weak x early."""
    x = params["momentum"]
    for epoch in range(1, 5):
        trial.report(x * epoch / 4, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def test_tune_prunes_weak_curves_and_resumes(tmp_path):
    space = search_space(["momentum=0..0.99"])
    db = tmp_path / "study.db"
    study = st.training.tune(curve_objective, space, n_trials=12, storage=db, seed=1, startup=3)
    states = [t.state.name for t in study.trials]
    assert len(states) == 12 and "PRUNED" in states and "COMPLETE" in states
    done = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    for t in study.trials:
        if t.state.name == "PRUNED":  # stopped below the median of the earlier trials at that step
            step = max(t.intermediate_values)
            earlier = sorted(u.intermediate_values[step] for u in study.trials
                             if u.number < t.number and step in u.intermediate_values)
            assert t.intermediate_values[step] < earlier[len(earlier) // 2] + 1e-12
    assert study.best_value == max(done.values())
    # resuming: the stored trials count towards n_trials; a trial left running by a stop is marked failed
    stale = optuna.load_study(study_name="striate", storage=f"sqlite:///{db}").ask()
    again = st.training.tune(curve_objective, space, n_trials=15, storage=db, seed=1, startup=3)
    assert len(again.trials) == 16  # 12 + the stale one + 3 new
    assert again.trials[stale.number].state.name == "FAIL"
    with pytest.raises(ValueError, match="other search"):
        st.training.tune(curve_objective, search_space(["momentum=0..0.5"]), n_trials=20, storage=db)
    rows = st.training.trial_rows(again)
    assert [r["trial"] for r in rows] == list(range(16)) and all("momentum" in r for r in rows)
    imp = st.training.param_importances(again)
    assert set(imp) == {"momentum"} and imp["momentum"] == pytest.approx(1.0)


def test_tune_argument_errors(tmp_path):
    space = search_space(["lr=0.01..0.1"])
    for kwargs, word in [({"n_trials": 0}, "n_trials"), ({"n_trials": 2, "jobs": 0}, "jobs"),
                         ({"n_trials": 2, "jobs": 2}, "storage")]:
        with pytest.raises(ValueError, match=word):
            st.training.tune(curve_objective, space, **kwargs)


# ------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def search(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("tune") / "search"
    argv = ["tune", "--trials", "3", "--epochs", "2", "--model", LAYERS, "--search", "lr=0.003..0.3:log",
            "--search", "batch_size=32,64", "--startup", "2", "--out", str(out)]
    assert main(argv) == 0
    return out, argv


def read_rows(out):
    return list(csv.DictReader((out / "results.csv").open()))


def test_tune_writes_trials_results_plots_and_best(search, capsys):
    out, _ = search
    rows = read_rows(out)
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} <= {"complete", "pruned"} and rows[0]["state"] == "complete"
    for r in rows:
        run = out / f"trial-{int(r['trial']):03d}"
        assert run.joinpath("weights.npz").is_file() and r["run"] == str(run)
        config = st.training.load_checkpoint(run / "weights.npz").meta["config"]
        assert config["lr"] == pytest.approx(float(r["lr"]), rel=1e-3)
        assert config["batch_size"] == int(r["batch_size"]) and config["model"] == LAYERS
        log = list(csv.DictReader((run / "log.csv").open()))
        assert len(log) == int(r["epochs"]) == (2 if r["state"] == "complete" else 1)
        assert float(r["val_acc"]) == pytest.approx(max(float(e["val_acc"]) for e in log), abs=1e-4)
        metrics = json.loads((run / "metrics.json").read_text())
        assert float(r["test_acc"]) == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    # striate evaluate works on a trial's folder
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "trial-000" / "weights.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(float(rows[0]["test_acc"]), abs=1e-4)
    for name in ("history.png", "importances.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_best_toml_round_trip(search, tmp_path):
    from striate.cli.train_cmd import own_parser
    from striate.cli.train_config import apply_config_file, resolve_config

    out, _ = search
    rows = [r for r in read_rows(out) if r["state"] == "complete"]
    best = max(rows, key=lambda r: float(r["val_acc"]))
    study = optuna.load_study(study_name="striate", storage=f"sqlite:///{out / 'study.db'}")
    assert study.best_trial.number == int(best["trial"])
    args = build_parser().parse_args(["train", "--config", str(out / "best.toml")])
    apply_config_file(args, own_parser())
    c = resolve_config(args)
    assert c["lr"] == study.best_params["lr"] and c["batch_size"] == study.best_params["batch_size"]
    assert c["model"] == LAYERS and c["epochs"] == 2
    # and train runs from it, reproducing the best trial (same seed and settings)
    run = tmp_path / "again"
    assert main(["train", "--config", str(out / "best.toml"), "--out", str(run), "-q"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(float(best["test_acc"]), abs=1e-4)


def test_tune_resumes_with_parallel_workers(search):
    out, argv = search
    argv = [a if a != "3" else "5" for a in argv] + ["--jobs", "2"]
    assert main(argv) == 0
    rows = read_rows(out)
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all((out / f"trial-{i:03d}" / "metrics.json").is_file() for i in range(5))


@pytest.mark.parametrize("extra, words", [
    (["--search", "lrr=0.01..0.1"], ["unknown parameter 'lrr'", "Did you mean 'lr'?"]),
    (["--search", "lr=0.1..0.1"], ["zero width"]),
    (["--search", "lr=0.1..0.01"], ["reversed"]),
    (["--search", "weight_decay=0..0.1:log"], [":log"]),
    (["--search", "batch_size=64"], ["at least two values"]),
    (["--search", "lr=0..0.1"], ["learning rate must be > 0"]),
    (["--search", "model=lenet5,alexnte"], ["alexnte", "Did you mean 'alexnet'?"]),
    (["--search", "augment=none,crap"], ["crap"]),
    (["--search", "lr=0.01..0.1", "--lr", "0.1"], ["both fixed (--lr 0.1) and searched"]),
    ([], ["nothing to search"]),
    (["--search", "lr=0.01..0.1", "--val-split", "0"], ["--val-split > 0"]),
    (["--search", "lr=0.01..0.1", "--trials", "0"], ["--trials must be"]),
])
def test_bad_input_gets_one_line(tmp_path, capsys, extra, words):
    out = tmp_path / "never"
    assert main(["tune", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("striate tune: error:"), err
    for w in words:
        assert w in err, err
    assert not out.exists()


def test_out_holding_something_else(tmp_path, capsys):
    (tmp_path / "other.txt").write_text("x")
    assert main(["tune", "--out", str(tmp_path), "--search", "lr=0.01..0.1"]) == 2
    assert "holds other files" in capsys.readouterr().err


def test_without_optuna_one_line(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed
    assert main(["tune", "--out", str(tmp_path / "s"), "--search", "lr=0.01..0.1", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "striate[tune]"' in err, err
    assert not (tmp_path / "s").exists()


def test_tune_reads_its_options_from_config(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "s"
    f = tmp_path / "tune.toml"
    f.write_text(f'search = ["lr=0.01..0.1:log"]\ntrials = 2\nepochs = 1\nmodel = "{LAYERS}"\nout = "{out}"\n'
                 'prune-after = 0\n')
    assert main(["tune", "--config", str(f), "--trials", "1"]) == 0  # the command line wins: one trial
    assert [r["trial"] for r in read_rows(out)] == ["0"]
    f.write_text("serach = []\n")
    assert main(["tune", "--config", str(f)]) == 2
    assert "Did you mean 'search'?" in capsys.readouterr().err
