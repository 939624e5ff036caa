"""`striate train / evaluate / predict` end to end on the embedded digits (one short run shared)."""
import csv
import json
import math

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "1", "--out", str(out), "-q"]) == 0
    return out


def test_train_writes_the_run_files(run_dir):
    for name in ("weights.npz", "checkpoint.npz", "checkpoint_best.npz", "log.csv", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "epochs", "seconds", "model", "dataset", "params"):
        assert key in metrics, key
    assert 0.3 <= metrics["test_accuracy"] <= 1.0  # one epoch on digits is well above chance (0.1)
    assert math.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 0
    assert metrics["epochs"] == 1 and metrics["seconds"] > 0
    assert metrics["model"] == "digits_cnn" and metrics["dataset"] == "digits"
    assert metrics["params"] == st.models.get("digits_cnn").num_parameters()
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    assert len(rows) == 1 and {"epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds"} <= set(rows[0])
    ckpt = st.training.load_checkpoint(run_dir / "weights.npz")
    assert ckpt.meta["model"] == {"name": "digits_cnn", "args": {"num_classes": 10, "input_shape": [8, 8, 1]}}
    assert ckpt.meta["class_names"] == [str(i) for i in range(10)]


def test_evaluate_round_trip(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run_dir / "weights.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert result["num_samples"] == 360 and np.sum(result["confusion_matrix"]) == 360
    # the last checkpoint holds the same weights; TTA gives another, still sane, estimate
    assert main(["evaluate", "--weights", str(run_dir / "checkpoint.npz"), "--tta", "--json"]) == 0
    tta = json.loads(capsys.readouterr().out)
    assert tta["tta"] is True and 0.2 <= tta["accuracy"] <= 1.0
    assert main(["evaluate", "--checkpoint", str(run_dir / "weights.npz")]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion matrix" in text


def test_predict_png_round_trip(run_dir, tmp_path, capsys):
    from PIL import Image
    ds = st.data.load_dataset("digits")
    paths = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(ds.x_test[i, :, :, 0]).save(path)
        paths.append(str(path))
    capsys.readouterr()
    assert main(["predict", *paths, "--checkpoint", str(run_dir / "weights.npz"), "--top-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # the same prediction as the library gives on the in-memory test images
    model, meta = st.cli.common.load_model_file(str(run_dir / "weights.npz"))
    ref = st.training.predict(model, ds.x_test[:3], class_names=meta["class_names"],
                              transform=st.cli.common.standardizer(meta))
    for got, name, probs in zip(out, ref.names, ref.probabilities):
        assert len(got["top_k"]) == 2
        assert got["top_k"][0]["class"] == name
        assert got["top_k"][0]["probability"] == pytest.approx(probs.max(), rel=1e-5)
    assert main(["predict", paths[0], "--checkpoint", str(run_dir / "weights.npz")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(paths[0]) and "%" in line


def test_resume_continues_the_run(run_dir, tmp_path):
    out = tmp_path / "resumed"
    assert main(["train", "--resume", str(run_dir / "checkpoint.npz"), "--epochs", "2", "--out", str(out), "-q"]) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    first = list(csv.DictReader((run_dir / "log.csv").open()))[0]
    assert rows[0]["loss"] == first["loss"]  # epoch 1 comes from the checkpoint's history
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "lenet6"], "unknown --model 'lenet6'. Did you mean 'lenet5'?"),
    (["train", "--dataset", "imagenet1k"], "unknown --dataset 'imagenet1k'"),
    (["train", "--epochs", "-3"], "--epochs must be a positive integer. Received: -3."),
    (["train", "--lr", "0"], "--lr must be a positive number"),
    (["train", "--augment", "crop,rotate"], "unknown --augment 'rotate'"),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/folder"], "--data-dir '/nonexistent/folder' is not a folder"),
    (["train", "--resume", "/nonexistent/ckpt.npz"], "No checkpoint at"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, tmp_path):
    argv = argv + ["--out", str(tmp_path / "out")] if argv[0] == "train" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"striate {argv[0]}: error: ")
    assert message in err


def test_bad_files_exit_2(run_dir, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    assert main(["evaluate", "--checkpoint", str(notes)]) == 2
    assert "not a striate checkpoint" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.png"), "--checkpoint", str(run_dir / "weights.npz")]) == 2
    assert "no image file at" in capsys.readouterr().err
    assert main(["predict", str(notes), "--checkpoint", str(run_dir / "weights.npz")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"striate {command}" in text
