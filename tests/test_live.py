"""LiveRun: training in a background thread that can be paused, resumed, stopped and re-tuned, writing a
run folder that ``striate train --resume`` continues."""
import csv
import json
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

from striate.cli.main import main  # noqa: E402
from striate.training import load_checkpoint  # noqa: E402
from striate.training.live import LiveRun, check_settings, unfinished_runs  # noqa: E402

TINY = "conv 4 3 relu, pool 2, dense 10"


def wait_for(cond, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_a_run_trains_pauses_resumes_and_logs_changes(tmp_path):
    run = LiveRun(tmp_path / "a", model=TINY, epochs=2, lr=0.05, batch_size=4)   # ~650 steps: time to pause
    run.start()
    assert wait_for(lambda: run.snapshot()["step"] >= 3)
    run.pause()
    time.sleep(0.3)                                     # the thread is parked between two batches
    held = run.snapshot()["step"]
    time.sleep(0.4)
    assert run.snapshot()["step"] == held and run.snapshot()["status"] == "paused"
    run.set(lr=0.01, weight_decay=1e-4)
    run.resume()
    run.join(120)
    s = run.snapshot()
    assert s["status"] == "finished", s["error"]
    assert s["step"] > held
    logged = {c["setting"]: c for c in s["changes"]}
    assert logged["lr"]["old"] == 0.05 and logged["lr"]["new"] == 0.01 and logged["lr"]["step"] == held
    assert logged["weight_decay"]["new"] == 1e-4
    assert run.opt.lr == 0.01 and run.opt.param_groups[0]["weight_decay"] == 1e-4
    assert len(s["history"]["val_acc"]) == 2 and s["history"]["val_acc"][-1] > 0.5
    assert [st for st, _ in s["steps"]] == list(range(1, s["step"] + 1))
    # what the page draws
    conv = s["layers"][0]
    assert conv["shape"] == [3, 3, 1, 4] and conv["weight_norm"] > 0 and conv["grad_norm"] > 0
    assert 0 < conv["update_ratio"] < 1 and sum(conv["weight_hist"]["counts"]) == 3 * 3 * 1 * 4
    assert s["filters"]["shape"] == [4, 3, 3] and len(s["filters"]["values"]) == 36
    assert s["probe"]["maps"][0]["shape"] == [4, 6, 6]   # conv 3, no padding, on 8x8
    cm = np.array(s["confusion"]["matrix"])
    assert cm.shape == (10, 10) and s["confusion"]["epoch"] == 2
    assert cm.trace() / cm.sum() == pytest.approx(s["history"]["val_acc"][-1])
    # the run folder is an ordinary one
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["checkpoint.npz", "checkpoint_best.npz", "log.csv", "metrics.json", "weights.npz"])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(s["test"]["accuracy"])
    assert metrics["config"]["lr"] == 0.01
    # a resumed run goes on with the settings in force when its checkpoint was written
    assert load_checkpoint(tmp_path / "a" / "checkpoint.npz").meta["config"]["weight_decay"] == 1e-4
    with open(tmp_path / "a" / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_batch_size_changes_from_the_next_epoch(tmp_path):
    run = LiveRun(tmp_path / "b", model=TINY, epochs=2, batch_size=64, val_split=0.1)
    run.set(batch_size=128)                      # before the start: the run begins with it
    run.start().join(120)
    s = run.snapshot()
    assert s["status"] == "finished" and s["settings"]["batch_size"] == 128
    per_epoch = int(np.ceil(len(run.train.x) / 128))
    assert s["step"] == 2 * per_epoch


def test_stop_keeps_the_last_epoch_and_the_cli_resumes_it(tmp_path, capsys):
    run = LiveRun(tmp_path / "c", model=TINY, epochs=3, lr=0.05)
    run.start()
    assert wait_for(lambda: len(run.snapshot()["history"].get("loss", [])) >= 1)
    run.stop()
    run.join(60)
    assert run.snapshot()["status"] == "stopped"
    ckpt = load_checkpoint(tmp_path / "c" / "checkpoint.npz")
    assert ckpt.epoch >= 1 and not (tmp_path / "c" / "metrics.json").exists()
    found = unfinished_runs(tmp_path)
    assert [r["name"] for r in found] == ["c"] and found[0]["epochs"] == 3
    assert main(["train", "--resume", str(tmp_path / "c" / "checkpoint.npz"), "-q"]) == 0
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["model"] == TINY and metrics["test_accuracy"] > 0.5
    assert unfinished_runs(tmp_path) == []


def test_a_stopped_run_resumes_live(tmp_path):
    first = LiveRun(tmp_path / "d", model=TINY, epochs=2)
    first.start()
    assert wait_for(lambda: len(first.snapshot()["history"].get("loss", [])) >= 1)
    first.stop()
    first.join(60)
    again = LiveRun(resume=tmp_path / "d" / "checkpoint.npz")
    assert again.folder == str(tmp_path / "d") and again.epoch == 1
    again.start().join(120)
    s = again.snapshot()
    assert s["status"] == "finished", s["error"]
    assert len(s["history"]["loss"]) == 2       # the first epoch's history came back with the checkpoint


@pytest.mark.parametrize("changes, words", [
    ({"lr": 0}, "lr must be > 0"), ({"lr": "fast"}, "lr must be a number"), ({"momentum": 1.0}, "momentum must be < 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"), ({"batch_size": 2.5}, "whole number"),
    ({"dropout": 0.5}, "'dropout' cannot be changed"), ({}, "give at least one"),
])
def test_bad_settings_are_one_line_errors(changes, words):
    with pytest.raises(ValueError, match=words) as e:
        check_settings(changes)
    assert "\n" not in str(e.value)


def test_a_folder_holding_another_run_is_refused(tmp_path):
    LiveRun(tmp_path / "e", model=TINY, epochs=1).start().join(60)
    with pytest.raises(ValueError, match="holds another run"):
        LiveRun(tmp_path / "e", model=TINY, epochs=1).start()


def test_a_layer_list_that_misses_the_classes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="end it with 'dense 10'"):
        LiveRun(tmp_path / "f", model="conv 4 3 relu, pool 2, dense 7").start()
    with pytest.raises(ValueError, match="layer 2"):
        LiveRun(tmp_path / "g", model="conv 4 3 relu, pool zero, dense 10").start()


def test_a_diverging_run_fails_with_one_line(tmp_path):
    run = LiveRun(tmp_path / "h", model=TINY, epochs=2, lr=1e6, momentum=0.9)
    run.start().join(60)
    s = run.snapshot()
    assert s["status"] == "failed" and "learning rate" in s["error"] and "\n" not in s["error"]
    assert s["error"] == s["error"].strip()
