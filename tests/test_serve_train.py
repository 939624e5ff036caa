"""The Train view's API: live runs started, paused, resumed, re-tuned and stopped through Flask's test
client; bad input is a 400 with one JSON line; a run folder made by the page is one that
``striate train --resume`` continues."""
import json
import time

import pytest

pytest.importorskip("flask")
pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

import striate as st  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.serve import ServedModel, create_app  # noqa: E402

TINY = "conv 4 3 relu, pool 2, dense 10"


@pytest.fixture
def client(tmp_path):
    app = create_app(ServedModel(st.models.lenet5(rng=0), (28, 28, 1), name="lenet5"))
    app.config["STRIATE_RUNS_DIR"] = str(tmp_path / "runs")
    c = app.test_client()
    yield c
    for run in app.extensions.get("striate.serve.train").runs.values() if "striate.serve.train" in app.extensions \
            else []:
        if run.status in ("running", "paused"):
            run.stop()
        run.join(60)


def post(client, url, doc=None, raw=None):
    if raw is not None:
        return client.post(url, data=raw, content_type="application/json")
    return client.post(url, json=doc)


def wait_for(client, run_id, cond, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        snap = client.get(f"/api/train/runs/{run_id}").json
        if cond(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"timed out; last snapshot status {snap['status']}, step {snap['step']}")


def test_options_offer_the_digits_and_defaults(client):
    r = client.get("/api/train/options")
    assert r.status_code == 200
    assert [d["name"] for d in r.json["datasets"]] == ["digits"]
    assert r.json["defaults"]["dataset"] == "digits" and r.json["unfinished"] == []


def test_check_shows_the_summary_and_names_the_bad_layer(client):
    r = post(client, "/api/train/check", {"dataset": "digits", "model": TINY})
    assert r.status_code == 200 and r.json["params"] == 4 * 9 + 4 + 4 * 3 * 3 * 10 + 10
    assert "Conv2D" in r.json["summary"] or "conv" in r.json["summary"].lower()
    bad = post(client, "/api/train/check", {"dataset": "digits", "model": "conv 4 3 relu, pool two, dense 10"})
    assert bad.status_code == 400 and "layer 2" in bad.json["error"] and "\n" not in bad.json["error"]
    wrong = post(client, "/api/train/check", {"dataset": "digits", "model": "conv 4 3 relu, pool 2, dense 3"})
    assert wrong.status_code == 400 and "dense 10" in wrong.json["error"]
    assert post(client, "/api/train/check", {"dataset": "cifar", "model": TINY}).json["error"].startswith("dataset")


def test_start_pause_set_resume_stop(client, tmp_path):
    r = post(client, "/api/train/start", {"model": TINY, "epochs": 300, "lr": 0.05, "batch_size": 8})
    assert r.status_code == 200, r.json
    run_id = r.json["id"]
    wait_for(client, run_id, lambda s: s["step"] >= 2)
    assert post(client, f"/api/train/runs/{run_id}/pause").json["status"] == "paused"
    time.sleep(0.3)
    held = client.get(f"/api/train/runs/{run_id}").json["step"]
    r = post(client, f"/api/train/runs/{run_id}/set", {"lr": 0.02, "momentum": 0.5})
    assert r.status_code == 200 and r.json["settings"]["lr"] == 0.02
    time.sleep(0.3)
    assert client.get(f"/api/train/runs/{run_id}").json["step"] == held
    assert post(client, f"/api/train/runs/{run_id}/resume").json["status"] == "running"
    snap = wait_for(client, run_id, lambda s: s["step"] > held)
    changes = {c["setting"]: c for c in snap["changes"]}
    # the gradient flow of the first step stays beside the latest one, one norm per weight tensor
    flow = client.get(f"/api/train/runs/{run_id}").json
    assert flow["flow_start"]["step"] >= 1 and len(flow["flow_start"]["grad_norm"]) == len(flow["layers"])
    assert all(v > 0 for v in flow["flow_start"]["grad_norm"])
    assert changes["lr"]["step"] == held and changes["lr"]["new"] == 0.02 and changes["momentum"]["new"] == 0.5
    part = client.get(f"/api/train/runs/{run_id}?since={held}&lite=1").json
    assert part["steps_from"] == held and part["steps"][0][0] == held + 1 and "layers" not in part
    assert post(client, f"/api/train/runs/{run_id}/stop").status_code == 200
    snap = wait_for(client, run_id, lambda s: s["status"] in ("stopped", "finished"))
    listing = client.get("/api/train/runs").json
    assert listing["runs"][0]["id"] == run_id and listing["runs"][0]["folder"].startswith(str(tmp_path / "runs"))


@pytest.mark.parametrize("url, doc, words", [
    ("/api/train/start", {"model": TINY, "lr": -1}, "lr must be > 0"),
    ("/api/train/start", {"model": TINY, "optimizer": "rmsprop"}, "optimizer must be one of"),
    ("/api/train/start", {"model": TINY, "epochs": 0}, "epochs must be >= 1"),
    ("/api/train/start", {"model": TINY, "learning_rate": 0.1}, "unknown setting 'learning_rate'"),
    ("/api/train/start", {"model": "conv 4 3 relu, pool 2, densse 10"}, "layer 3"),
    ("/api/train/start", {"model": "resnet99"}, "resnet99"),
    ("/api/train/race", {"model": TINY, "entrants": [{"optimizer": "sgd"}]}, "2 to"),
    ("/api/train/resume", {"name": "nothing"}, "no unfinished run named 'nothing'"),
])
def test_bad_input_is_a_one_line_400(client, url, doc, words):
    r = post(client, url, doc)
    assert r.status_code == 400, r.json
    assert list(r.json) == ["error"] and words in r.json["error"] and "\n" not in r.json["error"]


def test_bad_controls_are_400_and_unknown_runs_404(client):
    assert post(client, "/api/train/start", raw="lr=1").json["error"].startswith("the request body must be a JSON")
    run_id = post(client, "/api/train/start", {"model": TINY, "epochs": 1}).json["id"]
    r = post(client, f"/api/train/runs/{run_id}/set", {"lr": "fast"})
    assert r.status_code == 400 and r.json["error"] == "lr must be a number. Received: lr='fast'."
    assert post(client, f"/api/train/runs/{run_id}/set", {"batch_size": 0}).status_code == 400
    assert post(client, f"/api/train/runs/{run_id}/jump").status_code == 400
    assert client.get(f"/api/train/runs/{run_id}?since=-1").status_code == 400
    r = client.get("/api/train/runs/r99")
    assert r.status_code == 404 and "no run 'r99'" in r.json["error"]
    wait_for(client, run_id, lambda s: s["status"] == "finished")
    r = post(client, f"/api/train/runs/{run_id}/resume")
    assert r.status_code == 400 and "only a paused run" in r.json["error"]


def test_race_runs_side_by_side_on_the_same_data_and_seed(client):
    r = post(client, "/api/train/race", {"model": TINY, "epochs": 1, "seed": 3})
    assert r.status_code == 200, r.json
    ids = r.json["runs"]
    assert len(ids) == 3
    snaps = [wait_for(client, i, lambda s: s["status"] == "finished", timeout=120) for i in ids]
    assert [s["settings"]["optimizer"] for s in snaps] == ["sgd", "sgd", "adam"]
    assert {s["settings"]["seed"] for s in snaps} == {3}
    assert [s["label"] for s in snaps] == ["SGD", "SGD+momentum", "Adam"]
    assert len({s["folder"] for s in snaps}) == 3
    assert all(len(s["history"]["val_acc"]) == 1 for s in snaps)
    # the same data and initial weights: the same number of steps; different optimisers, different losses
    assert len({s["step"] for s in snaps}) == 1
    assert len({s["history"]["loss"][0] for s in snaps}) == 3


def test_a_stopped_page_run_is_listed_resumed_and_the_cli_continues_it(client, tmp_path, capsys):
    # epochs to spare after the second stop, so that no stop lands after the last epoch on a slow machine
    run_id = post(client, "/api/train/start", {"model": TINY, "epochs": 8}).json["id"]
    wait_for(client, run_id, lambda s: len(s["history"].get("loss", [])) >= 1)
    post(client, f"/api/train/runs/{run_id}/stop")
    snap = wait_for(client, run_id, lambda s: s["status"] == "stopped")
    unfinished = client.get("/api/train/options").json["unfinished"]
    assert [u["path"] for u in unfinished] == [snap["folder"]]
    name = unfinished[0]["name"]
    # the page resumes it: the history comes back with the checkpoint
    again = post(client, "/api/train/resume", {"name": name}).json["id"]
    s = wait_for(client, again, lambda s: len(s["history"].get("loss", [])) >= 2)
    post(client, f"/api/train/runs/{again}/stop")
    wait_for(client, again, lambda s: s["status"] in ("stopped", "finished"))
    # and the command line finishes it
    ckpt = f"{snap['folder']}/checkpoint.npz"
    assert main(["train", "--resume", ckpt, "-q"]) == 0
    metrics = json.loads(open(f"{snap['folder']}/metrics.json").read())
    assert metrics["epochs"] == 8 and metrics["model"] == TINY
    assert client.get("/api/train/options").json["unfinished"] == []


def test_a_data_dir_offers_what_it_holds(tmp_path):
    import os

    from striate.serve.trainer import data_sets

    from data_paths import MNIST_DIR as mnist
    if os.path.isdir(mnist):
        assert [d["name"] for d in data_sets(mnist)] == ["digits", "mnist"]
    folder = tmp_path / "pets"
    (folder / "cat").mkdir(parents=True)
    offered = data_sets(str(folder))
    assert [d["name"] for d in offered] == ["digits", "folder"] and offered[1]["data_dir"] == str(folder)


def test_a_run_on_mnist_from_the_data_dir(tmp_path):
    import os

    from data_paths import MNIST_DIR as mnist
    if not os.path.isdir(mnist):
        pytest.skip("no MNIST copy to train on")
    app = create_app(ServedModel(st.models.lenet5(rng=0), (28, 28, 1), name="lenet5"))
    app.config.update(STRIATE_RUNS_DIR=str(tmp_path / "runs"), STRIATE_DATA_DIR=mnist)
    client = app.test_client()
    assert [d["name"] for d in client.get("/api/train/options").json["datasets"]] == ["digits", "mnist"]
    r = post(client, "/api/train/check", {"dataset": "mnist", "model": "conv 4 5 relu, pool 2, dense 10"})
    assert r.json["input_shape"] == [28, 28, 1]
    run_id = post(client, "/api/train/start", {"dataset": "mnist", "model": "conv 4 5 relu, pool 2, dense 10",
                                               "epochs": 1, "batch_size": 64}).json["id"]
    snap = wait_for(client, run_id, lambda s: s["step"] >= 3 and s["probe"] is not None)
    assert snap["probe"]["image"]["shape"] == [28, 28] and snap["probe"]["maps"][0]["shape"] == [4, 24, 24]
    post(client, f"/api/train/runs/{run_id}/stop")
    wait_for(client, run_id, lambda s: s["status"] == "stopped")
