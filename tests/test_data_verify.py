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

from data_paths import FASHION_DEBIAN_DIR, MNIST_DIR, needs_fashion_debian, needs_mnist  # noqa: E402
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


def test_a_gunzipped_copy_without_a_recorded_content_hash_cannot_be_checked_and_says_so(tmp_path):
    info = datasets.DATASETS["fashion_mnist"]
    remote = dataclasses.replace(info.files[1], raw_sha256=None)  # only the archive's hash known
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 3]))
    with pytest.raises(ValueError, match="cannot be checked"):
        datasets._verify_local(info, remote, str(tmp_path / "train-labels-idx1-ubyte"))


@needs_fashion_debian
def test_debians_packaged_fashion_mnist_is_accepted_as_published():
    published = {f.filename: f for f in datasets.DATASETS["fashion_mnist"].files}
    for name in IDX_NAMES:  # the distribution compressed them again: other archives, the published content
        path = os.path.join(FASHION_DEBIAN_DIR, name)
        assert datasets.sha256_file(path) != published[name].sha256
        assert content_sha256(path) == published[name].raw_sha256
    assert datasets.identify_files(FASHION_DEBIAN_DIR) == ("fashion_mnist", "idx")
    ds = st.data.load_dataset("fashion_mnist", data_dir=FASHION_DEBIAN_DIR, download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10  # Fashion-MNIST's balanced test set


@needs_fashion_debian
def test_fashion_content_changed_and_compressed_again_is_refused(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    for other in IDX_NAMES:
        with open(os.path.join(FASHION_DEBIAN_DIR, other), "rb") as f:
            data = f.read()
        if other == name:  # relabel the last test image
            raw = gzip.decompress(data)
            data = gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10]), mtime=1)
        (tmp_path / other).write_bytes(data)
    with pytest.raises(ValueError, match=f"{name} is not fashion_mnist's published"):
        st.data.load_dataset("fashion_mnist", data_dir=str(tmp_path), download=False, test_only=True)


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
