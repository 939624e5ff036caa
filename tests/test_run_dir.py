"""The run folder (striate.training.RunDir): no run is ever lost or mixed with another, a fine-tuned
model is a run like any other, and only one process writes into a folder at a time."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.training import RunDir, RunDirBusy, RunDirError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"striate {command}: error: "), err
    return lines[0]


def _files(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}


def _finetune(base, *argv):
    return main(["finetune", "--base", str(base), "--dataset", "digits", "--per-class", "10", "--head-epochs", "1",
                 "--epochs", "0", "-q", *argv])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short `striate train` run (a read-only copy is made by the tests that write)."""
    out = tmp_path_factory.mktemp("trained") / "r"
    assert main(["train", "--epochs", "1", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run, in ``r``."""
    os.makedirs("r")
    for name, data in _files(trained).items():
        (tmp_path / "r" / name).write_bytes(data)
    return tmp_path / "r"


# ------------------------------------------------------------------------------ never lose a run
def test_finetune_into_the_base_runs_folder_is_refused(run, capsys):
    before = _files(run)
    for extra in ([], ["--overwrite"]):
        assert _finetune(run / "weights.npz", "--classes", "0,1", "--out", str(run), *extra) == 2
        line = _one_error_line(capsys.readouterr().err, "finetune")
        assert "which this run reads" in line and "Choose another --out" in line
        assert _files(run) == before  # the base run is whole, and nothing of a fine-tuned run mixed in


def test_finetune_never_writes_over_another_finetune_run(run, capsys):
    assert _finetune(run / "weights.npz", "--classes", "0,1") == 0      # default --out
    default = os.path.join("runs", "finetune-digits")
    first = _files(default)
    # the same command again, and a fine-tune of another subset into the same folder: refused
    for classes in ("0,1", "2,3,4"):
        assert _finetune(run / "weights.npz", "--classes", classes) == 2
        line = _one_error_line(capsys.readouterr().err, "finetune")
        assert "holds another run" in line and "--overwrite" in line
    assert _files(default) == first
    # a fine-tune of the fine-tuned model into its own folder: never, even with --overwrite
    for extra in ([], ["--overwrite"]):
        assert _finetune(os.path.join(default, "weights.npz"), "--classes", "0,1", "--out", default, *extra) == 2
        assert "which this run reads" in _one_error_line(capsys.readouterr().err, "finetune")
    assert _files(default) == first
    # --overwrite replaces the other run, from a base elsewhere
    assert _finetune(run / "weights.npz", "--classes", "2,3,4", "--overwrite") == 0
    meta = st.training.load_checkpoint(os.path.join(default, "weights.npz")).meta
    assert meta["class_names"] == ["2", "3", "4"] and meta["classes"] == [2, 3, 4]


def test_overwrite_clears_every_run_file_and_only_those(run, capsys):
    from striate.atomic import TEMP_PREFIX

    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and (run / "checkpoint_best.npz").is_file()
    (run / "notes.txt").write_text("my notes")
    (run / ".tmp-mine.npz").write_bytes(b"a user's own temporary file")
    (run / f"{TEMP_PREFIX}abc123.npz").write_bytes(b"half a checkpoint of a killed write")
    capsys.readouterr()
    assert main(["train", "--epochs", "1", "--val-split", "0", "--out", str(run), "--overwrite", "-q"]) == 0
    names = set(os.listdir(run))
    assert names == {"weights.npz", "checkpoint.npz", "log.csv", "metrics.json", "notes.txt", ".tmp-mine.npz"}
    assert (run / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("classes", ["3", "3,3", "4,4,4"])
def test_fewer_than_two_classes_are_refused(run, classes, capsys):
    assert _finetune(run / "weights.npz", "--classes", classes, "--out", "ft") == 2
    line = _one_error_line(capsys.readouterr().err, "finetune")
    assert "--classes must name at least two different classes" in line and repr(classes) in line
    assert not os.path.exists("ft")


def test_classes_outside_the_data_set_are_one_line(run, capsys):
    assert _finetune(run / "weights.npz", "--classes", "3,12", "--out", "ft") == 2
    assert "0..9" in _one_error_line(capsys.readouterr().err, "finetune")


# --------------------------------------------------------------------- a fine-tuned model is a run
@pytest.fixture
def finetuned(run, capsys):
    assert _finetune(run / "weights.npz", "--classes", "5,6,7,8,9", "--out", "ft", "--val-split", "0.2") == 0
    capsys.readouterr()
    return os.path.abspath("ft")


def test_finetune_records_its_data(finetuned):
    meta = st.training.load_checkpoint(os.path.join(finetuned, "weights.npz")).meta
    data = st.training.run_data(meta)
    assert data == {"dataset": "digits", "data_dir": None, "classes": [5, 6, 7, 8, 9], "verify": True}
    assert meta["run_id"] and meta["run_id"] != st.training.load_checkpoint("r/weights.npz").meta["run_id"]
    metrics = json.loads(open(os.path.join(finetuned, "metrics.json")).read())
    assert metrics["classes"] == [5, 6, 7, 8, 9] and metrics["dataset"] == "digits"


def test_evaluate_and_report_work_on_a_finetune_run(finetuned, capsys):
    metrics = json.loads(open(os.path.join(finetuned, "metrics.json")).read())
    assert main(["evaluate", "--checkpoint", os.path.join(finetuned, "weights.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the same test images as the fine-tuning's own evaluation: the five classes, relabelled 0..4
    digits = st.data.load_dataset("digits")
    assert result["num_samples"] == int(np.isin(digits.y_test, [5, 6, 7, 8, 9]).sum())
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert list(result["per_class_accuracy"]) == ["5", "6", "7", "8", "9"]
    assert main(["report", finetuned]) == 0
    page = open(os.path.join(finetuned, "report.html")).read()
    assert "test images not available" not in page and "Traceback" not in page
    assert main(["evaluate", "--checkpoint", os.path.join(finetuned, "checkpoint.npz")]) == 0


def test_predict_visualize_export_serve_work_on_a_finetune_run(finetuned, capsys):
    from PIL import Image

    weights = os.path.join(finetuned, "weights.npz")
    digits = st.data.load_dataset("digits")
    Image.fromarray(digits.x_test[0, :, :, 0]).save("d.png")
    assert main(["predict", "d.png", "--checkpoint", weights, "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top_k"]
    assert {t["class"] for t in top} <= {"5", "6", "7", "8", "9"}
    assert main(["visualize", "gradcam", "--checkpoint", weights, "--image", "d.png", "--out", "cam.png"]) == 0
    assert main(["visualize", "top-patches", "--checkpoint", weights, "--out", "top.npz", "--k", "2"]) == 0
    assert os.path.getsize("cam.png") > 0 and os.path.getsize("top.npz") > 0
    pytest.importorskip("onnx")
    assert main(["export", "--checkpoint", weights, "--out", "ft.onnx"]) == 0
    from striate.serve import load_served_model
    served = load_served_model(weights)
    assert list(served.class_names) == ["5", "6", "7", "8", "9"]


# ----------------------------------------------------------------------------------------- lock
def test_the_lock_refuses_a_second_writer_and_is_released(tmp_path):
    first = RunDir(tmp_path / "m").open()
    try:
        with pytest.raises(RunDirBusy, match=f"process {os.getpid()} is writing a run") as info:
            RunDir(tmp_path / "m").open()
        assert info.value.pid == os.getpid()
    finally:
        first.close()
    assert not (tmp_path / "m" / ".striate-lock").exists()
    RunDir(tmp_path / "m").open().close()   # free again


_HOLD = """
import sys, time
from striate.training import RunDir
RunDir(sys.argv[1]).open()
print("locked", flush=True)
time.sleep(60)
"""


def _holder(folder):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_into_a_busy_folder_is_refused_naming_the_first(tmp_path, capsys):
    holder = _holder(tmp_path / "m")
    try:
        assert main(["train", "--epochs", "1", "--out", str(tmp_path / "m"), "-q"]) == 2
        line = _one_error_line(capsys.readouterr().err, "train")
        assert f"process {holder.pid} is writing a run into it" in line
        assert set(os.listdir(tmp_path / "m")) == {".striate-lock"}   # nothing of the second run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 left the lock file behind with a dead PID: the lock itself died with its process
    assert (tmp_path / "m" / ".striate-lock").read_text().strip() == str(holder.pid)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "m"), "-q"]) == 0
    assert not (tmp_path / "m" / ".striate-lock").exists()


def test_two_train_processes_at_once_never_mix(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "striate", "train", "--epochs", "1", "--out", str(tmp_path / "m"), "-q"]
    procs = [subprocess.Popen(cmd + ["--seed", str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for s in (1, 2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    refused = next(r for r in results if r[0] == 2)[2]
    assert "is writing a run into it" in refused or "holds another run" in refused, refused
    seeds = {st.training.load_checkpoint(tmp_path / "m" / f).meta["config"]["seed"]
             for f in ("weights.npz", "checkpoint.npz", "checkpoint_best.npz")}
    assert len(seeds) == 1   # every file from one run


def test_rundir_check_errors_are_value_errors(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a folder"):
        RunDir(tmp_path / "afile").check()
    assert issubclass(RunDirError, ValueError)


def test_a_finetune_of_an_imported_graph_is_served_and_evaluated(run, tmp_path, capsys):
    pytest.importorskip("onnx")
    from striate.serve import load_served_model

    assert main(["export", "--checkpoint", str(run / "weights.npz"), "--out", "m.onnx", "-q"]) == 0
    assert main(["import", "m.onnx", "--out", "imp.npz", "-q"]) == 0
    assert _finetune("imp.npz", "--classes", "1,7", "--out", "ftg") == 0
    capsys.readouterr()
    served = load_served_model("ftg/weights.npz")
    out = served.run(np.zeros((8, 8, 1), np.float32))
    assert list(served.class_names) == ["1", "7"] and len(out["probabilities"]) == 2
    assert main(["evaluate", "--checkpoint", "ftg/weights.npz", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == int(np.isin(
        st.data.load_dataset("digits").y_test, [1, 7]).sum())


def test_report_of_a_model_whose_classes_differ_from_its_data_says_so(finetuned, capsys):
    # a file that records the data set but not the class subset (as fine-tunes written before did)
    ckpt = st.training.load_checkpoint(os.path.join(finetuned, "weights.npz"))
    meta = {k: v for k, v in ckpt.meta.items() if k != "classes"}
    meta["config"] = {k: v for k, v in meta["config"].items() if k != "classes"}
    model, _ = st.training.load_model(os.path.join(finetuned, "weights.npz"))
    for name in ("weights.npz", "checkpoint.npz"):
        os.remove(os.path.join(finetuned, name))
    st.training.save_weights(os.path.join(finetuned, "weights.npz"), model, meta=meta)
    assert main(["report", finetuned, "-q"]) == 0
    page = open(os.path.join(finetuned, "report.html")).read()
    assert "test images not available (digits has 10 classes, the model 5)" in page


from data_paths import MNIST_DIR  # noqa: E402


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="shared MNIST copy not present")
def test_a_finetune_remembers_its_data_dir(tmp_path, capsys):
    base = st.models.lenet5(rng=0)
    meta = {"model": {"name": "lenet5", "args": {"num_classes": 10}}, "input_shape": [28, 28, 1],
            "class_names": [str(i) for i in range(10)]}
    st.training.save_weights("base.npz", base, meta=meta)
    assert main(["finetune", "--base", "base.npz", "--dataset", "mnist", "--data-dir", MNIST_DIR, "--classes", "0,1",
                 "--per-class", "5", "--head-epochs", "1", "--epochs", "0", "--out", "ft", "-q"]) == 0
    recorded = st.training.run_data(st.training.load_checkpoint("ft/weights.npz").meta)
    assert recorded["data_dir"] == os.path.abspath(MNIST_DIR) and recorded["classes"] == [0, 1]
    capsys.readouterr()
    os.chdir(tmp_path / "ft")   # from anywhere: the folder is recorded as an absolute path
    assert main(["evaluate", "--checkpoint", "weights.npz", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 980 + 1135   # MNIST's test zeros and ones
