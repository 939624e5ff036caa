"""Data sets, preprocessing and augmentation, batching (NumPy only).

    from striate.data import load_dataset, DataLoader, transforms as T
    ds = load_dataset("digits")                       # uint8 NHWC images, int64 labels
    loader = DataLoader(ds.x_train, ds.y_train, batch_size=64,
                        transform=T.Compose([T.RandomCrop(8, padding=1), T.Standardize().fit(ds.x_train)]),
                        rng=0)
    for xb, yb in loader: ...                         # float32 (64, 8, 8, 1), int64 (64,)

Modules: ``datasets`` (Dataset, load_dataset, the DATASETS table), ``download`` (verified, resumable
downloads), ``formats`` (IDX and CIFAR readers), ``image_folder``, ``transforms``, ``loader``; for the
"where" tasks ``annotated`` (images with boxes or masks), ``canvas`` (digits anywhere),
``detection_folders`` (COCO, YOLO and mask folders).
downloads), ``formats`` (IDX and CIFAR readers), ``image_folder``, ``images`` (reading and preparing one picture,
the path every command shares), ``transforms``, ``loader``.
This package imports only NumPy and the standard library; scikit-learn (the embedded ``digits``) and
Pillow (image folders) are imported when needed.
"""
from . import images, transforms
from .datasets import DATASETS, Dataset, DatasetInfo, RemoteFile, load_dataset, stratified_split
from .download import DownloadError, default_cache_dir, download_file, sha256_file
from .formats import read_cifar10, read_idx
from .annotated import AnnotatedDataset, AnnotatedSplit
from .image_folder import load_image_folder
from .loader import DataLoader
from .subset import sample_per_class, select_classes, validation_split

__all__ = ["Dataset", "load_dataset", "DataLoader", "transforms", "DATASETS", "DatasetInfo", "RemoteFile",
           "stratified_split", "DownloadError", "default_cache_dir", "download_file", "sha256_file",
           "read_idx", "read_cifar10", "load_image_folder", "AnnotatedDataset", "AnnotatedSplit",
           "select_classes", "sample_per_class", "validation_split",
           "images"]
