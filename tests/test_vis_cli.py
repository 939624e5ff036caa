"""`striate visualize`, `animate` and `report` on a model trained by `striate train` (once per session):
every command writes a valid, non-blank picture of the right size; the maps of the trained model
equal PyTorch's on a twin; bad input gets one line and exit code 2."""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from striate.cli.main import main

PIL = pytest.importorskip("PIL")
pytest.importorskip("matplotlib")
from PIL import Image, ImageSequence  # noqa: E402


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A digits_cnn run of `striate train` (3 epochs) and one test digit saved as a PNG."""
    from striate.data import load_dataset

    out = tmp_path_factory.mktemp("vis-run")
    assert main(["train", "--epochs", "3", "--out", str(out), "-q"]) == 0
    ds = load_dataset("digits")
    png = out / "digit.png"
    Image.fromarray(ds.x_test[0][:, :, 0]).save(png)
    return out, png


def _image(path):
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _not_blank(img, min_std=10.0):
    a = np.asarray(img, np.float64)
    assert a.std() > min_std, f"picture looks blank (pixel std {a.std():.1f})"


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _ckpt(trained):
    return str(trained[0] / "weights.npz")


# ------------------------------------------------------------------------------- every picture
@pytest.mark.parametrize("what,extra", [
    ("saliency", []), ("saliency", ["--method", "smoothgrad", "--samples", "8"]),
    ("saliency", ["--method", "grad_x_input"]), ("gradcam", []), ("gradcam", ["--layer", "features.5"]),
    ("occlusion", []), ("occlusion", ["--window", "2", "--stride", "1", "--target", "3"]),
])
def test_attribution_pictures(trained, tmp_path, capsys, what, extra):
    out = tmp_path / f"{what}.png"
    code, _, err = _run(["visualize", what, "--checkpoint", _ckpt(trained), "--image", str(trained[1]),
                         "--out", str(out)] + extra, capsys)
    assert code == 0, err
    img = _image(out)
    assert img.size == (3 * 224 + 4 * 8, 224 + 2 * 28)   # input | map | overlay, title and captions
    _not_blank(img)
    # the map panel itself is not flat
    _not_blank(img.crop((8 + 224 + 8, 28, 8 + 2 * 224 + 8, 28 + 224)), min_std=5)


def test_filters_activations_top_patches_maximize(trained, tmp_path, capsys):
    ck = _ckpt(trained)
    cases = {
        "filters": ["visualize", "filters", "--checkpoint", ck],
        "filters2": ["visualize", "filters", "--checkpoint", ck, "--layer", "features.3"],
        "act": ["visualize", "activations", "--checkpoint", ck, "--image", str(trained[1])],
        "act1": ["visualize", "activations", "--checkpoint", ck, "--image", str(trained[1]), "--layer", "features.9"],
        "top": ["visualize", "top-patches", "--checkpoint", ck, "--layer", "features.7", "--channels", "0-3", "--k", "5"],
        "max": ["visualize", "maximize", "--checkpoint", ck, "--layer", "features.7", "--channels", "0-2",
                "--steps", "20"],
    }
    sizes = {}
    for name, argv in cases.items():
        out = tmp_path / f"{name}.png"
        code, stdout, err = _run(argv + ["--out", str(out)], capsys)
        assert code == 0, (name, err)
        img = _image(out)
        _not_blank(img)
        sizes[name] = img.size
    assert min(sizes["filters"]) >= 320            # 32 3x3 tiles, enlarged to be seen
    assert sizes["filters2"][0] > sizes["filters"][0]   # 32 x 32 slices of conv2
    assert sizes["act"][1] > sizes["act1"][1]      # three layers are taller than one
    assert sizes["top"][1] > 4 * 48                # a strip of 48-px patches per channel


def test_raw_maps_as_npy(trained, tmp_path, capsys):
    ck = _ckpt(trained)
    for what in ("saliency", "gradcam", "occlusion"):
        out = tmp_path / f"{what}.npy"
        assert main(["visualize", what, "--checkpoint", ck, "--image", str(trained[1]), "--out", str(out)]) == 0
        m = np.load(out)
        assert m.shape == (8, 8) and np.isfinite(m).all() and m.std() > 0
    out = tmp_path / "top.npz"
    assert main(["visualize", "top-patches", "--checkpoint", ck, "--channels", "1", "--k", "3", "--out", str(out)]) == 0
    with np.load(out) as z:
        assert z["channel_1"].shape == (3, 10, 10, 1)    # features.9 sees 10 x 10 pixels


def test_trained_model_maps_equal_a_pytorch_twin(trained, tmp_path):
    """The CLI's saliency and Grad-CAM of the trained digits_cnn, on the image preprocessed as
    `striate predict` does, equal PyTorch's on the same weights."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF

    from striate.cli.common import load_model_file, standardizer
    from striate.data.images import prepare

    model, meta = load_model_file(_ckpt(trained))
    x = standardizer(meta)(prepare(str(trained[1]), (8, 8, 1), meta)[None])   # (1, 8, 8, 1)
    sd = {k: torch.tensor(np.asarray(v, np.float64)) for k, v in model.state_dict().items()}

    def block(h, i):
        h = TF.conv2d(h, sd[f"features.{i}.w"].permute(3, 2, 0, 1), padding=1)
        bn = f"features.{i + 1}"
        h = TF.batch_norm(h, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"], sd[f"{bn}.gamma"], sd[f"{bn}.beta"],
                          training=False, eps=model.features[i + 1].eps)
        return TF.relu(h)

    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    h = block(block(xt.permute(0, 3, 1, 2), 0), 3)
    a = block(TF.max_pool2d(h, 2), 7)                                      # features.9: (1, 64, 4, 4)
    a.retain_grad()
    logits = a.mean(dim=(2, 3)) @ sd["classifier.2.w"] + sd["classifier.2.b"]
    target = int(logits.argmax())
    logits[0, target].backward()
    sal = xt.grad[0].abs().amax(-1).numpy()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = TF.interpolate(TF.relu((alpha * a).sum(1, keepdim=True)), size=(8, 8), mode="bilinear",
                         align_corners=False)[0, 0].detach().numpy()
    for what, expected in (("saliency", sal), ("gradcam", cam)):
        out = tmp_path / f"{what}.npy"
        assert main(["visualize", what, "--checkpoint", _ckpt(trained), "--image", str(trained[1]),
                     "--out", str(out)]) == 0
        got = np.load(out)
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


