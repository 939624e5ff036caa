"""Runs a user can trust: no run overwritten or mixed up, a run remembers its data, one
name one recipe, files checked against their published SHA-256, one line (never a traceback) for
anything a user can type or feed, test-time augmentation only with the run's own augmentations."""
import csv
import dataclasses
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

import striate as st  # noqa: E402
from striate.cli import common  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.data import datasets  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from data_paths import MNIST_DIR, needs_mnist  # noqa: E402
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"striate {command}: error: "), err
    return lines[0]


def _idx(arr) -> bytes:
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def _write_idx_set(folder, n_train=60, n_test=20, seed=0):
    """Four MNIST-layout files of 28x28 images (random pixels, every class present)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    for name, a in zip(IDX_NAMES, arrays):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(gzip.compress(_idx(a)))
    return str(folder)


def _train(*argv):
    return main(["train", *argv, "-q"])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default runs/ folders land here


# ------------------------------------------------------------------------------ never lose a run
def test_resume_writes_where_the_run_lives_and_never_over_another(tmp_path, capsys):
    # a user's sequence: a default run, a second run in runs/quick, a resume of the second
    assert _train("--epochs", "1") == 0
    default = tmp_path / "runs" / "digits-digits_cnn"
    before = {f: (default / f).read_bytes() for f in os.listdir(default)}
    assert _train("--epochs", "1", "--out", "runs/quick", "--lr", "0.01") == 0
    assert _train("--resume", "runs/quick/checkpoint.npz", "--epochs", "2") == 0
    assert {f: (default / f).read_bytes() for f in os.listdir(default)} == before  # untouched
    rows = list(csv.DictReader(open("runs/quick/log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads(open("runs/quick/metrics.json").read())["epochs"] == 2
    capsys.readouterr()
    # a new run into a folder holding another run is refused, before any training
    assert _train("--epochs", "1") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "holds another run" in line and "--overwrite" in line
    assert {f: (default / f).read_bytes() for f in os.listdir(default)} == before
    # so is resuming one run into another run's folder
    assert _train("--resume", "runs/quick/checkpoint.npz", "--epochs", "3", "--out", str(default)) == 2
    assert "holds another run" in _one_error_line(capsys.readouterr().err, "train")
    # --overwrite replaces the run, and leaves no stale file of it behind (no val split: no best checkpoint)
    assert (default / "checkpoint_best.npz").exists()
    assert _train("--epochs", "1", "--val-split", "0", "--overwrite") == 0
    assert not (default / "checkpoint_best.npz").exists()
    assert (default / "checkpoint.npz").read_bytes() != before["checkpoint.npz"]


def test_resume_from_the_best_checkpoint_continues_in_its_folder(tmp_path):
    assert _train("--epochs", "1", "--out", "r") == 0
    assert _train("--resume", "r/checkpoint_best.npz", "--epochs", "2") == 0
    assert json.loads(open("r/metrics.json").read())["epochs"] == 2


def test_stale_temporary_files_are_removed_and_out_checked_first(tmp_path, capsys):
    from striate.atomic import TEMP_PREFIX

    os.makedirs("run")
    (tmp_path / "run" / f"{TEMP_PREFIX}abc123.npz").write_bytes(b"half a checkpoint")
    (tmp_path / "run" / ".tmp-mine.txt").write_bytes(b"a user's file, not striate's")
    assert _train("--epochs", "1", "--out", "run") == 0
    assert not (tmp_path / "run" / f"{TEMP_PREFIX}abc123.npz").exists()
    assert (tmp_path / "run" / ".tmp-mine.txt").exists()
    capsys.readouterr()
    (tmp_path / "afile").write_text("x")
    for out, message in ((str(tmp_path / "afile"), "is not a folder"),
                         (str(tmp_path / "afile" / "sub"), "which is a file"),
                         ("/proc/striate-no-such/out", "cannot write into --out")):
        assert _train("--epochs", "1", "--out", out) == 2
        captured = capsys.readouterr()
        assert message in _one_error_line(captured.err, "train")
        assert "epoch" not in captured.out  # refused before training


def test_a_full_disk_is_one_line_and_the_files_stay_whole(tmp_path, capsys, monkeypatch):
    assert _train("--epochs", "1", "--out", "r") == 0
    before = (tmp_path / "r" / "checkpoint.npz").read_bytes()

    def full(path, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st.training.checkpoint, "atomic_save_npz", full)
    capsys.readouterr()
    assert _train("--resume", "r/checkpoint.npz", "--epochs", "2") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "No space left on device" in line and "intact" in line
    assert (tmp_path / "r" / "checkpoint.npz").read_bytes() == before
    assert st.training.load_checkpoint(tmp_path / "r" / "checkpoint.npz").epoch == 1


def test_continuing_a_run_replans_the_schedule_without_a_jump(tmp_path, capsys):
    assert _train("--epochs", "2", "--out", "r", "--lr", "0.05") == 0
    assert _train("--resume", "r/checkpoint.npz", "--epochs", "4") == 0
    lrs = [float(r["lr"]) for r in csv.DictReader(open("r/log.csv"))]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.025)  # cosine over 2 epochs
    # the finished run goes on from its last rate down to zero at epoch 4, never back up to 0.05
    assert lrs[2] == pytest.approx(0.025) and lrs[3] == pytest.approx(0.0125)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    # an interrupted run resumed to its own total is the planned run (bit-exact, see test_training)
    assert _train("--epochs", "3", "--out", "s") == 0
    full = [float(r["lr"]) for r in csv.DictReader(open("s/log.csv"))]
    assert _train("--epochs", "3", "--out", "t") == 0
    os.remove("t/metrics.json")
    capsys.readouterr()
    assert _train("--resume", "t/checkpoint.npz", "--epochs", "2") == 2  # cannot go backwards
    assert "already trained 3 epochs" in _one_error_line(capsys.readouterr().err, "train")
    assert full == [float(r["lr"]) for r in csv.DictReader(open("t/log.csv"))]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "re-planned" in capsys.readouterr().out


# ------------------------------------------------------------------------- a run remembers its data
def test_resume_and_evaluate_reuse_the_data_dir(tmp_path, capsys):
    data = _write_idx_set(tmp_path / "mydata")
    assert _train("--dataset", "mnist", "--data-dir", data, "--no-verify", "--epochs", "1", "--out", "m") == 0
    ckpt = st.training.load_checkpoint("m/checkpoint.npz")
    assert ckpt.meta["data_dir"] == os.path.abspath(data) and ckpt.meta["dataset"] == "mnist"
    metrics = json.loads(open("m/metrics.json").read())
    assert metrics["data_dir"] == os.path.abspath(data) and metrics["config"]["verify"] is False
    os.chdir(tmp_path / "mydata")  # from anywhere: the path is absolute
    assert _train("--resume", str(tmp_path / "m" / "checkpoint.npz"), "--epochs", "2") == 0
    assert st.training.load_checkpoint(tmp_path / "m" / "checkpoint.npz").epoch == 2
    # evaluate needs only the test files
    os.remove(os.path.join(data, "train-images-idx3-ubyte.gz"))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "m" / "checkpoint.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 20


# --------------------------------------------------------------------------- one name, one recipe
@pytest.mark.parametrize("spelling,name", [
    ("fashion-mnist", "fashion_mnist"), ("fashionmnist", "fashion_mnist"), ("FashionMNIST", "fashion_mnist"),
    ("Fashion_MNIST", "fashion_mnist"), ("cifar-10", "cifar10"), ("CIFAR10", "cifar10"), ("MNIST", "mnist"),
    ("Digits", "digits"),
])
def test_dataset_names_are_normalised_in_one_place(spelling, name):
    assert datasets.canonical_name(spelling) == name
    assert common.dataset_key(spelling) == name
    assert common.recipe_for(spelling) == common.RECIPES[name]


def test_fashion_spelling_trains_the_fashion_recipe(tmp_path):
    data = _write_idx_set(tmp_path / "f")
    assert _train("--dataset", "Fashion-MNIST", "--data-dir", data, "--no-verify", "--epochs", "1", "--out", "f") == 0
    config = json.loads(open("f/metrics.json").read())["config"]
    recipe = common.RECIPES["fashion_mnist"]
    assert config["dataset"] == "fashion_mnist" and config["model"] == recipe["model"] == "fashion_cnn"
    assert config["batch_size"] == recipe["batch_size"] and config["augment"] == recipe["augment"]
    assert recipe["warmup"] == 1 and config["warmup"] == 0  # the recipe's warm-up shortened for a 1-epoch run


def test_models_optimizers_augmentations_match_forgivingly(tmp_path, capsys):
    assert _train("--epochs", "1", "--model", "Digits-CNN", "--optimizer", "SGD", "--augment", "Crop",
                  "--schedule", "Cosine", "--out", "a") == 0
    config = json.loads(open("a/metrics.json").read())["config"]
    assert (config["model"], config["optimizer"], config["augment"], config["schedule"]) == \
        ("digits_cnn", "sgd", "crop", "cosine")
    for argv, message in ((["--optimizer", "adamm"], "Did you mean 'adam'?"),
                          (["--model", "LeNet-6"], "Did you mean 'lenet5'?"),
                          (["--augment", "flipp"], "Did you mean 'flip'?"),
                          (["--dataset", "fashion-mnits"], "Did you mean 'fashion_mnist'?")):
        assert _train("--epochs", "1", "--out", "b", *argv) == 2
        assert message in _one_error_line(capsys.readouterr().err, "train")
    assert main(["summary", "LeNet-5"]) == 0


def test_data_dir_without_dataset_is_recognised_or_refused(tmp_path, capsys, monkeypatch):
    unknown = _write_idx_set(tmp_path / "u")
    assert _train("--data-dir", unknown, "--epochs", "1") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "neither MNIST's nor Fashion-MNIST's" in line and "--dataset" in line
    os.makedirs("empty")
    assert _train("--data-dir", "empty", "--epochs", "1") == 2
    assert "without --dataset" in _one_error_line(capsys.readouterr().err, "train")
    assert not os.path.exists("runs")  # the embedded digits were not trained instead
    # files whose SHA-256 are the published MNIST ones are recognised as MNIST
    monkeypatch.setitem(datasets.DATASETS, "mnist", _published_as(datasets.DATASETS["mnist"], unknown))
    assert datasets.identify_files(unknown) == ("mnist", "idx")
    assert common.dataset_from_files(unknown) == "mnist"


def _published_as(info, folder):
    """``info`` with the files of ``folder`` as its published ones."""
    files = tuple(dataclasses.replace(f, sha256=datasets.sha256_file(os.path.join(folder, f.filename)),
                                      raw_sha256=None) for f in info.files)
    return dataclasses.replace(info, files=files)


@needs_mnist
def test_real_mnist_folder_is_recognised():
    assert common.dataset_from_files(MNIST_DIR) == "mnist"


def test_local_files_are_checked_against_the_published_sha256(tmp_path, capsys, monkeypatch):
    mine = _write_idx_set(tmp_path / "mine")
    monkeypatch.setitem(datasets.DATASETS, "mnist", _published_as(datasets.DATASETS["mnist"], mine))
    assert len(st.data.load_dataset("mnist", data_dir=mine).y_train) == 60  # the published files load
    with pytest.raises(ValueError, match="it is mnist's train-images-idx3-ubyte.gz") as e:
        st.data.load_dataset("fashion_mnist", data_dir=mine)
    assert "not fashion_mnist's published" in str(e.value) and "verify=False" in str(e.value)
    assert len(st.data.load_dataset("fashion_mnist", data_dir=mine, verify=False).y_test) == 20
    other = _write_idx_set(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="not mnist's published"):
        st.data.load_dataset("mnist", data_dir=other)
    assert _train("--dataset", "fashion_mnist", "--data-dir", mine, "--epochs", "1") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "it is mnist's" in line and "--no-verify" in line and not os.path.exists("runs")


@needs_mnist
def test_real_mnist_files_refused_as_fashion_mnist(capsys):
    assert _train("--dataset", "fashion_mnist", "--data-dir", MNIST_DIR, "--epochs", "1") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "not fashion_mnist's published train-images-idx3-ubyte.gz" in line and "it is mnist's" in line


def test_gunzipped_mnist_copy_is_verified(tmp_path, monkeypatch):
    # the SHA-256 of the gunzipped files are recorded too, so a gunzipped copy can be checked
    mine = _write_idx_set(tmp_path / "mine")
    info = _published_as(datasets.DATASETS["mnist"], mine)
    raw = tmp_path / "raw"
    os.makedirs(raw)
    files = []
    for f in info.files:
        data = gzip.decompress(open(os.path.join(mine, f.filename), "rb").read())
        (raw / f.filename[:-3]).write_bytes(data)
        files.append(dataclasses.replace(f, raw_sha256=__import__("hashlib").sha256(data).hexdigest()))
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(info, files=tuple(files)))
    assert len(st.data.load_dataset("mnist", data_dir=str(raw)).y_train) == 60
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(20)))
    with pytest.raises(ValueError, match="is not mnist's published t10k-labels"):
        st.data.load_dataset("mnist", data_dir=str(raw))


# ---------------------------------------------------------------------------------- no traceback
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    assert main(["train", "--epochs", "1", "--out", str(out), "-q"]) == 0
    return out


@pytest.mark.parametrize("argv,message", [
    (["--seed", "-1"], "--seed must be an integer in 0 .."),
    (["--seed", str(2**40)], "--seed must be an integer in 0 .."),
    (["--warmup", "3", "--epochs", "3"], "--warmup must be shorter than the run"),
    (["--augment", "crop", "--crop-padding", "8"], "--crop-padding 8 is as large as the 8x8 images"),
    (["--weight-decay", "nan"], "--weight-decay must be >= 0"),
])
def test_settings_that_cannot_work_are_refused_up_front(argv, message, capsys):
    assert _train("--out", "x", *argv) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err, "train")
    assert not os.path.exists(os.path.join("x", "checkpoint.npz"))


@pytest.mark.parametrize("argv,side", [
    (["--model", "resnet20"], "--model resnet20 differs from the run being resumed (digits_cnn"),
    (["--optimizer", "adam"], "--optimizer adam differs from the run being resumed (sgd"),
    (["--dataset", "mnist"], "--dataset mnist differs from the run being resumed (digits"),
])
def test_resume_mismatch_is_refused_naming_both_sides(digits_run, argv, side, capsys):
    before = (digits_run / "checkpoint.npz").read_bytes()
    assert _train("--resume", str(digits_run / "checkpoint.npz"), "--epochs", "3", *argv) == 2
    assert side in _one_error_line(capsys.readouterr().err, "train")
    assert (digits_run / "checkpoint.npz").read_bytes() == before


def test_resume_with_another_image_folder_is_refused(tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    for root in ("a", "b"):
        for cls in ("x", "y"):
            os.makedirs(os.path.join(root, cls))
            for k in range(5):
                pil.fromarray(np.full((8, 8), 40 * k, np.uint8)).save(os.path.join(root, cls, f"{k}.png"))
    assert _train("--dataset", "a", "--epochs", "1", "--out", "ra") == 0
    capsys.readouterr()
    assert _train("--resume", "ra/checkpoint.npz", "--dataset", "b", "--epochs", "2") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert os.path.abspath("b") in line and os.path.abspath("a") in line


def test_nan_loss_is_one_line_without_numpy_warnings(capsys):
    assert _train("--lr", "1e12", "--epochs", "2", "--out", "n") == 2
    err = capsys.readouterr().err
    line = _one_error_line(err, "train")
    assert "loss became" in line and "RuntimeWarning" not in err


def _png(path, size, value=128):
    from PIL import Image
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return str(path)


def test_predict_decompression_bomb_and_many_files(digits_run, tmp_path, capsys, monkeypatch):
    pil = pytest.importorskip("PIL.Image")
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS (a 14000x14000 PNG at the default limit);
    # a lower limit reproduces the same error with a small file.
    big = _png(tmp_path / "big.png", (300, 300))
    good = str(tmp_path / "good.png")   # not flat: a blank picture is refused
    pil.fromarray(np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))).save(good)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    monkeypatch.setattr(pil, "MAX_IMAGE_PIXELS", 10_000)
    ckpt = str(digits_run / "weights.npz")
    assert main(["predict", big, "--checkpoint", ckpt]) == 2
    assert "too large to decode safely" in _one_error_line(capsys.readouterr().err, "predict")
    # many files: keeps going past the unreadable ones, reports each, exits non-zero at the end
    assert main(["predict", big, good, str(notes), good, "--checkpoint", ckpt]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and "big.png" in errors[0] and "notes.png" in errors[1]
    assert "2 of 4 image(s) could not be read" in errors[2]
    assert [line.split()[0] for line in captured.out.strip().splitlines()] == [good, good]


def test_decompression_bomb_inside_a_training_folder(tmp_path, capsys, monkeypatch):
    pil = pytest.importorskip("PIL.Image")
    for cls in ("a", "b"):
        os.makedirs(os.path.join("imgs", cls))
        for k in range(4):
            _png(os.path.join("imgs", cls, f"{k}.png"), (8, 8), 30 * k)
    _png(os.path.join("imgs", "a", "huge.png"), (300, 300))
    monkeypatch.setattr(pil, "MAX_IMAGE_PIXELS", 10_000)
    assert _train("--dataset", "imgs", "--epochs", "1") == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "huge.png" in line and "too large to decode safely" in line


def test_degenerate_image_folders(tmp_path, capsys):
    pytest.importorskip("PIL.Image")
    os.makedirs("one/only")
    for k in range(4):
        _png(f"one/only/{k}.png", (8, 8), k)
    assert _train("--dataset", "one", "--epochs", "1") == 2
    assert "at least 2 classes" in _one_error_line(capsys.readouterr().err, "train")
    os.makedirs("hole/a"), os.makedirs("hole/b"), os.makedirs("hole/empty")
    for cls in ("a", "b"):
        for k in range(5):
            _png(f"hole/{cls}/{k}.png", (8, 8), 20 * k)
    assert _train("--dataset", "hole", "--epochs", "1") == 2
    assert "'empty' hold no images" in _one_error_line(capsys.readouterr().err, "train")
    os.rmdir("hole/empty")
    os.makedirs("hole/rare")
    _png("hole/rare/0.png", (8, 8), 3)  # one image: it cannot be in both splits
    assert _train("--dataset", "hole", "--epochs", "1", "--out", "h") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("striate: warning: ") and "'rare' have no test images" in err[0]


def test_summary_of_a_huge_input_is_refused_without_allocating(capsys):
    assert main(["summary", "vgg16", "--input", "20000x20000x3"]) == 2
    line = _one_error_line(capsys.readouterr().err, "summary")
    assert "would need about" in line and "GB" in line and "20000x20000x3" in line


@pytest.mark.parametrize("command", ["summary vgg16", "models"])  # a long output, a short one (flushed at the end)
def test_broken_pipe_is_quiet(command):
    env = dict(os.environ, PYTHONPATH=ROOT)
    # the reader has gone (as `| head` after its lines); striate must stop without a traceback
    code = ("import sys, os; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
            f"from striate.cli.main import main; sys.exit(main({command.split()!r}))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


# ---------------------------------------------------------------------------- test-time augmentation
def test_tta_uses_only_the_runs_own_augmentations():
    from striate.cli.evaluate_cmd import _tta

    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    meta = {"input_shape": [8, 8, 1]}
    crops = _tta(meta, 1, False, None)(x)
    assert crops.shape == (5, 3, 8, 8, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = [padded[:, t:t + 8, s:s + 8] for t in range(3) for s in range(3)]
    for view in crops:  # every view is an unmirrored crop of the padded images
        assert any(np.array_equal(view, w) for w in windows)
    assert np.array_equal(crops[4], x)  # the centre crop is the image itself
    mirrored = _tta(meta, 1, True, None)(x)
    assert mirrored.shape == (10, 3, 8, 8, 1) and np.array_equal(mirrored[9], x[:, :, ::-1])
    assert _tta(meta, 0, False, None)(x).shape == (1, 3, 8, 8, 1)  # no augmentation: the image only


def test_tta_on_a_run_without_augmentation_equals_plain_evaluation(digits_run, capsys):
    ckpt = str(digits_run / "weights.npz")
    assert main(["evaluate", "--checkpoint", ckpt, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--checkpoint", ckpt, "--tta", "--json"]) == 0
    tta = json.loads(capsys.readouterr().out)
    assert tta["accuracy"] == plain["accuracy"] and tta["loss"] == pytest.approx(plain["loss"], rel=1e-5)


# ------------------------------------------------------------------------------- fast by default
def test_the_readme_install_brings_the_fast_path():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {e.split(">")[0].split("=")[0].split("[")[0] for e in extras["cli"]}
    assert {"numba", "threadpoolctl"} <= names
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert 'pip install -e ".[cli]" && striate train' in readme


def test_choosing_lenet5_on_mnist_takes_its_own_rate():
    from striate.cli.main import build_parser
    from striate.cli.train_config import resolve_config

    def resolve(*argv):
        return resolve_config(build_parser().parse_args(["train", *argv]))

    recipe = common.RECIPES["mnist"]
    default = resolve("--dataset", "mnist")
    assert (default["model"], default["lr"], default["epochs"]) == ("mnist_cnn", recipe["lr"], recipe["epochs"])
    lenet = resolve("--dataset", "MNIST", "--model", "LeNet-5")
    assert (lenet["model"], lenet["lr"], lenet["epochs"]) == ("lenet5", 0.02, 10)
    assert resolve("--dataset", "mnist", "--model", "lenet5", "--lr", "0.05")["lr"] == 0.05  # options win
    assert "models" not in lenet
