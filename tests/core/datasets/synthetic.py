"""Small synthetic dataset files in the standard formats, written for the dataset tests."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (magic 0x0801 for vectors, 0x0803 for images)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = {1: 0x00000801, 3: 0x00000803}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path, array, compress=True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def mnist_like(n=30, seed=0):
    """``n`` random 28x28 uint8 images with labels 0-9 (each class at least twice for n >= 20)."""
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_mnist_folder(root, name="mnist", n_train=30, n_test=20):
    """The four gzip IDX files of an MNIST-like dataset under ``root/name``; returns the arrays."""
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = mnist_like(n, seed=len(prefix))
        write_idx(Path(root) / name / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(Path(root) / name / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[split] = (images, labels)
    return arrays


def cifar_like(n, seed=0):
    """``n`` random CIFAR images as (N, 3, 32, 32) uint8 and labels 0-9."""
    rng = np.random.RandomState(seed)
    return (rng.randint(0, 256, size=(n, 3, 32, 32)).astype(np.uint8),
            (np.arange(n) % 10).astype(np.int64))


def cifar_batch_bytes(images, labels) -> bytes:
    """A CIFAR-10 python batch: rows of 3072 bytes (1024 R, then G, then B), pickled."""
    batch = {b"batch_label": b"synthetic", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(images)}
    return pickle.dumps(batch, protocol=2)


def write_cifar_python(folder, per_batch=4):
    """``data_batch_1..5`` and ``test_batch`` in ``folder``; returns {split: (images, labels)}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(1, 6):
        images, labels = cifar_like(per_batch, seed=i)
        (folder / f"data_batch_{i}").write_bytes(cifar_batch_bytes(images, labels))
        parts.append((images, labels))
    test = cifar_like(per_batch, seed=9)
    (folder / "test_batch").write_bytes(cifar_batch_bytes(*test))
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return {"train": train, "test": test}


def tar_folder(folder, archive):
    """Pack ``folder`` as ``cifar-10-batches-py/`` into a ``.tar.gz`` (the official layout)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(folder).iterdir()):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{path.name}")
            data = path.read_bytes()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def write_cifar_npz(path, images_chw, labels):
    """The shared-data layout: ``x`` (N, 32, 32, 3) uint8 HWC and ``y`` uint8."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=images_chw.transpose(0, 2, 3, 1), y=labels.astype(np.uint8))
    return path
