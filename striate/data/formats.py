"""Readers for the file formats the classic data sets are published in (NumPy + stdlib only).

* IDX (MNIST, Fashion-MNIST): a big-endian header -- two zero bytes, a type code, the number of
  dimensions -- then one big-endian int32 per dimension, then the values. Files may be gzip-compressed;
  the gzip magic ``1f 8b`` is recognised from the bytes, not the file name.
* CIFAR-10 "python version": a tar.gz (or its extracted ``cifar-10-batches-py`` folder) holding pickled
  dicts ``{b"data": uint8 (N, 3072) rows of R(1024) G(1024) B(1024), b"labels": [N ints]}``.

Every reader checks what it reads and names the file in its error when the bytes are not what the
format promises (wrong magic, truncated payload), so a partial download can never pass as data.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

__all__ = ["read_idx", "read_cifar10", "content_sha256"]

# IDX type code -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: str) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(
                f"{path}: the gzip stream is truncated or corrupt ({err}). The file is damaged or a "
                f"partial download; delete it and download it again."
            ) from None
    return raw


def content_sha256(path: str) -> str:
    """Hex SHA-256 of a file's content: of its gunzipped bytes when it starts with the gzip magic, else
    of the file. Two gzip files of the same data (compressed at another level, or with another name or
    time in their header) have the same content hash, whatever their own bytes.

    Raises:
        ValueError: the gzip stream is truncated or corrupt.
    """
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        zipped = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if zipped else open)(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):  # 1 MiB at a time: small memory
                digest.update(chunk)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"{path}: the gzip stream is truncated or corrupt ({err}). The file is damaged or a "
            f"partial download; delete it and download it again."
        ) from None
    return digest.hexdigest()


def read_idx(path: str, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array of its stored type.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz`` (magic 2051: uint8, 3 dims) or
            ``train-labels-idx1-ubyte`` (magic 2049: uint8, 1 dim).
        expected_ndim: refuse a file with a different number of dimensions (3 for images, 1 for labels).

    Shape:
        The dimensions stored in the header, e.g. ``(60000, 28, 28)`` for MNIST training images.

    Example:
        >>> read_idx("train-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
        (60000,)
    """
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty file'}; expected "
            f"00 00 <type> <ndim>, e.g. 00000803 for images or 00000801 for labels)."
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(
            f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim} "
            f"(magic {int.from_bytes(data[:4], 'big')}, expected {0x800 + expected_ndim}). "
            f"Are the image and label files swapped?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated ({len(data)} bytes, need {header}).")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    expected_bytes = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_bytes:
        raise ValueError(
            f"{path}: IDX payload has {len(data) - header} bytes but the header {shape} promises "
            f"{expected_bytes - header}. The file is truncated or corrupt; delete it and download it again."
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# ------------------------------------------------------------------------------------------- CIFAR-10
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = "test_batch"
_CIFAR_META = "batches.meta"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain containers and NumPy arrays only.

    Pickle can run arbitrary code; the CIFAR batches need nothing beyond ndarray reconstruction, so
    every other global is refused (a tampered file fails loudly instead of executing).
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data file")


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:  # any failure here means a damaged file
        raise ValueError(f"{where}: not a CIFAR-10 python batch ({type(err).__name__}: {err}).") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a CIFAR-10 python batch (a {type(obj).__name__}, expected a dict).")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(blob: bytes, where: str):
    d = _unpickle(blob, where)
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{where}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(d)}).")
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
        raise ValueError(
            f"{where}: CIFAR-10 batch has data {x.dtype}{x.shape} and {len(y)} labels; expected uint8 "
            f"(N, 3072) and N labels."
        )
    # Rows are channel-major (R plane, G plane, B plane): (N, 3072) -> (N, 3, 32, 32) -> NHWC.
    return np.ascontiguousarray(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), y


def read_cifar10(path: str):
    """Read CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py`` folder.

    Returns:
        ``(x_train, y_train, x_test, y_test, class_names)``; images uint8 NHWC ``(N, 32, 32, 3)``,
        labels int64 ``(N,)``.

    Example:
        >>> x_train, y_train, x_test, y_test, names = read_cifar10("cifar-10-python.tar.gz")  # doctest: +SKIP
        >>> x_train.shape  # doctest: +SKIP
        (50000, 32, 32, 3)
    """
    blobs = {}
    wanted = set(_CIFAR_TRAIN) | {_CIFAR_TEST, _CIFAR_META}
    if os.path.isdir(path):
        for member in wanted:
            f = os.path.join(path, member)
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    blobs[member] = fh.read()
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for info in tar:
                    base = os.path.basename(info.name)
                    if info.isfile() and base in wanted:
                        blobs[base] = tar.extractfile(info).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise ValueError(
                f"{path}: cannot read the CIFAR-10 archive ({type(err).__name__}: {err}). The file is "
                f"truncated or corrupt; delete it and download it again."
            ) from None
    missing = [m for m in _CIFAR_TRAIN + [_CIFAR_TEST] if m not in blobs]
    if missing:
        raise ValueError(
            f"{path}: CIFAR-10 files missing: {', '.join(missing)}. Expected data_batch_1..5 and "
            f"test_batch (the contents of cifar-10-python.tar.gz)."
        )
    train = [_cifar_batch(blobs[m], f"{path}:{m}") for m in _CIFAR_TRAIN]
    x_test, y_test = _cifar_batch(blobs[_CIFAR_TEST], f"{path}:{_CIFAR_TEST}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    class_names = None
    if _CIFAR_META in blobs:
        meta = _unpickle(blobs[_CIFAR_META], f"{path}:{_CIFAR_META}")
        names = meta.get("label_names")
        if names is not None:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return x_train, y_train, x_test, y_test, class_names
