"""Data sets: real MNIST, small IDX/CIFAR files written here, image folders, digits, splits."""
import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from striate.data import Dataset, load_dataset, read_cifar10, read_idx, stratified_split

from data_paths import MNIST_DIR  # noqa: E402


# ------------------------------------------------------------------------------------- real MNIST
@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="shared MNIST copy not present")
def test_real_mnist_reader():
    ds = load_dataset("mnist", data_dir=MNIST_DIR, download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,) and ds.y_train.dtype == np.int64
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9 and ds.num_classes == 10
    assert ds.input_shape == (28, 28, 1)
    # Independent reading: skip the 16-byte image header / 8-byte label header by hand.
    with gzip.open(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(os.path.join(MNIST_DIR, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    assert raw.size == 10000 * 784
    assert ds.x_test.astype(np.int64).sum() == raw.astype(np.int64).sum()
    np.testing.assert_array_equal(ds.x_test[1234, :, :, 0], raw[1234 * 784:1235 * 784].reshape(28, 28))
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.bincount(labels))
    # The parent folder works too (sub-folder named after the data set).
    assert load_dataset("mnist", data_dir=os.path.dirname(MNIST_DIR)).x_test.shape == (10000, 28, 28, 1)


# --------------------------------------------------------------------------------- small IDX files
def _idx_bytes(arr, type_code=0x08):
    arr = np.asarray(arr)
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def _write_mnist(folder, gz=True, n_train=7, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 6, 5)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 6, 5)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    os.makedirs(folder, exist_ok=True)
    for name, arr in arrays.items():
        blob = _idx_bytes(arr)
        path = os.path.join(folder, name + (".gz" if gz else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(blob) if gz else blob)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_from_data_dir(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    ds = load_dataset("mnist", data_dir=str(tmp_path), verify=False, download=False)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.x_train.shape == (7, 6, 5, 1) and ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64


def test_fashion_mnist_names_and_alias(tmp_path):
    _write_mnist(tmp_path / "fashion_mnist")
    ds = load_dataset("Fashion-MNIST", data_dir=str(tmp_path), verify=False)
    assert ds.name == "fashion_mnist" and ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_read_idx_other_types(tmp_path):
    p = tmp_path / "a.idx"
    p.write_bytes(_idx_bytes(np.array([[1, -2], [300, 4]]), type_code=0x0C))
    out = read_idx(str(p))
    assert out.dtype == np.int32 and out.tolist() == [[1, -2], [300, 4]]


def test_bad_magic_names_file(tmp_path):
    _write_mnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + b"\x00" * 100))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*bad magic"):
        load_dataset("mnist", data_dir=str(tmp_path), verify=False)


def test_truncated_payload_names_file(tmp_path):
    _write_mnist(tmp_path, gz=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", data_dir=str(tmp_path), verify=False)


def test_truncated_gzip_names_file(tmp_path):
    _write_mnist(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-12])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*(truncated|corrupt)"):
        load_dataset("mnist", data_dir=str(tmp_path), verify=False)


def test_swapped_files_detected(tmp_path):
    _write_mnist(tmp_path)
    a, b = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)
    with pytest.raises(ValueError, match="expected 3"):
        load_dataset("mnist", data_dir=str(tmp_path), verify=False)


def test_label_count_mismatch(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.arange(3))))
    with pytest.raises(ValueError, match="7 images but .* 3 labels"):
        load_dataset("mnist", data_dir=str(tmp_path), verify=False)


def test_missing_file_in_data_dir(tmp_path):
    _write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz not found"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_unknown_name():
    with pytest.raises(ValueError, match="Unknown data set 'imagenet5'.*cifar10.*digits"):
        load_dataset("imagenet5")


# ------------------------------------------------------------------------------------ fake CIFAR-10
def _cifar_tarball(path, n_per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8)
            labels = rng.integers(0, 10, n_per_batch).tolist()
            batches[name] = (data, labels)
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data})
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    return batches


def test_cifar_tarball_nchw_rows_to_nhwc(tmp_path):
    batches = _cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    ds = load_dataset("cifar10", data_dir=str(tmp_path), verify=False, download=False)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.class_names == [f"c{i}" for i in range(10)]
    data, labels = batches["data_batch_2"]
    # Row layout: R plane (1024), G plane, B plane, each row-major 32x32.
    n, i, j, c = 1, 5, 17, 2
    assert ds.x_train[3 + n, i, j, c] == data[n, c * 1024 + i * 32 + j]
    np.testing.assert_array_equal(ds.x_train[3:6, :, :, 0], data[:, :1024].reshape(3, 32, 32))
    assert ds.y_train[3:6].tolist() == labels
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][1])


def test_cifar_extracted_folder(tmp_path):
    _cifar_tarball(tmp_path / "c.tar.gz")
    with tarfile.open(tmp_path / "c.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    x_train, y_train, x_test, y_test, names = read_cifar10(str(tmp_path / "x" / "cifar-10-batches-py"))
    ds = load_dataset("cifar10", data_dir=str(tmp_path / "x"), verify=False)
    np.testing.assert_array_equal(ds.x_train, x_train)
    assert x_test.shape == (3, 32, 32, 3)


def test_cifar_truncated_tarball(tmp_path):
    _cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    p = tmp_path / "cifar-10-python.tar.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz.*(truncated|corrupt|missing)"):
        load_dataset("cifar10", data_dir=str(tmp_path), verify=False)


