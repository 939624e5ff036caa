"""A faithful copy of a published data set is accepted whatever its gzip bytes (its content is checked);
anything else is refused; a failed download names the option a user types, once."""
import dataclasses
import gzip
import os

import numpy as np
import pytest

import striate as st
from striate.data import datasets
from striate.data.formats import content_sha256

from data_paths import MNIST_DIR, needs_mnist  # noqa: E402
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _recompressed(folder, level, names=IDX_NAMES, change=None):
    """MNIST's files ``names`` gunzipped and gzipped again at ``level`` (another header time too), the
    others copied as published; ``change`` maps a file name to a function of its content bytes."""
    os.makedirs(folder, exist_ok=True)
    for name in IDX_NAMES:
        with open(os.path.join(MNIST_DIR, name), "rb") as f:
            data = f.read()
        if name in names:
            data = gzip.decompress(data)
            if change and name in change:
                data = change[name](data)
            data = gzip.compress(data, compresslevel=level, mtime=1234567890)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return str(folder)


@needs_mnist
def test_mnist_compressed_again_is_accepted_as_mnist(tmp_path):
    small = IDX_NAMES[1:]  # the 47 MB of training images would take seconds to compress: the same path
    mine = _recompressed(tmp_path / "level1", level=1, names=small)
    published = {f.filename: f for f in datasets.DATASETS["mnist"].files}
    for name in small:  # the container differs, the content is the published one
        assert datasets.sha256_file(os.path.join(mine, name)) != published[name].sha256
        assert content_sha256(os.path.join(mine, name)) == published[name].raw_sha256
    assert datasets.identify_files(mine) == ("mnist", "idx")
    ours = st.data.load_dataset("mnist", data_dir=mine, download=False)
    with gzip.open(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")) as f:  # read by hand
        expected = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 28, 28, 1)
    np.testing.assert_array_equal(ours.x_test, expected)
    assert ours.x_train.shape == (60000, 28, 28, 1) and len(ours.y_train) == 60000


@needs_mnist
def test_changed_content_compressed_again_is_refused(tmp_path):
    def flip(data):  # one pixel of the last test image
        return data[:-1] + bytes([255 - data[-1]])

    name = "t10k-images-idx3-ubyte.gz"
    mine = _recompressed(tmp_path / "changed", level=1, names=(name,), change={name: flip})
    with pytest.raises(ValueError, match=f"{name} is not mnist's published t10k-images") as e:
        st.data.load_dataset("mnist", data_dir=mine, download=False, test_only=True)
    assert "--no-verify" in str(e.value)


def test_a_fashion_copy_gunzipped_cannot_be_checked_and_says_so(tmp_path):
    # only the published archives' hashes are known for Fashion-MNIST
    info = datasets.DATASETS["fashion_mnist"]
    assert all(f.raw_sha256 is None for f in info.files)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 3]))
    with pytest.raises(ValueError, match="cannot be checked"):
        datasets._verify_local(info, info.files[1], str(tmp_path / "train-labels-idx1-ubyte"))


def test_a_failed_download_names_data_dir_once(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    from striate.cli.main import main
    info = datasets.DATASETS["mnist"]
    mirrors = ("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/")  # nothing listens: refused at once
    files = tuple(dataclasses.replace(f, urls=tuple(m + f.filename for m in mirrors)) for f in info.files)
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(info, files=files))
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("striate train: error:")]
    assert len(line) == 1 and "Traceback" not in err, err
    line = line[0]
    assert line.count("--data-dir") == 1 and "data_dir=" not in line
    assert "2 mirrors" in line and line.count("127.0.0.1") == 0 and "(3 tries)" in line
    # the library keeps one reason per mirror, and names its own argument
    with pytest.raises(st.data.DownloadError) as e:
        st.data.load_dataset("mnist", progress=False)
    assert set(e.value.failures) == {m + "train-images-idx3-ubyte.gz" for m in mirrors}
    assert str(e.value).count("127.0.0.1:9/a/") == 1 and "data_dir=" in str(e.value)