# -------------------------------------------------------------------------------------- animate
@pytest.mark.parametrize("argv,frames", [
    (["conv", "--input", "5", "--kernel", "3", "--padding", "1", "--stride", "2"], 9),
    (["conv", "--input", "5", "--kernel", "3", "--padding", "1", "--stride", "2", "--numbers"], 9),
    (["conv", "--input", "7", "--kernel", "3", "--dilation", "2", "--numbers"], 9),
    (["conv", "--input", "3", "--kernel", "3", "--stride", "2", "--padding", "1", "--transposed", "--numbers"], 9),
    (["conv", "--input", "5x7", "--kernel", "3x2", "--stride", "2x1"], 2 * 6),
    (["pool", "--input", "4", "--kernel", "2", "--stride", "2", "--numbers"], 4),
    (["pool", "--input", "4", "--kernel", "2", "--mode", "avg", "--numbers"], 4),
])
def test_animate_writes_gifs_with_one_distinct_frame_per_cell(tmp_path, capsys, argv, frames):
    out = tmp_path / "a.gif"
    code, stdout, err = _run(["animate"] + argv + ["--out", str(out)], capsys)
    assert code == 0, err
    assert f"{frames} frames" in stdout
    with Image.open(out) as im:
        assert im.format == "GIF"
        shots = [np.asarray(f.convert("RGB"), np.int16) for f in ImageSequence.Iterator(im)]
    assert len(shots) == frames
    for s in shots:
        assert s.shape[0] > 150 and s.shape[1] > 250 and s.std() > 20
    for a, b in zip(shots, shots[1:]):
        assert np.abs(a - b).sum() > 0, "two consecutive frames are identical"


