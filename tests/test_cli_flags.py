"""One spelling for every command: --overwrite (never replacing a file without it, never a command's own
input even with it), -q/--quiet wherever a command reports, required options shown as required."""
import os

import pytest

import striate as st
from striate.cli.main import build_parser, main


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"striate {command}: error: "), err
    return lines[0]


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = st.models.digits_cnn(rng=0)
    meta = {"model": {"name": "digits_cnn", "args": {"num_classes": 10}}, "input_shape": [8, 8, 1],
            "class_names": [str(i) for i in range(10)], "preprocess": {"scale": 1 / 255, "mean": [0.3], "std": [0.4]}}
    st.training.save_weights("w.npz", model, meta=meta)
    return "w.npz"


def _subparser(command, what=None):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    if what is not None:
        sub = next(a for a in sub._actions if a.dest == "what").choices[what]
    return sub


def test_export_and_import_say_overwrite_and_never_replace_their_source(weights, capsys):
    pytest.importorskip("onnx")
    assert main(["export", "--checkpoint", weights, "--out", "m.onnx", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["export", "--checkpoint", weights, "--out", "m.onnx"]) == 2
    assert "exists; add --overwrite" in _one_error_line(capsys.readouterr().err, "export")
    assert main(["export", "--checkpoint", weights, "--out", "m.onnx", "--overwrite"]) == 0
    assert main(["export", "--checkpoint", weights, "--out", "m.onnx", "--force"]) == 0  # the older spelling
    assert "--force" not in _subparser("export").format_help()
    before = open("m.onnx", "rb").read()
    assert main(["import", "m.onnx", "--out", "m.onnx", "--overwrite"]) == 2
    assert "is the file this command reads" in _one_error_line(capsys.readouterr().err, "import")
    assert open("m.onnx", "rb").read() == before
    before = open(weights, "rb").read()
    assert main(["export", "--checkpoint", weights, "--out", weights, "--overwrite"]) == 2
    assert "is the file this command reads" in _one_error_line(capsys.readouterr().err, "export")
    assert open(weights, "rb").read() == before
    assert main(["import", "m.onnx", "--out", "imp.npz", "-q"]) == 0
    assert main(["import", "m.onnx", "--out", "imp.npz"]) == 2
    assert "add --overwrite" in _one_error_line(capsys.readouterr().err, "import")


def test_visualize_never_replaces_a_file_silently(weights, capsys):
    pytest.importorskip("matplotlib")
    open("f.png", "wb").write(b"my picture")
    assert main(["visualize", "filters", "--checkpoint", weights, "--out", "f.png"]) == 2
    assert "exists; add --overwrite" in _one_error_line(capsys.readouterr().err, "visualize")
    assert open("f.png", "rb").read() == b"my picture"
    assert main(["visualize", "filters", "--checkpoint", weights, "--out", "f.png", "--overwrite", "-q"]) == 0
    assert capsys.readouterr().out == "" and open("f.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert main(["visualize", "filters", "--checkpoint", weights, "--out", weights[:-4] + ".npz",
                 "--overwrite"]) == 2
    assert "is the file this command reads" in _one_error_line(capsys.readouterr().err, "visualize")


def test_animate_never_replaces_a_file_silently(tmp_path, capsys):
    pytest.importorskip("PIL")
    gif = str(tmp_path / "a.gif")
    open(gif, "wb").write(b"mine")
    assert main(["animate", "conv", "--out", gif]) == 2
    assert "exists; add --overwrite" in _one_error_line(capsys.readouterr().err, "animate")
    assert main(["animate", "conv", "--out", gif, "--overwrite", "-q"]) == 0
    assert capsys.readouterr().out == "" and open(gif, "rb").read(3) == b"GIF"


@pytest.mark.parametrize("command,what", [("evaluate", None), ("predict", None), ("visualize", "filters"),
                                          ("visualize", "gradcam"), ("export", None), ("finetune", None)])
def test_required_options_are_shown_as_required(command, what, capsys):
    sub = _subparser(command, what)
    required = {a.option_strings[0] for a in sub._actions if a.required and a.option_strings}
    assert "--checkpoint" in required or "--base" in required
    usage = sub.format_usage()
    for option in required:
        assert f"[{option}" not in usage and option in usage      # no brackets around a required option
    argv = [command] + ([what] if what else []) + (["x.png"] if command == "predict" else [])
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert "the following arguments are required" in capsys.readouterr().err


@pytest.mark.parametrize("command,what", [("train", None), ("finetune", None), ("visualize", "filters"),
                                          ("animate", "conv"), ("report", None), ("export", None), ("import", None),
                                          ("serve", None)])
def test_quiet_and_overwrite_are_spelled_alike(command, what):
    options = {s for a in _subparser(command, what)._actions for s in a.option_strings}
    assert {"-q", "--quiet"} <= options
    if command != "serve":
        assert "--overwrite" in options


def test_report_out_is_never_replaced_silently(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "r"
    run.mkdir()
    (run / "log.csv").write_text("epoch,loss,acc\n1,0.5,0.8\n")
    page = tmp_path / "page.html"
    page.write_text("mine")
    assert main(["report", str(run), "--out", str(page)]) == 2
    assert "exists; add --overwrite" in _one_error_line(capsys.readouterr().err, "report")
    assert page.read_text() == "mine"
    assert main(["report", str(run), "--out", str(page), "--overwrite", "-q"]) == 0
    assert "<html" in page.read_text().lower() and capsys.readouterr().out == ""
    assert main(["report", str(run), "-q"]) == 0 and main(["report", str(run), "-q"]) == 0   # its own page
    assert os.path.getsize(run / "report.html") > 0


def test_train_help_shows_each_recipe(capsys, monkeypatch):
    from striate.cli import common

    monkeypatch.setitem(common.RECIPES, "digits", dict(common.RECIPES["digits"], epochs=17, lr=0.07))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "see striate/cli" not in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ") and line.split()}
    for name, recipe in common.RECIPES.items():
        row = rows[name]
        assert recipe["model"] in row and recipe["augment"] in row
        assert str(recipe["epochs"]) in row and f"{recipe['lr']:g}" in row and str(recipe["batch_size"]) in row
    assert rows["digits"][2] == "17" and "0.07" in rows["digits"]   # read from the table the runs use
