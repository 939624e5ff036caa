"""`striate visualize deconvnet` and `guided-backprop` on a model trained by `striate train`: the
pictures are non-blank and laid out per channel, the raw maps are st.vis's, bad input gets one line."""
from __future__ import annotations

import re

import numpy as np
import pytest

import striate as st
import striate.vis  # noqa: F401
from striate.cli.main import main

pytest.importorskip("PIL")
pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits_cnn run of one epoch and one test digit as a PNG."""
    from striate.data import load_dataset

    out = tmp_path_factory.mktemp("deconv-run")
    assert main(["train", "--epochs", "1", "--out", str(out), "-q"]) == 0
    png = out / "digit.png"
    Image.fromarray(load_dataset("digits").x_test[0][:, :, 0]).save(png)
    return str(out / "weights.npz"), str(png)


def _picture(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float64)


def _model_and_input(trained):
    from striate.cli.common import load_model_file
    from striate.cli.visualize_cmd import load_input

    model, meta = load_model_file(trained[0])
    x, _ = load_input(trained[1], meta)
    return model, x


def test_deconvnet_picture_has_a_tile_per_channel(trained, tmp_path, capsys):
    ck, png = trained
    sizes = {}
    for channels in ("0-3", "0-15"):
        out = tmp_path / f"dec{channels}.png"
        assert main(["visualize", "deconvnet", "--checkpoint", ck, "--image", png, "--layer", "features.9",
                     "--channels", channels, "--out", str(out)]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        a = _picture(out)
        assert a.std() > 10
        sizes[channels] = a.shape
    # 4 channels fit one row of tiles, 16 make two rows of 8
    assert sizes["0-15"][0] > sizes["0-3"][0] and sizes["0-15"][1] > sizes["0-3"][1]
    # the default: the first 8 channels, one row
    out = tmp_path / "default.png"
    assert main(["visualize", "deconvnet", "--checkpoint", ck, "--image", png, "--layer", "features.5",
                 "--out", str(out), "-q"]) == 0
    assert _picture(out).std() > 10


def test_raw_maps_are_st_vis(trained, tmp_path):
    ck, png = trained
    model, x = _model_and_input(trained)
    out = tmp_path / "dec.npz"
    assert main(["visualize", "deconvnet", "--checkpoint", ck, "--image", png, "--layer", "features.6",
                 "--channels", "1,4", "--out", str(out), "-q"]) == 0
    with np.load(out) as z:
        assert sorted(z.files) == ["channel_1", "channel_4"]
        for c in (1, 4):
            np.testing.assert_array_equal(z[f"channel_{c}"], st.vis.deconvnet(model, x, "features.6", c))
            assert np.abs(z[f"channel_{c}"]).max() > 0
    out = tmp_path / "gb.npy"
    assert main(["visualize", "guided-backprop", "--checkpoint", ck, "--image", png, "--target", "3",
                 "--out", str(out), "-q"]) == 0
    np.testing.assert_array_equal(np.load(out), st.vis.guided_backprop(model, x, target=3))


def test_guided_backprop_picture(trained, tmp_path):
    ck, png = trained
    out = tmp_path / "gb.png"
    assert main(["visualize", "guided-backprop", "--checkpoint", ck, "--image", png, "--out", str(out), "-q"]) == 0
    a = _picture(out)
    assert a.shape == (224 + 2 * 28, 3 * 224 + 4 * 8, 3)     # input | gradient | overlay, title and captions
    assert a[28:28 + 224, 8 + 224 + 8:8 + 2 * 224 + 8].std() > 5   # the gradient panel is not flat


@pytest.mark.parametrize("extra,message", [
    (["deconvnet", "--layer", "features.9", "--channels", "0-99"], "--channels: the layer has 64 channels"),
    (["deconvnet", "--layer", "classifier.2"], "not feature maps"),
    (["deconvnet", "--layer", "nope"], "no layer named 'nope'"),
    (["guided-backprop", "--target", "10"], r"target must be a class index in \[0, 10\)"),
])
def test_bad_input_is_one_line_exit_2(trained, tmp_path, capsys, extra, message):
    ck, png = trained
    argv = ["visualize", extra[0], "--checkpoint", ck, "--image", png, "--out", str(tmp_path / "x.png")] + extra[1:]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "x.png").exists()


def test_no_overwrite_without_asking(trained, tmp_path, capsys):
    ck, png = trained
    out = tmp_path / "gb.png"
    out.write_bytes(b"keep")
    assert main(["visualize", "guided-backprop", "--checkpoint", ck, "--image", png, "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep" and "--overwrite" in capsys.readouterr().err
    assert main(["visualize", "guided-backprop", "--checkpoint", ck, "--image", png, "--out", str(out),
                 "--overwrite", "-q"]) == 0
    assert _picture(out).std() > 10
