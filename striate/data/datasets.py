"""Data sets: the :class:`Dataset` container, the table of known data sets, :func:`load_dataset`.

Known names (:data:`DATASETS`, a module-level dict that tests and users may extend or patch):

========================  ===========================================================================
``digits``                scikit-learn's 8x8 handwritten digits (1,797 real images, UCI), embedded in
                          scikit-learn so it works offline; a fixed stratified split (seed 0) keeps
                          360 images for test. Pixel values 0..16 are scaled to uint8 0..255.
``mnist``                 MNIST, 60,000 + 10,000 28x28 grayscale digits (LeCun, Cortes, Burges).
``fashion_mnist``         Fashion-MNIST, same layout, 10 clothing classes (Xiao, Rasul, Vollgraf).
``cifar10``               CIFAR-10, 50,000 + 10,000 32x32 colour images (Krizhevsky, 2009).
``digits_anywhere``       1-4 of the embedded 8x8 digits, scaled and placed anywhere on 64x64 canvases,
                          with boxes and masks (detection and segmentation; :mod:`striate.data.canvas`).
``mnist_anywhere``        the same from MNIST's digits (its files as for ``mnist``).
``digits_localisation``   one embedded digit anywhere on a 56x56 canvas, with its box (localisation).
``mnist_localisation``    the same from MNIST's digits.
========================  ===========================================================================

The four canvas sets are made deterministically (seed 0) when loaded and return an
:class:`~striate.data.annotated.AnnotatedDataset`, not a :class:`Dataset`.

Anything else is taken as a path to an image folder (see :mod:`striate.data.image_folder`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..names import did_you_mean, match
from ..optional import require
from .container import Dataset, _size_pair, stratified_split
from .download import DownloadError, default_cache_dir, download_file, sha256_file
from .formats import content_sha256, read_cifar10, read_idx

__all__ = ["Dataset", "RemoteFile", "DatasetInfo", "DATASETS", "load_dataset", "stratified_split", "canonical_name",
           "identify_files"]


# --------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name, SHA-256 and mirror URLs (tried in order).

    ``raw_sha256`` is the SHA-256 of the gunzipped bytes of a ``.gz`` file, where known, so that a
    copy gunzipped, or compressed again (as Linux distributions package it), is verified by its content.
    """

    filename: str
    sha256: str
    urls: tuple
    raw_sha256: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A known data set: how to build it (``kind``) and the files it needs."""

    name: str
    kind: str                      # "digits" (embedded), "idx" (MNIST layout), "cifar10" or "canvas" (made here)
    files: tuple = ()              # RemoteFile entries
    class_names: tuple = ()
    description: str = ""
    aliases: tuple = field(default=())


def _mirrors(filename: str, *bases: str) -> tuple:
    return tuple(base + filename for base in bases)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/",
                  "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# SHA-256 sources:
# * MNIST: a verified copy of the published files; the same values appear in
#   pytorch/vision torchvision/prototype/datasets/_builtin/mnist.py (MNIST._CHECKSUMS).
# * Fashion-MNIST: pytorch/vision torchvision/prototype/datasets/_builtin/mnist.py
#   (FashionMNIST._CHECKSUMS), the files whose MD5s torchvision's FashionMNIST checks.
# * CIFAR-10: keras/datasets/cifar10.py (get_file file_hash) and pytorch/vision
#   torchvision/prototype/datasets/_builtin/cifar.py (HttpResource sha256); MD5 c58f30108f718f92721af3b95e74349a.
_MNIST_SHA256 = ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                 "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                 "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")
_FASHION_SHA256 = ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")
# SHA-256 of the gunzipped files (the IDX content), computed from the verified .gz files above. A copy whose
# gzip bytes differ (Debian's dataset-fashion-mnist package re-compresses them, for one) is checked against these.
_MNIST_RAW_SHA256 = ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")
_FASHION_RAW_SHA256 = ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                       "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                       "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                       "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34")
_CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"

DATASETS: dict = {
    "digits": DatasetInfo(
        "digits", "digits", class_names=tuple(str(i) for i in range(10)),
        description="scikit-learn 8x8 digits: 1,437 train + 360 test, 8x8x1, embedded (no download)"),
    "mnist": DatasetInfo(
        "mnist", "idx",
        files=tuple(RemoteFile(f, s, _mirrors(f, *_MNIST_MIRRORS), r)
                    for f, s, r in zip(_IDX_FILES, _MNIST_SHA256, _MNIST_RAW_SHA256)),
        class_names=tuple(str(i) for i in range(10)),
        description="MNIST: 60,000 train + 10,000 test, 28x28x1"),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", "idx",
        files=tuple(RemoteFile(f, s, _mirrors(f, *_FASHION_MIRRORS), r)
                    for f, s, r in zip(_IDX_FILES, _FASHION_SHA256, _FASHION_RAW_SHA256)),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                     "Bag", "Ankle boot"),
        description="Fashion-MNIST: 60,000 train + 10,000 test, 28x28x1", aliases=("fashion-mnist", "fashionmnist")),
    "cifar10": DatasetInfo(
        "cifar10", "cifar10",
        files=(RemoteFile("cifar-10-python.tar.gz", _CIFAR10_SHA256,
                          ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)),),
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        description="CIFAR-10: 50,000 train + 10,000 test, 32x32x3", aliases=("cifar-10", "cifar_10")),
    # Canvases of digits (striate.data.canvas.CANVAS_SETS holds their sizes): made here, not downloaded.
    "digits_anywhere": DatasetInfo(
        "digits_anywhere", "canvas", class_names=tuple(str(i) for i in range(10)),
        description="1-4 embedded 8x8 digits anywhere on 64x64 canvases, boxes and masks: 6,000 train + 1,000 test"),
    "mnist_anywhere": DatasetInfo(
        "mnist_anywhere", "canvas", class_names=tuple(str(i) for i in range(10)),
        description="1-4 MNIST digits anywhere on 64x64 canvases, boxes and masks: 20,000 train + 2,000 test"),
    "digits_localisation": DatasetInfo(
        "digits_localisation", "canvas", class_names=tuple(str(i) for i in range(10)),
        description="one embedded 8x8 digit anywhere on a 56x56 canvas, its box: 6,000 train + 1,000 test",
        aliases=("digits_localization",)),
    "mnist_localisation": DatasetInfo(
        "mnist_localisation", "canvas", class_names=tuple(str(i) for i in range(10)),
        description="one MNIST digit anywhere on a 56x56 canvas, its box: 20,000 train + 2,000 test",
        aliases=("mnist_localization",)),
}


def canonical_name(name) -> str | None:
    """The :data:`DATASETS` key a user's spelling of a data set name means, or None.

    Case, ``-``, ``_`` and spaces do not matter: ``"Fashion-MNIST"``, ``"fashionmnist"`` and
    ``"Fashion_MNIST"`` all give ``"fashion_mnist"``; ``"CIFAR-10"`` gives ``"cifar10"``. A path to a
    folder is not a name (None), unless it is spelled exactly like one and no such folder exists.

    Example:
        >>> canonical_name("FashionMNIST"), canonical_name("cifar-10"), canonical_name("my_photos")
        ('fashion_mnist', 'cifar10', None)
    """
    if not isinstance(name, (str, os.PathLike)):
        return None
    name = os.fspath(name)
    if os.sep in name or (os.altsep and os.altsep in name):
        return None  # a path, even if its last part is spelled like a data set
    for info in DATASETS.values():
        if match(name, (info.name, *info.aliases)) is not None:
            return info.name
    return None


def _lookup(name: str):
    canonical = canonical_name(name)
    return DATASETS.get(canonical) if canonical is not None else None


# ---------------------------------------------------------------------------------------- builders
def _load_digits(info: DatasetInfo, **_):
    # the 'digits' data set ships inside scikit-learn
    load_digits = require("sklearn.datasets", "data", "the embedded 'digits' data set").load_digits
    bunch = load_digits()
    # Pixel values are counts 0..16 (4x4 blocks of a 32x32 bitmap); scale to the usual uint8 range.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, n_test=360, seed=0)
    return Dataset(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
                   list(info.class_names), info.name)


def _local_candidates(folder: str, filename: str):
    """Names a published file may carry on disk: as published, gunzipped, or with '.idx' spellings."""
    names = [filename]
    if filename.endswith(".gz"):
        plain = filename[:-3]
        names += [plain, plain.replace("-idx", ".idx")]
    return [os.path.join(folder, n) for n in names]


def _find_local(data_dir: str, info: DatasetInfo, filename: str):
    # data_dir may be the folder with the files, or a parent holding a folder named after the data set.
    folders = [data_dir] + [os.path.join(data_dir, n) for n in (info.name,) + info.aliases]
    for folder in folders:
        for candidate in _local_candidates(folder, filename):
            if os.path.isfile(candidate):
                return candidate
    return None


def _which_file(path: str) -> str:
    """' (it is <data set>'s <file>)' when the file at ``path`` is another known published file, else ''."""
    whole, content = sha256_file(path), content_sha256(path)
    for other in DATASETS.values():
        for f in other.files:
            if whole == f.sha256:
                return f" (it is {other.name}'s {f.filename})"
            if content == f.raw_sha256:
                return f" (it is {other.name}'s {f.filename}, compressed again or gunzipped)"
    return ""


