"""Readers of the standard dataset file formats: IDX (MNIST family) and CIFAR-10."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np

_IDX_MAGIC = {0x00000801: 1, 0x00000803: 3}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) of unsigned bytes."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} is corrupt ({exc}); delete it and download it again") from exc
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_MAGIC:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#010x})")
    ndim = _IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} bytes")
    return array.reshape(shape)


def read_cifar_npz(path):
    """Read a CIFAR-10 ``.npz`` with ``x`` (N, 32, 32, 3) uint8 and ``y`` (N,)."""
    with np.load(path) as data:
        x, y = data["x"], data["y"]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)


def _cifar_batch(raw: bytes):
    batch = pickle.loads(raw, encoding="bytes")
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(batch[b"labels"], dtype=np.int64)
    return x, y


def read_cifar_python(path, split: str):
    """Read CIFAR-10's python distribution: a ``cifar-10-batches-py`` folder or its ``.tar.gz``."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    path = Path(path)
    parts = []
    if path.is_dir():
        for name in names:
            parts.append(_cifar_batch((path / name).read_bytes()))
    else:
        with tarfile.open(path, "r:gz") as tar:
            for name in names:
                member = tar.extractfile(f"cifar-10-batches-py/{name}")
                parts.append(_cifar_batch(member.read()))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
