"""st.training.TensorBoard and `striate train --tensorboard`: event files read back with TensorBoard's own reader."""
import io
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

import striate as st  # noqa: E402
from striate import nn  # noqa: E402
from striate.cli.main import main  # noqa: E402
from striate.data import DataLoader  # noqa: E402


def _read(folder):
    ea = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    ea.Reload()
    return ea


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return centres[y] + 0.3 * rng.standard_normal((n, 8, 8, 1)).astype(np.float32), y


def _model():
    model = nn.Sequential(nn.Conv2D(4, 3, padding="same", rng=0), nn.ReLU(), nn.Conv2D(6, 3, rng=0), nn.ReLU(),
                          nn.Flatten(), nn.Dense(3, rng=0))
    return model.build((8, 8, 1))


def test_scalars_images_and_histograms_round_trip(tmp_path):
    x, y = _data()
    model = _model()
    tb = st.training.TensorBoard(tmp_path / "tb", update_freq=2)
    history = st.training.fit(model, DataLoader(x[:64], y[:64], batch_size=16), DataLoader(x[64:], y[64:], batch_size=32),
                              epochs=3, optimizer=st.optim.SGD(model.parameters(), lr=0.05), callbacks=[tb], verbose=0)
    ea = _read(tmp_path / "tb")
    tags = ea.Tags()
    for key, tag in (("loss", "loss/train"), ("val_loss", "loss/val"), ("acc", "accuracy/train"),
                     ("val_acc", "accuracy/val"), ("lr", "learning_rate")):
        events = ea.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3], tag
        np.testing.assert_allclose([e.value for e in events], history.history[key], rtol=1e-6, err_msg=tag)
    assert [e.step for e in ea.Scalars("loss/step")] == [2, 4, 6, 8, 10, 12]  # 4 steps per epoch, every 2nd
    # one histogram per parameter and epoch, of the right size; gradients are those of the last step
    for name, p in model.named_parameters():
        w = ea.Histograms(f"weights/{name}")
        g = ea.Histograms(f"gradients/{name}")
        assert len(w) == 3 and len(g) == 3, name
        assert w[-1].histogram_value.num == p.data.size
        assert w[-1].histogram_value.min == pytest.approx(float(p.data.min()), rel=1e-6)
        assert g[-1].histogram_value.max == pytest.approx(float(p.grad.max()), rel=1e-6)
    from PIL import Image
    assert {"filters/0", "activations/0", "activations/2"} <= set(tags["images"])
    filters = np.asarray(Image.open(io.BytesIO(ea.Images("filters/0")[-1].encoded_image_string)))
    maps = np.asarray(Image.open(io.BytesIO(ea.Images("activations/2")[-1].encoded_image_string)))
    assert filters.shape[0] >= 90 and filters.std() > 10  # 4 enlarged 3x3 kernels, not a blank picture
    assert max(maps.shape[:2]) >= 150 and maps.std() > 10  # six 6x6 maps in a 3x2 grid, enlarged
    assert tb.writer is None  # closed by fit's on_train_end


def test_a_second_writer_on_the_same_folder_is_refused(tmp_path):
    first = st.training.TensorBoard(tmp_path)
    with pytest.raises(ValueError, match="another writer is already logging into") as e:
        st.training.TensorBoard(tmp_path)
    assert "\n" not in str(e.value)
    first.close()
    st.training.TensorBoard(tmp_path).close()  # free again once the first is closed


def test_a_writer_in_another_process_is_refused(tmp_path):
    code = ("import sys, striate as st; tb = st.training.TensorBoard(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ValueError, match=f"process {holder.pid}"):
            st.training.TensorBoard(tmp_path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    st.training.TensorBoard(tmp_path).close()  # the lock died with its process


@pytest.mark.parametrize("kwargs, message", [
    ({"histogram_freq": -1}, "histogram_freq must be an int >= 0"),
    ({"update_freq": 0}, "update_freq must be an int >= 1"),
    ({"probe": np.zeros((8, 8))}, "probe must be one image (height, width, channels)"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as e:
        st.training.TensorBoard(tmp_path, **kwargs)
    assert message in str(e.value)


def test_train_tensorboard_flag(tmp_path, capsys):
    pytest.importorskip("sklearn")
    tb_dir = tmp_path / "tb"
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--tensorboard", str(tb_dir), "-q"]) == 0
    ea = _read(tb_dir)
    assert len(ea.Scalars("accuracy/val")) == 1 and "filters/features.0" in ea.Tags()["images"]
    held = st.training.TensorBoard(tb_dir)  # a run still writing there
    try:
        assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run2"), "--tensorboard", str(tb_dir)]) == 2
    finally:
        held.close()
    err = capsys.readouterr().err
    assert "--tensorboard: another writer is already logging into" in err and err.count("\n") == 1
