"""The Train view in a real headless browser (Debian's Chromium driven by Playwright): start a run, see
the curves move, change the rate and see the change logged, pause and resume, race optimisers; and a
server killed mid-run whose run the next server offers to resume and the command line finishes.
It skips, saying why, only where Chromium is not installed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("flask")
pytest.importorskip("sklearn")  # the embedded digits ship inside scikit-learn

from serve_helpers import chromium_browser, ctrl_c_works, serve_app  # noqa: E402

TINY = "conv 4 3 relu, pool 2, dense 10"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def server(tmp_path):
    import striate as st
    from striate.serve import ServedModel, create_app

    app = create_app(ServedModel(st.models.lenet5(rng=0), (28, 28, 1), name="lenet5"))
    app.config["STRIATE_RUNS_DIR"] = str(tmp_path / "runs")
    with serve_app(app) as url:
        yield url, app
        for run in app.extensions["striate.serve.train"].runs.values() if "striate.serve.train" in app.extensions else []:
            if run.status in ("running", "paused"):
                run.stop()
            run.join(60)


@pytest.fixture
def page():
    with chromium_browser() as browser:
        p = browser.new_page(viewport={"width": 1360, "height": 1000})
        p.problems = []
        p.on("pageerror", lambda e: p.problems.append(f"page error: {e}"))
        p.on("console", lambda m: p.problems.append(f"console: {m.text}") if m.type == "error" else None)
        yield p


def steps(page) -> int:
    return int(page.evaluate("Number(document.body.dataset.steps || 0)"))


def inked(page, canvas_id: str) -> int:
    """How many pixels of a canvas are not white: a chart with lines on it has many."""
    return page.evaluate("""(id) => { const c = document.getElementById(id);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) n++; return n; }""",
                         canvas_id)


def test_start_watch_change_the_rate_pause_and_resume(server, page, tmp_path):
    url, app = server
    page.goto(url + "/train")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("nav a.active").inner_text() == "Train"
    # a bad layer list: one line naming the layer, and no run
    page.fill("#model", "conv 4 3 relu, pool two, dense 10")
    page.click("#start")
    page.wait_for_selector("#setup-error:not([hidden])")
    assert "layer 2" in page.inner_text("#setup-error")
    assert all("400" in p for p in page.problems)       # the browser logs the refused request, nothing else
    page.problems.clear()
    page.fill("#model", TINY)
    page.fill("#epochs", "300")
    page.fill("#k-batch_size", "8")
    page.click("#start")
    page.wait_for_selector("#summary:not([hidden])")
    assert "Conv2D" in page.inner_text("#summary")
    page.wait_for_function("Number(document.body.dataset.steps || 0) > 20", timeout=60000)
    first, ink = steps(page), inked(page, "loss-chart")
    page.wait_for_function(f"Number(document.body.dataset.steps) > {first + 50}", timeout=60000)
    page.wait_for_timeout(600)
    assert inked(page, "loss-chart") > ink > 500          # the curve grows as the steps come in
    # a new rate, logged with its step
    page.fill("#k-lr", "0.01")
    page.click("#apply")
    page.wait_for_selector("#changes li:has-text('lr')")
    change = page.inner_text("#changes li")
    step_of_change = int(re.search(r"step (\d+)", change).group(1))
    assert "0.05 → 0.01" in change and step_of_change > first
    # pause: the steps stand still; resume: they move again
    page.wait_for_function("Number(document.body.dataset.polls || 0) > 0")
    page.click("#pause")
    page.wait_for_selector("#status[data-status='paused']")
    page.wait_for_timeout(700)
    held = steps(page)
    page.wait_for_timeout(1200)
    assert steps(page) == held
    page.click("#resume")
    page.wait_for_selector("#status[data-status='running']")
    page.wait_for_function(f"Number(document.body.dataset.steps) > {held + 20}", timeout=60000)
    # what else the page draws once an epoch has ended
    page.wait_for_function("document.getElementById('cm-note').textContent.includes('after epoch')", timeout=60000)
    for canvas in ("acc-chart", "filters", "probe", "confusion", "lh-w-0", "lh-g-0", "flow-chart"):
        assert inked(page, canvas) > 20, canvas
    assert page.locator("#layers tr").count() == 2
    shots = os.environ.get("STRIATE_SCREENSHOT_DIR")
    if shots:
        page.screenshot(path=os.path.join(shots, "serve_train.png"), full_page=True)
    page.click("#stop")
    page.wait_for_selector("#status[data-status='stopped']")
    run = next(iter(app.extensions["striate.serve.train"].runs.values()))
    assert run.changes[0]["step"] == step_of_change and run.opt.lr == 0.01
    assert page.problems == []


def test_race_draws_one_curve_per_optimiser(server, page):
    url, _ = server
    page.goto(url + "/train")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#model", TINY)
    page.fill("#epochs", "2")
    page.click("#race")
    page.wait_for_selector("#race-card:not([hidden])")
    entries = "[...document.querySelectorAll('#race-legend > span')]"
    page.wait_for_function(f"{entries}.length === 3 && {entries}.every(s => s.textContent.includes('finished'))",
                           timeout=120000)
    legend = page.inner_text("#race-legend")
    assert "SGD+momentum" in legend and "Adam" in legend and legend.count("val acc") == 3
    assert inked(page, "race-loss") > 500 and inked(page, "race-acc") > 100
    assert page.problems == []


def _serve(runs, cache):
    env = dict(os.environ, PYTHONPATH=ROOT, STRIATE_CACHE=cache)
    proc = subprocess.Popen([sys.executable, "-m", "striate", "serve", "--port", "0", "--runs", str(runs), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            preexec_fn=ctrl_c_works)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert found, line
    return proc, f"http://127.0.0.1:{found.group(1)}"


def _call(url, doc=None):
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_a_killed_server_loses_one_epoch_at_most_and_the_cli_resumes(tmp_path):
    from serve_helpers import trained_cache

    from striate.cli.main import main
    from striate.training import load_checkpoint

    runs = tmp_path / "runs"
    proc, url = _serve(runs, trained_cache())
    try:
        run_id = _call(url + "/api/train/start", {"model": TINY, "epochs": 400, "batch_size": 8})["id"]
        end = time.time() + 60
        while len(_call(f"{url}/api/train/runs/{run_id}?lite=1")["history"].get("loss", [])) < 2:
            assert time.time() < end
            time.sleep(0.05)
        snap = _call(f"{url}/api/train/runs/{run_id}?lite=1")
    finally:
        proc.send_signal(signal.SIGKILL)           # no goodbye: the server dies mid-epoch
        proc.wait(30)
    folder = snap["folder"]
    saved = load_checkpoint(os.path.join(folder, "checkpoint.npz")).epoch
    assert saved >= len(snap["history"]["loss"]) >= 2    # every finished epoch is on disk
    # the next server offers to resume it
    proc, url = _serve(runs, trained_cache())
    try:
        unfinished = _call(url + "/api/train/options")["unfinished"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert [u["path"] for u in unfinished] == [folder] and unfinished[0]["epoch"] == saved
    # and the command line finishes it (a shorter total than planned is refused; a larger one continues)
    assert main(["train", "--resume", os.path.join(folder, "checkpoint.npz"), "--epochs", str(saved + 1), "-q"]) == 0
    metrics = json.loads(open(os.path.join(folder, "metrics.json")).read())
    assert metrics["epochs"] == saved + 1 and metrics["test_accuracy"] > 0.5


def test_a_reloaded_page_follows_the_run_in_progress(server, page):
    url, app = server
    page.goto(url + "/train")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#model", TINY)
    page.fill("#epochs", "300")
    page.click("#start")
    page.wait_for_function("Number(document.body.dataset.steps || 0) > 10", timeout=60000)
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#status[data-status='running']")
    held = steps(page)
    page.wait_for_function(f"Number(document.body.dataset.steps) > {held + 10}", timeout=60000)
    page.click("#stop")
    page.wait_for_selector("#status[data-status='stopped']")
    assert page.problems == []