def _is_published(remote: RemoteFile, path: str) -> bool:
    """Whether the file at ``path`` is ``remote``'s data: its bytes as published, or (where the hash of
    the gunzipped content is recorded) the same content gunzipped or compressed again."""
    if sha256_file(path) == remote.sha256:
        return True
    return remote.raw_sha256 is not None and content_sha256(path) == remote.raw_sha256


def _verify_local(info: DatasetInfo, remote: RemoteFile, path: str) -> None:
    """Refuse a local file that is not the published one (checked by SHA-256 of the file, else of its
    gunzipped content, so that a faithful copy compressed again is accepted)."""
    way_out = ("Use the files as published, or load your own copy unchecked with verify=False "
               "(striate: --no-verify).")
    if os.path.isdir(path):
        raise ValueError(f"{path}: an extracted folder cannot be checked against the published SHA-256 of "
                         f"{info.name}'s {remote.filename}. Put {remote.filename} itself there. {way_out}")
    if _is_published(remote, path):
        return
    with open(path, "rb") as f:
        zipped = f.read(2) == b"\x1f\x8b"
    if not zipped and remote.raw_sha256 is None and remote.filename.endswith(".gz"):
        raise ValueError(f"{path}: a gunzipped copy of {info.name}'s {remote.filename} cannot be checked (only "
                         f"the SHA-256 of the published .gz file is known). Put {remote.filename} there. {way_out}")
    got = content_sha256(path) if not zipped or remote.raw_sha256 else sha256_file(path)
    expected = remote.raw_sha256 if not zipped or remote.raw_sha256 else remote.sha256
    raise ValueError(f"{path} is not {info.name}'s published {remote.filename}: SHA-256 {got[:12]}... does not "
                     f"match the published {expected[:12]}...{_which_file(path)}. {way_out}")