# --------------------------------------------------------------------------------------- report
def test_report_is_one_self_contained_page(trained, tmp_path, capsys):
    run_dir = trained[0]
    code, stdout, err = _run(["report", str(run_dir), "--out", str(tmp_path / "r.html")], capsys)
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    for heading in ("Training curves", "Confusion matrix", "worst-classified test images",
                    "First-layer filters", "Activations of one test image", "Gradient flow (64 test images)"):
        assert heading in page, heading
    assert "<script" not in page.lower() and not re.search(r"(src|href)=['\"]?https?:", page)
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) >= 2 + 12 + 1 + 4           # curves, confusion, 12 worst, filters, image + 3 layers
    for b64 in pngs:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            im.load()
            assert min(im.size) >= 32
    curves = Image.open(io.BytesIO(base64.b64decode(pngs[0]))).convert("RGB")
    _not_blank(curves)
    assert page.count("<figcaption") >= 12 + 4


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium to render the page")
def test_report_renders_in_a_headless_browser(trained, tmp_path):
    page = tmp_path / "r.html"
    assert main(["report", str(trained[0]), "--out", str(page)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1100,2000", page.as_uri()], capture_output=True, timeout=120)
    if not shot.is_file():
        pytest.skip("chromium could not take a screenshot here")
    img = _image(shot)
    _not_blank(img)


def test_report_gradient_flow_section_measures_the_trained_model(trained):
    """The section's norms are those of a plain forward and backward of the model on the first 64
    test images (computed here without the section's hooks), and the model itself is left untouched."""
    import copy

    import striate as st
    import striate.functional as F
    import striate.vis.report as report
    from striate.cli.common import load_model_file
    from striate.data import load_dataset
    from striate.nn import Conv2D, Dense
    from striate.tensor import Tensor
    from striate.vis.run_report import _standardized

    model, meta = load_model_file(_ckpt(trained))
    ds = load_dataset("digits")
    x = _standardized(meta, ds.x_test.astype(np.float32) / 255)
    before = [p.data.copy() for p in model.parameters()]
    st.manual_seed(0)
    sec = report.gradient_flow_section(model, x, ds.y_test)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))
    assert all(p.grad is None or not np.any(p.grad) for p in model.parameters())
    twin = copy.deepcopy(model)
    twin.train(True)
    st.manual_seed(0)
    F.cross_entropy(twin(Tensor(x[:64])), ds.y_test[:64]).backward()
    weighted = [m for m in twin.modules() if isinstance(m, (Conv2D, Dense))]
    norms = [float(np.linalg.norm(m.w.grad)) for m in weighted]
    assert sec["count"] == 64 and len(sec["rows"]) == len(weighted)
    assert [r["grad"] for r in sec["rows"]] == [f"{n:.3g}" for n in norms]
    assert [r["type"] for r in sec["rows"]] == [type(m).__name__ for m in weighted]
    convs = [n for n, m in zip(norms, weighted) if isinstance(m, Conv2D)]
    assert sec["ratio"] == pytest.approx(convs[0] / convs[-1], rel=1e-4)
    img = Image.open(io.BytesIO(base64.b64decode(sec["image"].split(",", 1)[1]))).convert("RGB")
    assert img.size[0] >= 800
    _not_blank(img)


def test_report_without_test_data_still_writes_the_page(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("log.csv", "metrics.json"):
        shutil.copy(trained[0] / name, run / name)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Training curves" in page and "no weights.npz" in page


def test_report_html_lives_in_its_template_and_escapes_names(trained):
    """The page's HTML is the package's template (no markup written in Python), and every value is
    escaped: a class name with markup shows as text."""
    import importlib.resources

    import striate.vis.report as report
    from striate.cli.common import load_model_file

    template = importlib.resources.files("striate.vis").joinpath("templates", report.TEMPLATE)
    assert template.is_file() and "<h2>Training curves</h2>" in template.read_text()
    source = open(report.__file__, encoding="utf-8").read()
    assert not re.search(r"<(h1|h2|p|table|tr|td|figure|img|div|html|style)\b", source)
    pyproject = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "pyproject.toml")).read()
    assert '"striate.vis" = ["templates/*.html"]' in pyproject

    model, meta = load_model_file(_ckpt(trained))
    meta = dict(meta, class_names=["<b>zero</b>"] + [str(i) for i in range(1, 10)])
    metrics = {"model": "<script>x</script>", "confusion_matrix": np.eye(10, dtype=int).tolist()}
    x = np.zeros((3, 8, 8, 1), np.float32)
    page = report.build_report("run & <folder>", metrics, [], model, meta, x, np.array([0, 1, 2]), x)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "run &amp; &lt;folder&gt;" in page and "<b>zero</b>" not in page and "&lt;b&gt;zero&lt;/b&gt;" in page


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv,message", [
    (["visualize", "gradcam", "--layer", "conv9"], "no layer named 'conv9'. Layers: features.0, features.1"),
    (["visualize", "gradcam", "--layer", "classifier.2"],
     "layer 'classifier.2' (Dense) outputs a vector of shape (10,), not feature maps (h, w, c)"),
    (["visualize", "occlusion", "--window", "9"], "the window must fit in the image. Received: window=(9, 9) for an image of 8 x 8"),
    (["visualize", "saliency", "--target", "10"], "target must be a class index in [0, 10). Received: target=10"),
    (["visualize", "activations", "--layer", "nope"], "no layer named 'nope'"),
])
def test_bad_input_one_line_exit_2(trained, capsys, argv, message, tmp_path):
    argv = argv[:2] + ["--checkpoint", _ckpt(trained), "--image", str(trained[1]), "--out", str(tmp_path / "x.png")] + argv[2:]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_files_and_options(trained, capsys, tmp_path):
    ck = _ckpt(trained)
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.zeros((8, 8, 3), np.float32))
    cases = [
        (["visualize", "saliency", "--checkpoint", ck, "--image", str(rgb), "--out", str(tmp_path / "s.png")],
         "the model takes images of shape (8, 8, 1) (h, w, c); the array has shape (8, 8, 3)"),
        (["visualize", "filters", "--checkpoint", ck, "--layer", "features.1", "--out", str(tmp_path / "f.png")],
         "layer 'features.1' is a BatchNorm, not a Conv2D layer. Conv layers: features.0, features.3, features.7"),
        (["visualize", "filters", "--checkpoint", ck, "--out", str(tmp_path / "f.bmp")], "--out must end in .png"),
        (["visualize", "top-patches", "--checkpoint", ck, "--channels", "60-70", "--out", str(tmp_path / "t.png")],
         "--channels: the layer has 64 channels (0-63)"),
        (["visualize", "maximize", "--checkpoint", ck, "--layer", "features.7", "--channels", "a-b",
          "--out", str(tmp_path / "m.png")], "--channels must be channel numbers like 0-15"),
        (["visualize", "saliency", "--checkpoint", ck, "--image", str(tmp_path / "none.png"),
          "--out", str(tmp_path / "s.png")], "no image file at"),
        (["animate", "conv", "--input", "3", "--kernel", "5", "--out", str(tmp_path / "a.gif")],
         "is larger than the padded input"),
        (["animate", "conv", "--input", "0", "--out", str(tmp_path / "a.gif")], "--input must be an int >= 1 or HxW"),
        (["animate", "pool", "--out", str(tmp_path / "a.png")], "--out must be a .gif file"),
        (["report", str(tmp_path / "nowhere")], "is not a folder"),
        (["visualize"], "say what to draw"),
    ]
    for argv, message in cases:
        code, _, err = _run(argv, capsys)
        assert code == 2, (argv, err)
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not os.path.exists(tmp_path / "s.png") and not os.path.exists(tmp_path / "a.gif")


