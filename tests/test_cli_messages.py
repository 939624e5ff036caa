"""Messages that name what really went wrong: the output stream (a closed pipe, a closed or full
stdout), a pickled array, an environment variable, onnx's own reason, an opset out of range, a key
given twice. One line each, never a traceback."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import striate as st
from striate.backend import threads
from striate.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), err
    return lines[0]


def _into_closed_pipe(argv, timeout=120):
    """Run ``main(argv)`` in a fresh interpreter whose stdout is a pipe nobody reads (as `| head` once done)."""
    code = ("import sys, os; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
            f"from striate.cli.main import main; sys.exit(main({list(argv)!r}))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def _shell(line, timeout=120):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m striate {line}'], env=env,
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------------- the output stream
def test_a_closed_pipe_during_training_is_not_a_full_disk(tmp_path):
    pytest.importorskip("sklearn")
    # `striate train | head -1`: the reader takes the first line and goes; the epoch lines then find no reader
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "striate", "train", "--epochs", "2", "--out", str(tmp_path / "r")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training ")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "space" not in err and "could not write" not in err, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["models"]])
def test_help_and_listings_into_a_closed_pipe_stop_quietly(argv):
    proc = _into_closed_pipe(argv)
    assert proc.stderr == "" and proc.returncode in (0, 141), proc.stderr


def test_a_closed_stdout_is_one_line():
    proc = _shell("models >&-")
    line = _one_error_line(proc.stderr, "striate")
    assert "standard output is closed" in line and proc.returncode == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_stdout_is_one_line():
    proc = _shell("models > /dev/full")
    line = _one_error_line(proc.stderr, "striate models")
    assert "No space left on device" in line and proc.returncode == 2


# ------------------------------------------------------------------------------------- what is blamed
def test_a_pickled_array_is_named_as_such_not_as_damage(tmp_path, capsys):
    path = tmp_path / "pickled.npz"
    record = json.dumps({"format": "striate", "version": 1, "kind": "weights", "epoch": 0, "model": [],
                         "state": {}})
    np.savez(path, __striate__=np.array(record), payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(st.training.CheckpointError, match="pickled object array .'payload'.") as e:
        st.training.load_checkpoint(path)
    assert "truncated or corrupt" not in str(e.value)
    assert main(["evaluate", "--checkpoint", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err, "striate evaluate")
    assert "pickled" in line and "never unpickles" in line


def test_a_bad_thread_count_names_the_variable_not_a_layer(monkeypatch, capsys):
    monkeypatch.setenv("STRIATE_NUM_THREADS", "abc")
    assert main(["summary", "lenet5"]) == 2
    line = _one_error_line(capsys.readouterr().err, "striate summary")
    assert "STRIATE_NUM_THREADS='abc'" in line and "layer" not in line
    # the library too: the variable is read when the first op splits its work
    monkeypatch.setitem(threads._config, "threads", None)
    monkeypatch.setattr(threads, "MIN_PART", 1)  # every op splits its work, so the first conv reads it
    with pytest.raises(threads.SettingError, match="STRIATE_NUM_THREADS") as e:
        st.summary(st.models.lenet5(), (28, 28, 1))
    assert "Conv2D" not in str(e.value) and "failed on input" not in str(e.value)


def test_a_repeated_layer_key_is_refused(capsys):
    assert main(["calc", "--input", "9", "--layer", "k=3,k=5"]) == 2
    line = _one_error_line(capsys.readouterr().err, "striate calc")
    assert "kernel is given twice" in line and "'k=3,k=5'" in line
    assert main(["calc", "--input", "9", "--layer", "k=3,s=2,stride=1"]) == 2
    assert "stride is given twice" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ ONNX
def _relu_model(onnx, opset):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_onnx_reason_for_refusing_a_file_is_shown(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../outside.bin"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="points outside the directory"):
        st.onnx.load(path)
    assert main(["import", str(path), "--out", str(tmp_path / "w.npz")]) == 2
    line = _one_error_line(capsys.readouterr().err, "striate import")
    assert "points outside the directory" in line and "ValidationError" not in line


def test_an_opset_too_new_names_the_supported_range(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    newest = onnx.defs.onnx_opset_version()
    model = _relu_model(onnx, newest + 2)
    with pytest.raises(ValueError, match=f"opset {newest + 2}; striate imports opsets 1 to {newest}"):
        st.onnx.from_onnx(model)
    path = tmp_path / "new.onnx"
    onnx.save(model, str(path))
    assert main(["import", str(path), "--out", str(tmp_path / "w.npz")]) == 2
    line = _one_error_line(capsys.readouterr().err, "striate import")
    assert f"opset {newest + 2}" in line and f"1 to {newest}" in line and "Assertion" not in line
    assert st.onnx.from_onnx(_relu_model(onnx, 13))[0] is not None  # an older opset still converts


# ------------------------------------------------------------------------------------ bounded animations
@pytest.mark.parametrize("argv,message", [
    (["--input", "500", "--kernel", "3"], "--input 500 makes 248,004 frames (one per output cell); the limit is 400"),
    (["--input", "100"], "--input 100 makes 9,604 frames"),
    (["--input", "30", "--kernel", "3", "--transposed"], "--input 30 makes 900 frames (one per input cell)"),
    (["--input", "60", "--kernel", "58", "--cell", "200"], "--input 60 with --cell 200 draws frames of 144 megapixels"),
])
def test_animations_too_large_are_refused_before_anything_is_built(argv, message, tmp_path, capsys):
    import tracemalloc
    tracemalloc.start()
    try:
        assert main(["animate", "conv", *argv, "--out", str(tmp_path / "a.gif")]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in _one_error_line(capsys.readouterr().err, "striate animate")
    assert peak < 5 * 2**20 and not os.path.exists(tmp_path / "a.gif")


def test_a_gif_is_written_one_frame_at_a_time_as_pillow_would_write_it(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import weakref

    from PIL import ImageSequence

    from striate.vis import animate
    anim = st.vis.conv_animation((4, 5), 2, stride=1, padding=1, rng=3)
    alive = []

    def frames():
        for im in animate.frame_images(anim, numbers=True, cell=20):
            alive.append(weakref.ref(im))
            assert sum(r() is not None for r in alive) <= 3  # the new frame, the one before, nothing older
            yield im

    palette = animate._palette(animate.frame_images(anim, numbers=True, cell=20, indices=[0, 15, 29]))
    with open(tmp_path / "streamed.gif", "wb") as f:
        assert animate._write_gif(f, frames(), palette, duration=100) == len(anim.frames) == 30
    # the same frames through Pillow's own writer, which holds them all
    quantized = [im.quantize(palette=palette) for im in st.vis.draw_frames(anim, numbers=True, cell=20)]
    quantized[0].save(tmp_path / "pillow.gif", save_all=True, append_images=quantized[1:], duration=100, loop=0,
                      disposal=1)
    with Image.open(tmp_path / "streamed.gif") as a, Image.open(tmp_path / "pillow.gif") as b:
        assert a.info["loop"] == 0 and a.info["duration"] == 100
        ours = [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(a)]
        theirs = [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(b)]
    assert len(ours) == len(theirs) == 30
    for x, y in zip(ours, theirs):
        np.testing.assert_array_equal(x, y)
    assert all(np.abs(x.astype(int) - y).sum() > 0 for x, y in zip(ours, ours[1:]))


def test_frames_are_made_on_demand():
    a = st.vis.conv_animation(40, 3, rng=0)           # 1444 frames: none made until read
    assert len(a.frames) == 38 * 38
    last = a.frames[-1]
    assert last.cell == (37, 37) and not np.isnan(last.output).any()
    np.testing.assert_array_equal(last.output, a.y)
    assert np.isnan(a.frames[0].output).sum() == a.y.size - 1
    with pytest.raises(IndexError):
        a.frames[len(a.frames)]
