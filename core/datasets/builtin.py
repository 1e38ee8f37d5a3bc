"""Loaders of the built-in datasets: digits, MNIST, Fashion-MNIST, CIFAR-10 (colour and gray).

Each loader has the signature ``loader(split, data_dir, download) -> (X, y)``
with X of shape (n, C, H, W), uint8 (0-255) or float in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .download import download as fetch
from .readers import read_cifar_npz, read_cifar_python, read_idx

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# md5 of the official gzip files (as published by the upstream sites and torchvision)
_MNIST_SOURCES = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where robustlearn looked for them."""


def _missing(name, looked, data_dir):
    looked = "\n  ".join(str(p) for p in looked)
    return DatasetNotFoundError(
        f"dataset {name!r} was not found. Looked for:\n  {looked}\n"
        f"Put the standard files under {Path(data_dir) / name}, point data_dir= or "
        "$ROBUSTLEARN_DATA at a folder that has them, or pass download=True on a machine "
        "with internet access."
    )


def load_digits_split(split, data_dir=None, download=False):
    """scikit-learn's 8x8 digits (embedded), with a fixed stratified 75/25 train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, stratify=digits.target, random_state=0
    )
    return (X_train, y_train) if split == "train" else (X_test, y_test)


def _mnist_like(name):
    def loader(split, data_dir, download=False):
        folder = Path(data_dir) / name
        images, labels = (folder / f for f in _MNIST_FILES[split])
        missing = [p for p in (images, labels) if not p.exists()]
        if missing and download:
            base, md5s = _MNIST_SOURCES[name]
            for path in missing:
                fetch(base + path.name, path, md5s[path.name])
            missing = []
        if missing:
            raise _missing(name, missing, data_dir)
        X = read_idx(images)[:, None, :, :]
        y = read_idx(labels).astype(np.int64)
        return X, y

    loader.__doc__ = f"{name} from its IDX files under ``data_dir/{name}``."
    return loader


load_mnist = _mnist_like("mnist")
load_fashion_mnist = _mnist_like("fashion-mnist")


def load_cifar10(split, data_dir, download=False):
    """CIFAR-10 from ``cifar10/{split}.npz`` or the standard python batches."""
    root = Path(data_dir)
    npz = root / "cifar10" / f"{split}.npz"
    folder = root / "cifar10" / "cifar-10-batches-py"
    archive = root / "cifar10" / "cifar-10-python.tar.gz"
    if npz.exists():
        return read_cifar_npz(npz)
    if folder.exists():
        return read_cifar_python(folder, split)
    if not archive.exists() and download:
        fetch(_CIFAR_URL, archive, _CIFAR_MD5)
    if archive.exists():
        return read_cifar_python(archive, split)
    raise _missing("cifar10", [npz, folder, archive], data_dir)


def load_cifar10_gray(split, data_dir, download=False):
    """CIFAR-10 converted to gray by ITU-R BT.601 luma: 0.299 R + 0.587 G + 0.114 B."""
    X, y = load_cifar10(split, data_dir, download)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    gray = (X.astype(np.float32) / 255.0 * weights).sum(axis=1, keepdims=True)
    return gray.clip(0.0, 1.0), y