def test_train_report_writes_the_page_at_the_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "-q", "--report"]) == 0
    assert "report ->" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "Training curves" in page and "First-layer filters" in page and page.count("data:image/png;base64,") > 10


def test_images_are_resized_and_inverted_as_predict_does(trained, tmp_path):
    from striate.cli.common import load_model_file
    from striate.vis import saliency

    big = tmp_path / "big.png"
    Image.open(trained[1]).resize((24, 24), Image.NEAREST).save(big)
    out, inv = tmp_path / "s.npy", tmp_path / "inv.npy"
    ck = _ckpt(trained)
    assert main(["visualize", "saliency", "--checkpoint", ck, "--image", str(big), "--target", "5", "--out", str(out)]) == 0
    assert main(["visualize", "saliency", "--checkpoint", ck, "--image", str(big), "--target", "5", "--invert",
                 "--out", str(inv)]) == 0
    model, meta = load_model_file(ck)
    from striate.cli.visualize_cmd import load_input

    for path, flag in ((out, False), (inv, True)):
        x, shown = load_input(str(big), meta, invert=flag)
        assert x.shape == (8, 8, 1) and 0 <= shown.min() and shown.max() <= 1
        np.testing.assert_allclose(np.load(path), saliency(model, x, 5))
    assert not np.allclose(np.load(out), np.load(inv))


def test_python_users_get_the_commands_pictures(trained, tmp_path, capsys):
    """striate.vis's figure functions draw exactly the pictures of `striate visualize`."""
    from striate import vis
    from striate.cli.common import load_model_file
    from striate.cli.visualize_cmd import load_input

    ck = _ckpt(trained)
    model, meta = load_model_file(ck)
    x, shown = load_input(str(trained[1]), meta)
    names = meta["class_names"]
    drawn = {
        "saliency": vis.saliency_figure(model, x, shown, vis.saliency(model, x, 4), 4, class_names=names),
        "gradcam": vis.grad_cam_figure(model, x, shown, vis.grad_cam(model, x, 4, layer="features.5"), 4,
                                       "features.5", class_names=names),
        "activations": vis.activations_figure(model, x, shown, vis.activations(model, x, ["features.2", "features.9"]),
                                              class_names=names),
        "filters": vis.filters_figure(model, x.shape),
    }
    argv = {"saliency": ["--image", str(trained[1]), "--target", "4"],
            "gradcam": ["--image", str(trained[1]), "--target", "4", "--layer", "features.5"],
            "activations": ["--image", str(trained[1]), "--layer", "features.2", "--layer", "features.9"],
            "filters": []}
    for what, figure in drawn.items():
        vis.save_figure(figure, tmp_path / f"py-{what}.png")
        assert main(["visualize", what, "--checkpoint", ck, *argv[what], "--out", str(tmp_path / f"cli-{what}.png")]) == 0
        ours, theirs = _image(tmp_path / f"py-{what}.png"), _image(tmp_path / f"cli-{what}.png")
        _not_blank(ours)
        assert ours.size == theirs.size and np.array_equal(np.asarray(ours), np.asarray(theirs)), what