def test_cifar_pickle_with_code_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "cifar-10-batches-py"
    path.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (path / name).write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load global"):
        read_cifar10(str(path))


# ------------------------------------------------------------------------------------ image folders
def _write_pngs(root, classes=("cat", "dog"), per_class=5, size=(6, 5), mode="RGB", seed=0):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    images = {}
    for cls in classes:
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for k in range(per_class):
            shape = size + ((3,) if mode == "RGB" else ())
            a = rng.integers(0, 256, shape).astype(np.uint8)
            Image.fromarray(a, mode=mode).save(os.path.join(root, cls, f"{k:03d}.png"))
            images[(cls, k)] = a
    return images


def test_image_folder_rgb(tmp_path):
    images = _write_pngs(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    ds = load_dataset(str(tmp_path / "pets"))
    assert ds.class_names == ["cat", "dog"] and ds.name == "pets"
    assert ds.x_train.shape == (8, 6, 5, 3) and ds.x_test.shape == (2, 6, 5, 3)  # 20% held out
    assert sorted(ds.y_test.tolist()) == [0, 1]  # stratified: one per class
    # Every loaded image is one of the written ones with its own label (PNG is lossless).
    for x, y in zip(np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])):
        cls = ds.class_names[y]
        assert any(np.array_equal(x, images[(cls, k)]) for k in range(5))
    again = load_dataset(str(tmp_path / "pets"))
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_image_folder_gray_resize_and_own_split(tmp_path):
    _write_pngs(tmp_path / "d" / "train", classes=("a", "b", "c"), per_class=2, size=(7, 9), mode="L")
    _write_pngs(tmp_path / "d" / "test", classes=("a", "b", "c"), per_class=1, size=(7, 9), mode="L", seed=1)
    ds = load_dataset(str(tmp_path / "d"), image_size=(4, 3))
    assert ds.x_train.shape == (6, 4, 3, 1) and ds.x_test.shape == (3, 4, 3, 1)
    assert ds.class_names == ["a", "b", "c"] and ds.y_test.tolist() == [0, 1, 2]


@pytest.mark.filterwarnings("ignore:Image folder .* have no test images")  # 2 + 3 images: one class gets none
def test_image_folder_empty_and_bad_image(tmp_path):
    (tmp_path / "e" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found"):
        load_dataset(str(tmp_path / "e"))
    _write_pngs(tmp_path / "b", per_class=2)
    (tmp_path / "b" / "cat" / "zzz.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="zzz.png: cannot read"):
        load_dataset(str(tmp_path / "b"))


# ------------------------------------------------------------------------------------------- digits
def test_digits_embedded_split():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.num_classes == 10 and ds.input_shape == (8, 8, 1)
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37  # ~20% of ~180 per class
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    # Train + test is exactly the scikit-learn set, pixels 0..16 scaled to 0..255.
    ref = sklearn_datasets.load_digits()
    ref_x = np.round(ref.images / 16 * 255).astype(np.uint8).reshape(1797, 64)
    ours = np.concatenate([ds.x_train, ds.x_test]).reshape(1797, 64)
    key = lambda a, y: sorted(map(bytes, np.concatenate([a, y[:, None].astype(np.uint8)], 1)))
    assert key(ours, np.concatenate([ds.y_train, ds.y_test])) == key(ref_x, ref.target)
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0


def test_image_size_resizes_named_dataset():
    pytest.importorskip("sklearn")
    ds = load_dataset("digits", image_size=16)
    assert ds.x_train.shape == (1437, 16, 16, 1) and ds.x_train.dtype == np.uint8


def test_stratified_split_properties():
    y = np.repeat(np.arange(3), [10, 20, 71])
    tr, te = stratified_split(y, 20, seed=3)
    assert len(te) == 20 and len(tr) == 81 and not set(tr) & set(te)
    assert np.bincount(y[te]).tolist() == [2, 4, 14]  # 101 -> 20: 1.98, 3.96, 14.06 by largest remainder
    tr2, te2 = stratified_split(y, 20, seed=3)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, stratified_split(y, 20, seed=4)[1])


def test_dataset_validation():
    x = np.zeros((4, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="x_train must be 4D.*\\[..., None\\]"):
        Dataset(np.zeros((4, 2, 2)), np.zeros(4, int), x, np.zeros(4, int))
    with pytest.raises(ValueError, match="y_test must be 1D with one label per image \\(4\\)"):
        Dataset(x, np.zeros(4, int), x, np.zeros(3, int))
    with pytest.raises(TypeError, match="integer class labels"):
        Dataset(x, np.zeros(4), x, np.zeros(4, int))
    with pytest.raises(ValueError, match="label 5"):
        Dataset(x, np.array([0, 1, 2, 5]), x, np.zeros(4, int), class_names=["a", "b", "c"])
    ds = Dataset(x, np.array([0, 1, 2, 1]), x, np.zeros(4, np.int32))
    assert ds.class_names == ["0", "1", "2"] and ds.y_test.dtype == np.int64 and ds.num_classes == 3
