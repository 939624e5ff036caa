"""One image path: `striate predict`, `striate visualize`, `striate serve` and image-folder data sets
read a picture the same way (striate.data.images): EXIF orientation, transparency, blank pictures,
the automatic inversion rule, and .npy inputs that are not images."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("sklearn")  # the model under test learnt the embedded digits

from PIL import Image  # noqa: E402

from serve_helpers import png_bytes, trained_path  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.data import images  # noqa: E402

SCALE = 8   # digits are stored 8x8; files are drawn 64x64 like a small scan


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ckpt():
    return trained_path()


@pytest.fixture(scope="module")
def digits(ckpt):
    """Four test digits the model reads right with p > 0.9: (label, uint8 (8, 8) light on dark)."""
    import striate as st
    from striate.cli.common import load_model_file, standardizer

    model, meta = load_model_file(ckpt)
    ds = st.data.load_dataset("digits")
    pred = st.training.predict(model, ds.x_test[:60], transform=standardizer(meta))
    sure = [i for i in range(60) if pred.indices[i] == ds.y_test[i] and pred.probabilities[i].max() > 0.9]
    chosen = []
    for i in sure:   # four different classes
        if ds.y_test[i] not in [c[0] for c in chosen]:
            chosen.append((int(ds.y_test[i]), ds.x_test[i, :, :, 0]))
    assert len(chosen) >= 4
    return chosen[:4]


def _big(a):
    return np.kron(a, np.ones((SCALE, SCALE))).astype(np.uint8)


def _save(img, path):
    img.save(path)
    return str(path)


def _predict(capsys, paths, ckpt, *flags):
    """[(class, probability)] of `striate predict --json --top-k 1`."""
    capsys.readouterr()
    assert main(["predict", *paths, "--checkpoint", ckpt, "--json", "--top-k", "1", *flags]) == 0
    return [(int(r["top_k"][0]["class"]), r["top_k"][0]["probability"]) for r in json.loads(capsys.readouterr().out)]


def _all_probabilities(capsys, path, ckpt, *flags):
    capsys.readouterr()
    assert main(["predict", path, "--checkpoint", ckpt, "--json", "--top-k", "10", *flags]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top_k"]
    return np.array([p for _, p in sorted((int(t["class"]), t["probability"]) for t in top)])


def _error_line(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"striate {command}: error: "), err
    return lines[0]


def _served_client(ckpt):
    pytest.importorskip("flask")
    from striate.serve import create_app, load_served_model

    return create_app(load_served_model(ckpt)).test_client()


# ------------------------------------------------------------------------------------------ alpha
def test_transparent_strokes_read_as_the_digit_in_predict(digits, ckpt, tmp_path, capsys):
    """A black-stroke PNG with a transparent background (and a white-stroke one) is the digit, not a
    black square read as a confident wrong class."""
    opaque, black, white = [], [], []
    for k, (label, g) in enumerate(digits):
        alpha = _big(g)
        opaque.append(_save(Image.fromarray(_big(g)), tmp_path / f"opaque{k}.png"))
        for colour, paths in ((0, black), (255, white)):
            rgba = np.dstack([np.full_like(alpha, colour)] * 3 + [alpha])      # strokes only, ground transparent
            paths.append(_save(Image.fromarray(rgba, "RGBA"), tmp_path / f"alpha{colour}-{k}.png"))
    labels = [label for label, _ in digits]
    want = _predict(capsys, opaque, ckpt)
    assert [c for c, _ in want] == labels
    for paths in (black, white):
        got = _predict(capsys, paths, ckpt)
        assert [c for c, _ in got] == labels
        np.testing.assert_allclose([p for _, p in got], [p for _, p in want], atol=1e-5)
        for a, b in zip(paths, opaque):   # the very same input array as the opaque picture
            np.testing.assert_array_equal(images.prepare(a, (8, 8, 1)), images.prepare(b, (8, 8, 1)))


def test_ground_under_transparency_follows_the_rule():
    def rgba(colour, alpha):
        return np.dstack([np.full(alpha.shape, colour, np.uint8)] * 3 + [alpha.astype(np.uint8)])

    stroke = np.zeros((20, 20))
    stroke[4:16, 9:11] = 255                                   # a thin opaque bar, the rest transparent
    assert images.ground_shade(rgba(0, stroke)) == 255         # dark strokes: laid over white
    assert images.ground_shade(rgba(240, stroke)) == 0         # light strokes: laid over black
    margin = np.full((20, 20), 255.0)
    margin[:2] = 0                                             # a page with a transparent top margin
    page = rgba(250, margin)
    page[8:12, 5:15, :3] = 0                                   # dark writing on the light page
    assert images.ground_shade(page) == 255                    # the margin continues the light page
    assert images.ground_shade(rgba(10, margin)) == 0          # a dark photo's margin stays dark
    # a fully transparent picture has nothing on it: refused as blank
    with pytest.raises(images.ImageError, match="blank"):
        images.prepare(png_bytes(Image.fromarray(rgba(0, np.zeros((9, 9))), "RGBA")), (8, 8, 1))


# ------------------------------------------------------------------------------------------ EXIF
def _exif_rotated(upright: Image.Image, path):
    """``upright`` stored turned a quarter, with the EXIF orientation (6) that turns it back."""
    exif = Image.Exif()
    exif[0x0112] = 6                                           # "rotate 90 degrees clockwise to view"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    return str(path)


def test_exif_orientation_is_honoured_by_predict_serve_and_folders(digits, ckpt, tmp_path, capsys):
    label, g = digits[0]
    upright = _save(Image.fromarray(255 - _big(g)), tmp_path / "upright.png")   # dark ink on white, a scan
    turned = _exif_rotated(Image.open(upright), tmp_path / "turned.png")
    assert Image.open(turned).size == (64, 64) and not np.array_equal(np.asarray(Image.open(turned)),
                                                                       np.asarray(Image.open(upright)))
    np.testing.assert_allclose(_all_probabilities(capsys, turned, ckpt), _all_probabilities(capsys, upright, ckpt),
                               atol=1e-6)
    assert _predict(capsys, [turned], ckpt)[0][0] == label
    # the page: the same array the model sees
    from striate.serve import preprocess as P
    with open(turned, "rb") as f:
        served = P.prepare(P.decode_image(f.read()), (8, 8, 1), mode="resize")
    np.testing.assert_array_equal(served, images.prepare(upright, (8, 8, 1)))
    # an image-folder data set reads it upright too
    np.testing.assert_array_equal(images.read_image(turned), images.read_image(upright))


# ------------------------------------------------------------------------------------------ blank
def test_blank_pictures_are_refused_by_predict_visualize_and_serve(ckpt, tmp_path, capsys):
    rng = np.random.default_rng(0)
    blanks = {
        "white": np.full((64, 64), 255, np.uint8),
        "grey-noise": (200 + rng.integers(0, images.BLANK_LEVELS + 1, (64, 64))).astype(np.uint8),
    }
    for name, a in blanks.items():
        path = _save(Image.fromarray(a), tmp_path / f"{name}.png")
        assert main(["predict", path, "--checkpoint", ckpt]) == 2
        line = _error_line(capsys, "predict")
        assert "blank" in line and f"{name}.png" in line
        assert main(["visualize", "saliency", "--checkpoint", ckpt, "--image", path,
                     "--out", str(tmp_path / "s.png")]) == 2
        assert "blank" in _error_line(capsys, "visualize")
    # the page refuses it whatever the framing (it used to answer for preprocess=resize)
    client = _served_client(ckpt)
    for mode in ("resize", "digit"):
        r = client.post(f"/api/predict?preprocess={mode}", data=png_bytes(Image.fromarray(blanks["white"])))
        assert r.status_code == 400 and "blank" in r.json["error"], (mode, r.json)
    # just above the threshold is a (faint) picture, not blank
    faint = np.full((64, 64), 200, np.uint8)
    faint[20:44, 30:34] = 200 - images.BLANK_LEVELS - 1
    assert main(["predict", _save(Image.fromarray(faint), tmp_path / "faint.png"), "--checkpoint", ckpt]) == 0


# ------------------------------------------------------------------------------------------ inversion
def test_dark_on_white_gets_one_answer_in_predict_visualize_and_serve(digits, ckpt, tmp_path, capsys):
    from striate.cli.common import load_model_file
    from striate.cli.visualize_cmd import load_input

    _, meta = load_model_file(ckpt)
    client = _served_client(ckpt)
    for k, (label, g) in enumerate(digits):
        light = _save(Image.fromarray(_big(g)), tmp_path / f"light{k}.png")            # as trained
        dark = _save(Image.fromarray(255 - _big(g)), tmp_path / f"dark{k}.png")        # a scan
        p_light = _all_probabilities(capsys, light, ckpt)
        p_dark = _all_probabilities(capsys, dark, ckpt)                                # auto: inverted
        np.testing.assert_allclose(p_dark, p_light, atol=1e-5)
        assert int(np.argmax(p_dark)) == label and p_dark.max() > 0.5
        np.testing.assert_allclose(_all_probabilities(capsys, dark, ckpt, "--invert"), p_light, atol=1e-5)
        assert not np.allclose(_all_probabilities(capsys, dark, ckpt, "--no-invert"), p_light, atol=1e-3)
        # the page gives the very same probabilities for the same file
        with open(dark, "rb") as f:
            r = client.post("/api/predict?preprocess=resize", data=f.read())
        assert r.status_code == 200
        np.testing.assert_allclose(r.json["probabilities"], p_dark, atol=1e-5)
        # visualize shows and explains the same input
        x, shown = load_input(dark, meta)
        np.testing.assert_array_equal(shown, images.prepare(light, (8, 8, 1), meta))


def test_auto_inversion_follows_the_ground_the_model_learnt():
    light_border = np.full((10, 10), 230, np.uint8)
    light_border[3:7, 3:7] = 0
    dark_border = 255 - light_border
    for trained, light, dark in [(None, True, False), (0.13, True, False), (0.31, True, False),
                                 (0.9, False, True), (0.5, False, False)]:
        assert images.should_invert(light_border, trained) is light, trained
        assert images.should_invert(dark_border, trained) is dark, trained
    assert images.trained_mean({"preprocess": {"mean": [0.2, 0.4]}}) == pytest.approx(0.3)
    assert images.trained_mean({}) is None and images.trained_mean(None) is None
    # a model that learnt dark strokes on white: a light-on-dark picture is inverted for it
    meta = {"preprocess": {"mean": [0.9]}}
    a = images.prepare(png_bytes(Image.fromarray(dark_border)), (10, 10, 1), meta)
    np.testing.assert_allclose(a[..., 0], light_border / 255, atol=1e-6)
    # RGB pictures are never inverted automatically, only on request
    rgb = png_bytes(Image.fromarray(np.dstack([light_border] * 3)))
    np.testing.assert_allclose(images.prepare(rgb, (10, 10, 3))[..., 0], light_border / 255, atol=1e-6)
    np.testing.assert_allclose(images.prepare(rgb, (10, 10, 3), invert=True)[..., 0], dark_border / 255, atol=1e-6)


@pytest.mark.parametrize("argv", [["predict", "--help"], ["visualize", "saliency", "--help"],
                                  ["visualize", "activations", "--help"]])
def test_help_names_the_inversion_rule(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert "--invert, --no-invert" in text and "border is light" in text and "mean pixel < 1/3" in text


# ------------------------------------------------------------------------------------------ .npy input
def test_visualize_npy_that_is_not_an_image_gets_one_line(ckpt, tmp_path, capsys):
    cases = {}
    obj = np.empty((8, 8, 1), dtype=object)
    obj[...] = "x"
    np.save(tmp_path / "object.npy", obj, allow_pickle=True)
    cases["object.npy"] = "pickled"
    (tmp_path / "garbage.npy").write_bytes(b"\x00\x01garbage, not an array" * 10)
    cases["garbage.npy"] = "not a readable .npy"
    np.save(tmp_path / "text.npy", np.full((8, 8, 1), "a"))
    cases["text.npy"] = "numeric image array"
    np.save(tmp_path / "shape.npy", np.zeros((3, 8, 8, 1), np.float32))
    cases["shape.npy"] = "shape (8, 8, 1)"
    nan = np.zeros((8, 8, 1), np.float32)
    nan[2, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases["nan.npy"] = "NaN"
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "nan.npy").read_bytes()[:100])
    cases["truncated.npy"] = "not a readable .npy"
    for name, message in cases.items():
        code = main(["visualize", "saliency", "--checkpoint", ckpt, "--image", str(tmp_path / name),
                     "--out", str(tmp_path / "s.npy")])
        line = _error_line(capsys, "visualize")
        assert code == 2 and message in line and name in line, (name, line)
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32))
    assert main(["visualize", "saliency", "--checkpoint", ckpt, "--image", str(good), "--out",
                 str(tmp_path / "s.npy")]) == 0


def test_image_folders_read_pictures_as_the_commands_do(tmp_path):
    """An image-folder data set sees a photo upright and a transparent drawing on its ground."""
    from striate.data import load_image_folder

    stroke = np.zeros((12, 10), np.uint8)
    stroke[2:10, 4:6] = 255
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.roll(stroke, k, axis=1)).save(tmp_path / "imgs" / cls / f"{k}.png")
    # a 12x10 picture stored turned (10x12) with its orientation tag, and a transparent drawing
    _exif_rotated(Image.fromarray(stroke), tmp_path / "imgs" / "a" / "turned.png")
    rgba = np.dstack([np.zeros_like(stroke)] * 3 + [stroke])                 # black strokes, transparent ground
    Image.fromarray(rgba, "RGBA").save(tmp_path / "imgs" / "b" / "alpha.png")
    ds = load_image_folder(str(tmp_path / "imgs"), test_fraction=0.0)
    assert ds.x_train.shape[1:] == (12, 10, 3)                               # the RGBA file makes it RGB
    turned = images.read_image(str(tmp_path / "imgs" / "a" / "turned.png"), 3)
    assert turned.shape == (12, 10, 3)
    np.testing.assert_array_equal(turned[..., 0], stroke)
    alpha = images.read_image(str(tmp_path / "imgs" / "b" / "alpha.png"), 3)[..., 0]
    np.testing.assert_array_equal(alpha, 255 - stroke)                       # laid over white
    assert any(np.array_equal(x[..., 0], stroke) for x in ds.x_train)
    assert any(np.array_equal(x[..., 0], 255 - stroke) for x in ds.x_train)


def test_the_page_applies_the_rule_with_the_served_models_training_ground():
    """A model that learnt dark strokes on white: the page inverts a light-on-dark upload for it, as
    striate predict does, and leaves a dark-on-light one alone."""
    pytest.importorskip("flask")
    import striate as st
    from striate.serve import ServedModel, create_app
    from striate.serve import preprocess as P

    model = st.nn.Sequential(st.nn.Conv2D(2, 3, padding="same", rng=0), st.nn.ReLU(), st.nn.Flatten(),
                             st.nn.Dense(3, rng=1)).build((8, 8, 1))
    served = ServedModel(model, (8, 8, 1), mean=[0.9], std=[0.2])
    client = create_app(served).test_client()
    dark_on_light = np.full((16, 16), 240, np.uint8)
    dark_on_light[3:13, 7:9] = 10
    for picture, flipped in ((255 - dark_on_light, True), (dark_on_light, False)):
        body = png_bytes(Image.fromarray(picture))
        x = P.prepare(P.decode_image(body), (8, 8, 1), mode="resize", mean=served.mean)
        np.testing.assert_array_equal(x, images.prepare(body, (8, 8, 1), {"preprocess": {"mean": [0.9]}}))
        assert x[0, 0, 0] > 0.5                                              # the model's light ground
        assert images.should_invert(picture, 0.9) is flipped
        r = client.post("/api/predict?preprocess=resize", data=body)
        assert r.status_code == 200
        np.testing.assert_allclose(r.json["probabilities"], served.run(x)["probabilities"], atol=1e-6)
