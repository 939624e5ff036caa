"""`striate explain`: prints the arithmetic of a unit (the numbers of st.vis.explain_unit), writes it
as JSON without overwriting, adds the backward pass on request; bad input gets one line, exit code 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

import striate as st
from striate.cli.main import main
from striate.training import save_weights

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Weights of a digits CNN with a recorded standardisation, and an 8x8 grayscale PNG."""
    out = tmp_path_factory.mktemp("explain")
    model = st.models.digits_cnn(rng=0)
    meta = {"model": {"name": "digits_cnn", "args": {}}, "input_shape": [8, 8, 1],
            "preprocess": {"mean": [0.3], "std": [0.4], "eps": 1e-7}}
    save_weights(out / "weights.npz", model, meta=meta)
    pixels = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(pixels).save(out / "digit.png")
    return out, model, (pixels[..., None].astype(np.float32) / np.float32(255.0) - 0.3) / np.float32(0.4 + 1e-7)


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _args(run, layer, unit, *extra):
    return ["explain", "--checkpoint", str(run[0] / "weights.npz"), "--image", str(run[0] / "digit.png"),
            "--layer", layer, "--unit", unit, *extra]


def test_prints_the_conv_arithmetic(run, capsys):
    code, out, err = _run(_args(run, "features.3", "2,5,7", "--top-k", "3"), capsys)
    assert code == 0, err
    e = st.vis.explain_unit(run[1], run[2], "features.3", (2, 5, 7), top_k=3)
    assert out.splitlines()[0] == f"features.3 (Conv2D) unit (2, 5, 7) = {e['value']:.6g}   [conv]"
    assert "patch * kernel summed over 3x3, per input channel (32 channels)" in out
    for t in e["top"]:
        assert f"channel {t['channel']}" in out and f"{t['term']:+.6g}" in out
    assert "the other 29 terms" in out and f"{e['rest']:+.6g}" in out
    assert f"+ bias {e['bias']:.6g} = {e['pre_activation']:.6g}" in out
    assert "receptive field: 5x5 input pixels" in out


def test_dense_unit_shows_the_softmax_and_the_gradient(run, capsys):
    code, out, err = _run(_args(run, "classifier.2", "4", "--gradient", "--target", "4"), capsys)
    assert code == 0, err
    g = st.vis.explain_gradient(run[1], run[2], "classifier.2", (4,), target=4)
    assert "w_i * x_i over 64 inputs" in out and "softmax: p_i = exp(z_i" in out
    assert f"backward: d logit[class 4] / d unit = {g['grad']:.6g}" in out and g["grad"] == 1.0


def test_json_holds_the_apis_numbers_and_is_not_overwritten(run, capsys, tmp_path):
    path = tmp_path / "unit.json"
    code, out, err = _run(_args(run, "features.6", "1,2,3", "--json", str(path), "--gradient"), capsys)
    assert code == 0, err
    data = json.loads(path.read_text())
    e = st.vis.explain_unit(run[1], run[2], "features.6", (1, 2, 3))
    assert data["kind"] == "max_pool" and data["value"] == e["value"] and data["index"] == [1, 2, 3]
    assert data["patch"] == e["patch"].tolist() and data["gradient"]["grad"] == pytest.approx(
        st.vis.explain_gradient(run[1], run[2], "features.6", (1, 2, 3))["grad"])
    code, _, err = _run(_args(run, "features.6", "1,2,3", "--json", str(path)), capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    assert _run(_args(run, "features.0", "0,0,0", "--json", str(path), "--overwrite"), capsys)[0] == 0
    assert json.loads(path.read_text())["kind"] == "conv"


def test_a_preprocessed_npy_image(run, capsys, tmp_path):
    np.save(tmp_path / "x.npy", run[2])
    code, out, err = _run(["explain", "--checkpoint", str(run[0] / "weights.npz"), "--image", str(tmp_path / "x.npy"),
                           "--layer", "features.1", "--unit", "0,0,0"], capsys)
    assert code == 0, err
    e = st.vis.explain_unit(run[1], run[2], "features.1", (0, 0, 0))
    assert f"= {e['value']:.6g}   [batch_norm]" in out


@pytest.mark.parametrize("extra, message", [
    (["--layer", "features.33", "--unit", "0,0,0"], "no layer named 'features.33'. Did you mean 'features.3'?"),
    (["--layer", "features.0", "--unit", "0,8,0"], "index must be (row, col, channel) inside layer 'features.0'"),
    (["--layer", "features.0", "--unit", "a,b"], "--unit must be row,col,channel"),
    (["--layer", "classifier.2", "--unit", "1", "--gradient", "--target", "10"], "target must be a class index"),
    (["--layer", "features.0", "--unit", "0,0,0", "--top-k", "0"], "--top-k must be a positive integer"),
])
def test_bad_input_one_line_exit_2(run, capsys, extra, message):
    code, out, err = _run(["explain", "--checkpoint", str(run[0] / "weights.npz"), "--image",
                           str(run[0] / "digit.png"), *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_missing_image_and_checkpoint(run, capsys, tmp_path):
    code, _, err = _run(_args(run, "features.0", "0,0,0")[:3] + ["--image", str(tmp_path / "no.png"), "--layer",
                                                                    "features.0", "--unit", "0,0,0"], capsys)
    assert code == 2 and "no image file" in err
    code, _, err = _run(["explain", "--image", "x.png", "--layer", "a", "--unit", "0"], capsys)
    assert code == 2 and "--checkpoint" in err