def identify_files(data_dir) -> tuple:
    """Which known data set a folder's files are: ``(name or None, layout or None)``.

    ``layout`` is ``"idx"`` when the folder (or a sub-folder named after a data set) holds the four
    MNIST-layout files (``train-images-idx3-ubyte.gz``, ...), ``"cifar10"`` for the CIFAR-10 archive,
    else None. ``name`` is the data set whose published training labels match by SHA-256 (MNIST and
    Fashion-MNIST share their file names, so only the bytes tell them apart), else None.

    Example:
        >>> identify_files("path/to/mnist")  # doctest: +SKIP
        ('mnist', 'idx')
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        return None, None
    layout = None
    for info in DATASETS.values():
        if not info.files:
            continue
        found = [_find_local(data_dir, info, f.filename) for f in info.files]
        if info.kind == "cifar10" and found[0] is None:
            if any(os.path.isdir(os.path.join(d, "cifar-10-batches-py")) for d in (data_dir, os.path.join(data_dir, info.name))):
                return info.name, "cifar10"
        if any(p is None for p in found):
            continue
        layout = info.kind
        if info.kind == "cifar10":
            return info.name, layout
        if _is_published(info.files[1], found[1]):  # the training labels: small, different in every data set
            return info.name, layout
    return None, layout


def _needed(info: DatasetInfo, test_only: bool) -> list:
    """Indices of ``info.files`` a load needs: the IDX test files alone when only the test split is asked for."""
    if test_only and info.kind == "idx":
        return [2, 3]
    return list(range(len(info.files)))


def _resolve_files(info: DatasetInfo, data_dir, download: bool, cache_dir, progress: bool,
                   verify: bool = True, test_only: bool = False) -> list:
    """One local path per needed RemoteFile: from data_dir, else the verified cache (downloading if allowed)."""
    files = [info.files[i] for i in _needed(info, test_only)]
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"data_dir {data_dir!r} is not a folder.")
        found = [_find_local(data_dir, info, f.filename) for f in files]
        if info.kind == "cifar10" and found[0] is None:
            for folder in (data_dir, os.path.join(data_dir, info.name)):
                extracted = os.path.join(folder, "cifar-10-batches-py")
                if os.path.isdir(extracted):
                    found = [extracted]
        missing = [f.filename for f, p in zip(files, found) if p is None]
        if missing:
            raise FileNotFoundError(
                f"{info.name}: {', '.join(missing)} not found in data_dir={data_dir!r}. Put the files as "
                f"published there (gunzipped copies are accepted too), or drop data_dir to download them "
                f"into the cache."
            )
        if verify:
            for f, p in zip(files, found):
                _verify_local(info, f, p)
        return found
    cache = os.path.join(cache_dir or default_cache_dir(), info.name)
    paths = []
    for f in files:
        path = os.path.join(cache, f.filename)
        if os.path.exists(path) and sha256_file(path) != f.sha256:
            if not download:
                raise ValueError(
                    f"{path}: checksum mismatch (expected sha256 {f.sha256}); the cached file is corrupt. "
                    f"Delete it, or call load_dataset(..., download=True) to fetch it again."
                )
        elif os.path.exists(path):
            paths.append(path)
            continue
        if not download:
            raise FileNotFoundError(
                f"{info.name}: {f.filename} is not in the cache {cache!r} and download=False. Either allow "
                f"the download (download=True), place the file there, or pass data_dir= pointing at a "
                f"folder that holds it. Sources: {', '.join(f.urls)}"
            )
        try:
            paths.append(download_file(f.urls, path, f.sha256, progress=progress))  # re-fetches a corrupt copy
        except DownloadError as e:
            raise DownloadError(f"{e} Or pass data_dir= a folder that holds {info.name}'s files.", e.path,
                                e.failures) from None
    return paths


def _load_idx(info: DatasetInfo, paths: list):
    if len(paths) == 2:  # the test split only: an empty training split of the same image shape
        x_test, y_test = read_idx(paths[0], expected_ndim=3), read_idx(paths[1], expected_ndim=1)
        x_train, y_train = np.zeros((0,) + x_test.shape[1:], np.uint8), np.zeros(0, np.int64)
        paths = [paths[0], paths[1]] + paths
    else:
        x_train, y_train, x_test, y_test = (
            read_idx(p, expected_ndim=3 if i % 2 == 0 else 1) for i, p in enumerate(paths)
        )
    for x, y, px, py in ((x_train, y_train, paths[0], paths[1]), (x_test, y_test, paths[2], paths[3])):
        if len(x) != len(y):
            raise ValueError(f"{px} holds {len(x)} images but {py} holds {len(y)} labels.")
        if x.dtype != np.uint8:
            raise ValueError(f"{px}: expected uint8 pixels, found {x.dtype}.")
    n_classes = len(info.class_names)
    for y, p in ((y_train, paths[1]), (y_test, paths[3])):
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < n_classes:
            raise ValueError(f"{p}: labels must lie in 0..{n_classes - 1}; found {y.min()}..{y.max()}.")
    return Dataset(x_train[..., None], y_train, x_test[..., None], y_test, list(info.class_names), info.name)


def _load_cifar10(info: DatasetInfo, paths: list):
    x_train, y_train, x_test, y_test, names = read_cifar10(paths[0])
    return Dataset(x_train, y_train, x_test, y_test, names or list(info.class_names), info.name)


# --------------------------------------------------------------------------------------- the door
def load_dataset(name_or_path: str, data_dir=None, download: bool = True, cache_dir=None, image_size=None,
                 progress: bool = True, verify: bool = True, test_only: bool = False) -> Dataset:
    """Load a data set by name (see :data:`DATASETS`) or from an image folder.

    Args:
        name_or_path: ``"digits"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, or a folder with one
            sub-folder of images per class (see :func:`striate.data.image_folder.load_image_folder`).
            The canvas names (``"digits_anywhere"``, ``"mnist_anywhere"``, ``"digits_localisation"``,
            ``"mnist_localisation"``) return an :class:`~striate.data.annotated.AnnotatedDataset`;
            ``data_dir`` and the download arguments then apply to the source digits.
        data_dir: a folder holding the data set's files as published (e.g. ``train-images-idx3-ubyte.gz``
            or its gunzipped copy; ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``), or its parent
            with a sub-folder named after the data set. Nothing is downloaded then.
        download: fetch missing files into the cache; with ``False`` a missing file is an error.
        cache_dir: the download cache; default ``$STRIATE_CACHE`` or ``~/.cache/striate``.
        image_size: ``(height, width)`` or an int; images are resized to it (bilinear). For an image folder
            the default is the first image's size.
        progress: print download progress to stderr.
        verify: check files from ``data_dir`` against the data set's published SHA-256 (downloads and
            the cache are always checked). ``False`` accepts a re-packaged copy of your own.
        test_only: read only the test files where they are separate (MNIST layout); the training
            split is then empty. What ``striate evaluate`` needs.

    Names are matched without regard to case, ``-`` and ``_`` (:func:`canonical_name`).

    Returns:
        A :class:`Dataset` with uint8 NHWC images and int64 labels.

    Example:
        >>> ds = load_dataset("mnist", data_dir="path/to/mnist")  # doctest: +SKIP
        >>> ds.x_train.shape, ds.x_test.shape  # doctest: +SKIP
        ((60000, 28, 28, 1), (10000, 28, 28, 1))
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a data set name or a folder path. Received: {name_or_path!r}.")
    name_or_path = os.fspath(name_or_path)
    info = _lookup(name_or_path)
    if info is None:
        if os.path.isdir(name_or_path):
            from .image_folder import load_image_folder
            return load_image_folder(name_or_path, image_size=image_size)
        raise ValueError(
            f"Unknown data set {name_or_path!r}: not a known name and not a folder.{did_you_mean(name_or_path, DATASETS)}"
            f" Known names: "
            f"{', '.join(sorted(DATASETS))}; or pass a folder with one sub-folder of images per class."
        )
    if info.kind == "canvas":   # digits of another data set placed on canvases (striate.data.canvas)
        from .canvas import CANVAS_SETS, make_canvas_dataset

        source, n_train, n_test, canvas, digits = CANVAS_SETS[info.name]
        src = load_dataset(source, **({} if source == "digits" else dict(
            data_dir=data_dir, download=download, cache_dir=cache_dir, progress=progress, verify=verify)))
        return make_canvas_dataset(src.x_train, src.y_train, src.x_test, src.y_test, src.class_names, n_train,
                                   n_test, canvas=canvas, digits=digits, seed=0, name=info.name)
    if info.kind == "digits":
        ds = _load_digits(info)
    else:
        paths = _resolve_files(info, data_dir, download, cache_dir, progress, verify=verify, test_only=test_only)
        ds = {"idx": _load_idx, "cifar10": _load_cifar10}[info.kind](info, paths)
    if image_size is not None:
        from .transforms import resize_images
        size = _size_pair(image_size)
        if size != ds.input_shape[:2]:
            ds = Dataset(resize_images(ds.x_train, size), ds.y_train, resize_images(ds.x_test, size), ds.y_test,
                         ds.class_names, ds.name)
    return ds
