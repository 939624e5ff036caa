"""`striate train --config FILE`: TOML and YAML files set train's options, typed options win, bad files get one line."""
import json

import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

from striate.cli.main import CommandError, build_parser, main  # noqa: E402
from striate.cli.train_cmd import own_parser  # noqa: E402
from striate.cli.train_config import apply_config_file, resolve_config  # noqa: E402
from striate.training import write_config_file  # noqa: E402

LAYERS = "conv 4 3 relu, pool 2, dense 10"


def settings(argv):
    """The run's resolved settings for a train command line (no training)."""
    args = build_parser().parse_args(["train", *argv])
    apply_config_file(args, own_parser())
    return resolve_config(args)


def test_toml_sets_options_and_the_command_line_wins(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('lr = 0.02\nbatch-size = 16\nweight_decay = 0.0\nepochs = 3\naugment = ["crop", "flip"]\n'
                 'optimizer = "adam"\nno-verify = true\n')
    c = settings(["--config", str(f)])
    assert (c["lr"], c["batch_size"], c["weight_decay"], c["epochs"]) == (0.02, 16, 0.0, 3)
    assert c["augment"] == "crop,flip" and c["optimizer"] == "adam" and c["verify"] is False
    c = settings(["--config", str(f), "--lr", "0.3", "--batch-size", "8"])
    assert (c["lr"], c["batch_size"], c["epochs"]) == (0.3, 8, 3)
    # without the file: the digits recipe
    c = settings([])
    assert (c["lr"], c["batch_size"], c["optimizer"]) == (0.05, 32, "sgd")


def test_yaml_file(tmp_path):
    pytest.importorskip("yaml")
    f = tmp_path / "run.yaml"
    f.write_text(f"lr: 0.005\nbatch_size: 64\nmodel: '{LAYERS}'\nseed: 3\n")
    c = settings(["--config", str(f), "--seed", "4"])
    assert (c["lr"], c["batch_size"], c["model"], c["seed"]) == (0.005, 64, LAYERS, 4)


def test_write_config_round_trip(tmp_path):
    f = tmp_path / "best.toml"
    write_config_file(f, {"lr": 1e-05, "batch_size": 128, "model": LAYERS, "augment": "none", "momentum": 0.5})
    c = settings(["--config", str(f)])
    assert (c["lr"], c["batch_size"], c["model"], c["momentum"]) == (1e-05, 128, LAYERS, 0.5)


def test_train_runs_with_the_file(tmp_path):
    out = tmp_path / "run"
    f = tmp_path / "run.toml"
    f.write_text(f'model = "{LAYERS}"\nepochs = 1\nlr = 0.03\nbatch-size = 64\nout = "{out}"\nquiet = true\n')
    assert main(["train", "--config", str(f), "--lr", "0.04"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    from striate.training import load_checkpoint
    config = load_checkpoint(out / "weights.npz").meta["config"]
    assert config["lr"] == 0.04 and config["batch_size"] == 64 and config["model"] == LAYERS


@pytest.mark.parametrize("text, words", [
    ("batch_sise = 32\n", ["unknown option 'batch_sise'", "Did you mean 'batch-size'?"]),
    ("lr = 'fast'\n", ["lr must be a number", "'fast'"]),
    ("epochs = 2.5\n", ["epochs must be an integer"]),
    ("overwrite = 1\n", ["overwrite is a flag"]),
    ("lr = [0.1]\n", ["lr takes a value"]),
    ("lr = \n", ["is not valid TOML"]),
])
def test_bad_toml_gets_one_line(tmp_path, capsys, text, words):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("striate train: error: --config")
    for w in words:
        assert w in err, err
    assert not (tmp_path / "never").exists()


def test_bad_files_get_one_line(tmp_path, capsys):
    for name, text, word in [("a.json", "{}", "unknown file type '.json'"),
                             ("missing.toml", None, "No such file"),
                             ("list.yaml", "- 1\n- 2\n", "must hold a table")]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        assert main(["train", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and word in err, err


def test_config_error_is_a_command_error(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("lrr = 0.1\n")
    args = build_parser().parse_args(["train", "--config", str(f)])
    with pytest.raises(CommandError, match="Did you mean 'lr'"):
        apply_config_file(args, own_parser())
