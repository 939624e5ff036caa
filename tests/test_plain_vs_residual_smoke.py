"""benchmarks/plain_vs_residual.py runs end to end (a tiny run on the embedded digits: seconds)."""
import importlib.util
import json
import os

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "plain_vs_residual.py")


def _script():
    spec = importlib.util.spec_from_file_location("plain_vs_residual", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_figures_and_numbers(tmp_path, capsys):
    module = _script()
    module.main(["--epochs", "1", "--train-size", "100", "--test-size", "50", "--batch-size", "50", "--probe", "8",
                 "--grad-every", "1", "--models", "plain-20,ResNet-20", "--out", str(tmp_path)])
    assert "data: digits, 100 training images (subset), 50 test, 1 epochs" in capsys.readouterr().out
    for name in ("training_error.png", "gradient_norms.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 1000, name
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["data"] == "digits" and results["train_images"] == 100
    for label in ("plain-20", "ResNet-20"):
        r = results["results"][label]
        assert len(r["layers"]) == 20 and len(r["init"]["grad_norm"]) == 20 and len(r["train_error"]) == 1
        assert r["grad_steps"] == [1, 2] and len(r["grad_norms"][0]) == 20
        assert 0 <= r["train_error"][0] <= 1 and r["params"] == 269_722 - 432 + 144  # conv1 takes 1 channel, not 3


def test_linear_warmup_raises_the_rate_every_step(tmp_path):
    module = _script()
    # 100 images in batches of 50: two steps an epoch; one warm-up epoch, then lr itself
    module.main(["--epochs", "2", "--train-size", "100", "--test-size", "50", "--batch-size", "50", "--probe", "8",
                 "--warmup", "linear", "--milestones", "", "--models", "ResNet-20", "--out", str(tmp_path)])
    r = json.loads((tmp_path / "results.json").read_text())["results"]["ResNet-20"]
    assert r["step_lr"] == pytest.approx([0.01, 0.055, 0.1, 0.1])


def test_replot_draws_the_figures_again_from_results_json(tmp_path, capsys):
    module = _script()
    module.main(["--epochs", "1", "--train-size", "100", "--test-size", "50", "--batch-size", "50", "--probe", "8",
                 "--models", "ResNet-20", "--out", str(tmp_path)])
    for name in ("training_error.png", "gradient_norms.png"):
        (tmp_path / name).unlink()
    module.main(["--replot", "--out", str(tmp_path)])
    for name in ("training_error.png", "gradient_norms.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "from " + str(tmp_path / "results.json") in capsys.readouterr().out
    with pytest.raises(SystemExit, match="does not exist"):
        module.main(["--replot", "--out", str(tmp_path / "elsewhere")])
