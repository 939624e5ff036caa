"""Optional dependencies: every one is imported through striate.optional.require, which names what
needs the package and the command that installs it, in one line."""
from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

from source_files import library_sources
from striate.optional import install_hint, require

def test_require_imports_an_installed_package():
    assert require("json", "viz") is sys.modules["json"]
    assert require("os.path", "viz") is os.path


def test_require_names_the_purpose_the_pip_name_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)          # what an environment without Pillow does
    monkeypatch.setitem(sys.modules, "PIL.Image", None)    # (even when another test imported it already)
    with pytest.raises(ImportError) as info:
        require("PIL.Image", "data", "reading images")
    assert str(info.value) == 'reading images needs pillow, which is not installed: pip install "striate[data]"'
    assert info.value.name == "PIL"
    assert install_hint("onnx") == 'pip install "striate[onnx]"'


def test_a_broken_installed_package_is_not_called_missing(tmp_path, monkeypatch):
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("import not_a_real_module_of_striate_tests\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="not_a_real_module_of_striate_tests"):
        require("brokenpkg", "viz")


def _digits():
    from striate.data import load_dataset
    return load_dataset("digits")


def _pil():
    from striate.vis import draw
    return draw.pil()


def _pyplot():
    from striate.vis import draw
    return draw.pyplot()


def _onnx():
    import striate as st
    from striate import onnx
    return onnx.to_onnx(st.models.get("digits_cnn"), (8, 8, 1))


def _safetensors():
    from striate.io import torch_weights
    return torch_weights.load_safetensors("x.safetensors")


def _mpi():
    from striate.distributed import comm
    return comm._import_mpi()


def _report():
    from striate.vis.report import build_report
    return build_report("run", {}, [])


def _read_image():
    from striate.data.images import read_image
    return read_image(b"\x89PNG")


@pytest.mark.parametrize("call,module,extra", [
    (_digits, "sklearn", "data"), (_pil, "PIL", "viz"), (_pyplot, "matplotlib", "viz"),
    (_onnx, "onnx", "onnx"), (_safetensors, "safetensors", "onnx"), (_mpi, "mpi4py", "mpi"),
    (_read_image, "PIL", "data"), (_report, "jinja2", "viz"),
])
def test_every_optional_import_gives_the_install_line(call, module, extra, monkeypatch):
    try:   # imported first where installed, so that the real module is put back afterwards
        __import__(module)
    except ImportError:
        pass
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, name, None)     # the package and its submodules are gone
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError) as info:
        call()
    message = str(info.value)
    assert f'pip install "striate[{extra}]"' in message and "\n" not in message, message


def test_commands_turn_a_missing_package_into_one_line(monkeypatch, tmp_path, capsys):
    from PIL import Image

    from striate.cli.main import main
    path = tmp_path / "a.png"
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert main(["import", str(model), "--out", str(tmp_path / "w.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'needs onnx, which is not installed: pip install "striate[onnx]"' in err, err


def test_no_hand_written_install_hints_left():
    """Install hints come from striate.optional; a raise with its own "pip install" text is a copy."""
    raise_call = re.compile(r"raise \w+\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)", re.S)
    copies = [f"{path}: {m.group(0)[:80]}" for path, text in library_sources() if path != "optional.py"
              for m in raise_call.finditer(text) if "pip install" in m.group(0)]
    assert not copies, copies
