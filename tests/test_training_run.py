"""st.training.train_run: `striate train` in one Python call, with the same run folder, and one-line errors."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402

LAYERS = "conv 4 3 relu, pool 2, dense 10"
SETTINGS = dict(dataset="digits", model=LAYERS, epochs=2, batch_size=64, seed=3)


def _log(folder):
    """log.csv without its timings, which differ from run to run."""
    rows = list(csv.DictReader((folder / "log.csv").open()))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory):
    """The same run made twice: once by the command, once by the Python call."""
    root = tmp_path_factory.mktemp("twins")
    cli, api = root / "cli", root / "api"
    assert main(["train", "--model", LAYERS, "--epochs", "2", "--batch-size", "64", "--seed", "3",
                 "--out", str(cli), "-q"]) == 0
    result = st.training.train_run(SETTINGS, out=api, verbose=0)
    return cli, api, result


def test_the_python_call_writes_the_commands_run_folder(twin_runs):
    cli, api, result = twin_runs
    names = ["checkpoint.npz", "checkpoint_best.npz", "log.csv", "metrics.json", "weights.npz"]
    assert sorted(p.name for p in cli.iterdir() if not p.name.startswith(".")) == names
    assert sorted(p.name for p in api.iterdir() if not p.name.startswith(".")) == names
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (cli, api))
    assert set(a) == set(b)
    for key in ("test_accuracy", "test_loss", "epochs", "params", "model", "dataset", "confusion_matrix"):
        assert a[key] == b[key], key
    assert _log(cli) == _log(api)
    wa, wb = (st.training.load_checkpoint(d / "weights.npz") for d in (cli, api))
    assert wa.model_state.keys() == wb.model_state.keys()
    for name in wa.model_state:
        np.testing.assert_array_equal(wa.model_state[name], wb.model_state[name])
    assert wa.meta["config"] == wb.meta["config"] and wa.meta["run_id"] != wb.meta["run_id"]


def test_the_result_holds_what_the_folder_holds(twin_runs):
    _, api, result = twin_runs
    assert result.out == str(api)
    assert result.metrics == json.loads((api / "metrics.json").read_text())
    assert result.test_accuracy == result.metrics["test_accuracy"] and 0.1 < result.test_accuracy <= 1
    assert result.config["model"] == LAYERS and result.config["lr"] == st.training.recipe.RECIPES["digits"]["lr"]
    assert len(result.history.epoch) == 2 and result.model.num_parameters() == result.metrics["params"]


def test_a_settings_file_and_keyword_overrides(twin_runs, tmp_path):
    _, api, first = twin_runs
    path = tmp_path / "run.toml"
    st.training.write_config_file(path, {k: v for k, v in SETTINGS.items() if k != "epochs"})
    assert "batch-size = 64" in path.read_text()
    result = st.training.train_run(path, out=tmp_path / "run", epochs=2, verbose=0)
    assert result.metrics["test_accuracy"] == first.metrics["test_accuracy"]   # the same settings, the same run


def test_resume_continues_the_run(twin_runs, tmp_path):
    _, api, first = twin_runs
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(api, copy)
    result = st.training.train_run(resume=copy / "checkpoint.npz", epochs=3, verbose=0)
    assert result.out == str(copy) and result.metrics["epochs"] == 3 and len(_log(copy)) == 3


def test_the_call_prints_what_the_command_prints(tmp_path, capsys):
    st.training.train_run(SETTINGS, out=tmp_path / "run", epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith(f"training {LAYERS} (") and "epoch 1/1" in out
    st.training.train_run(SETTINGS, out=tmp_path / "quiet", epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_another_run_is_never_overwritten(twin_runs):
    _, api, _ = twin_runs
    before = (api / "metrics.json").read_text()
    with pytest.raises(ValueError, match="add --overwrite|another run") as e:
        st.training.train_run(SETTINGS, out=api, verbose=0)
    assert "\n" not in str(e.value)
    assert (api / "metrics.json").read_text() == before


@pytest.mark.parametrize("settings, error, words", [
    (dict(epochs=0), ValueError, "--epochs must be a positive integer. Received: 0."),
    (dict(lr=-1.0), ValueError, "--lr must be a positive number"),
    (dict(lr="fast"), TypeError, "--lr must be a number. Received: lr='fast'."),
    (dict(epochs=2.5), TypeError, "--epochs must be an integer"),
    (dict(learning_rate=0.1), ValueError, "unknown setting 'learning_rate'"),
    (dict(model="resnet-99"), ValueError, "unknown --model 'resnet-99'"),
    (dict(dataset="mnsit"), ValueError, "Did you mean 'mnist'?"),
    (dict(optimizer="adamx"), ValueError, "unknown --optimizer"),
    (dict(augment=["crop", "spin"]), ValueError, "unknown --augment 'spin'"),
    (dict(schedule="plateau", val_split=0.0), ValueError, "--schedule plateau watches val_loss"),
    (dict(model="conv 4 3 relu, pool 2, dense 7"), ValueError, "end it with 'dense 10'"),
])
def test_bad_settings_give_one_line(tmp_path, settings, error, words):
    with pytest.raises(error) as e:
        st.training.train_run({**SETTINGS, **settings}, out=tmp_path / "run", verbose=0)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_config_and_resume_give_one_line(tmp_path, twin_runs):
    _, api, _ = twin_runs
    with pytest.raises(TypeError, match="config must be a dict"):
        st.training.train_run(42)
    (tmp_path / "bad.toml").write_text("lr = \n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        st.training.train_run(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="unknown file type"):
        st.training.train_run(tmp_path / "settings.json")
    with pytest.raises(ValueError, match="weights file; --resume needs the checkpoint.npz"):
        st.training.train_run(resume=api / "weights.npz")
    with pytest.raises(ValueError, match="--model .* differs from the run being resumed"):
        st.training.train_run(resume=api / "checkpoint.npz", model="digits_cnn", epochs=3)


def test_boxes_are_not_a_classification_run(tmp_path):
    with pytest.raises(ValueError, match="train_run trains classifiers"):
        st.training.train_run(dict(dataset="digits_anywhere"), out=tmp_path / "run", verbose=0)


# ------------------------------------------------------------------------------------------ finetune_run
FT = dict(classes=[0, 1, 2], per_class=20, head_epochs=1, epochs=1, batch_size=16, seed=1)


@pytest.fixture(scope="module")
def twin_finetunes(twin_runs, tmp_path_factory):
    _, api, _ = twin_runs
    root = tmp_path_factory.mktemp("finetunes")
    cli, lib = root / "cli", root / "api"
    assert main(["finetune", "--base", str(api / "weights.npz"), "--dataset", "digits", "--classes", "0,1,2",
                 "--per-class", "20", "--head-epochs", "1", "--epochs", "1", "--batch-size", "16", "--seed", "1",
                 "--out", str(cli), "-q"]) == 0
    result = st.training.finetune_run(api / "weights.npz", "digits", lib, verbose=0, **FT)
    return api, cli, lib, result


def test_finetune_run_writes_the_commands_run_folder(twin_finetunes):
    base, cli, lib, result = twin_finetunes
    names = ["checkpoint.npz", "log.csv", "metrics.json", "weights.npz"]
    assert sorted(p.name for p in cli.iterdir() if not p.name.startswith(".")) == names
    assert sorted(p.name for p in lib.iterdir() if not p.name.startswith(".")) == names
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (cli, lib))
    assert set(a) == set(b)
    for key in ("test_accuracy", "test_loss", "epochs", "train_images", "classes", "config", "confusion_matrix"):
        assert a[key] == b[key], key
    assert b["classes"] == [0, 1, 2] and b["epochs"] == 2 and b["train_images"] == 60
    assert _log(cli) == _log(lib)
    wa, wb = (st.training.load_checkpoint(d / "weights.npz") for d in (cli, lib))
    for name in wa.model_state:
        np.testing.assert_array_equal(wa.model_state[name], wb.model_state[name])
    assert wb.meta["base"] == str(base / "weights.npz") and wb.meta["class_names"] == ["0", "1", "2"]
    assert result.metrics == b and result.out == str(lib) and len(result.history) == 2


def test_finetune_run_never_writes_into_the_base_run(twin_finetunes):
    base, _, _, _ = twin_finetunes
    before = {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    for overwrite in (False, True):
        with pytest.raises(ValueError) as e:
            st.training.finetune_run(base / "weights.npz", "digits", base, overwrite=overwrite, verbose=0, **FT)
        assert "\n" not in str(e.value) and str(base) in str(e.value)
    assert {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(classes="0,x"), ValueError, "--classes must be comma-separated integers. Received: '0,x'."),
    (dict(classes=[3, 3]), ValueError, "--classes must name at least two different classes"),
    (dict(classes=[0, 1, 12]), ValueError, "--classes"),
    (dict(epochs=-1), ValueError, "--epochs must be >= 0. Received: -1."),
    (dict(head_epochs=1.5), TypeError, "--head-epochs must be an integer"),
    (dict(lr=0.0), ValueError, "--lr and --lr-mult must be positive"),
    (dict(batch_size=0), ValueError, "--batch-size must be a positive integer. Received: 0."),
    (dict(val_split=1.0), ValueError, "--val-split must lie in [0, 1)"),
    (dict(per_class=0), ValueError, "--per-class must be a positive integer"),
    (dict(optimizer="adamx"), ValueError, "unknown --optimizer 'adamx'"),
    (dict(freeze_until="nope"), ValueError, "--freeze-until must name a layer of the base model"),
])
def test_finetune_run_bad_arguments_give_one_line(twin_finetunes, tmp_path, kwargs, error, words):
    base, _, _, _ = twin_finetunes
    with pytest.raises(error) as e:
        st.training.finetune_run(base / "weights.npz", "digits", tmp_path / "ft", verbose=0, **{**FT, **kwargs})
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "ft" / "metrics.json").exists()


def test_finetune_run_bad_base_and_data(twin_finetunes, tmp_path):
    base, _, _, _ = twin_finetunes
    with pytest.raises(FileNotFoundError):
        st.training.finetune_run(tmp_path / "missing.npz", "digits", tmp_path / "ft", verbose=0)
    with pytest.raises(ValueError, match="unknown --dataset 'digts'"):
        st.training.finetune_run(base / "weights.npz", "digts", tmp_path / "ft", verbose=0)


def test_a_diverging_run_fails_in_one_line(tmp_path, capsys):
    with pytest.raises(st.training.TrainingFailed) as e:
        st.training.train_run(SETTINGS, out=tmp_path / "run", lr=1e8, epochs=1, verbose=0)
    assert str(e.value).startswith("the loss became") and str(e.value).endswith("(--lr)")
    assert not (tmp_path / "run" / "metrics.json").exists()
    capsys.readouterr()
    assert main(["train", "--model", LAYERS, "--lr", "1e8", "--epochs", "1", "--out", str(tmp_path / "cli"),
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("striate train: error: the loss became") and err.count("\n") == 1
