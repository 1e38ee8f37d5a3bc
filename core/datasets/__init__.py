"""Datasets as float32 images in [0, 1] of shape (n, C, H, W).

``load(name, split, n, data_dir, random_state)`` reads a registered dataset;
datasets come from plugins through the ``register_datasets`` hook.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from ..registry import get_registry
from ..validation import check_choice, check_int, check_random_state
from .builtin import DatasetNotFoundError

SPLITS = ("train", "test")


def default_data_dir() -> Path:
    """``$ROBUSTLEARN_DATA`` if set, else ``~/.cache/robustlearn``."""
    env = os.environ.get("ROBUSTLEARN_DATA")
    return Path(env) if env else Path.home() / ".cache" / "robustlearn"


def load(name, split="train", n=None, data_dir=None, random_state=None, download=False):
    """Load a registered dataset.

    Parameters
    ----------
    name : str
        A registered dataset (``robustlearn.list_datasets()``): ``digits``
        (embedded), ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar10-gray``, ...
    split : {"train", "test"}, default="train"
    n : int, optional
        Draw a stratified subset of ``n`` samples (seeded by ``random_state``).
    data_dir : path, optional
        Folder holding ``mnist/``, ``fashion-mnist/``, ``cifar10/``; defaults to
        ``$ROBUSTLEARN_DATA``, then ``~/.cache/robustlearn``.
    random_state : int, RandomState or None
        Seeds the subset draw.
    download : bool, default=False
        Download missing files (checksum-verified, written atomically).

    Returns
    -------
    X : ndarray of float32, shape (n, C, H, W), values in [0, 1]
    y : ndarray of int64, shape (n,)
    """
    entry = get_registry().get("dataset", name)
    check_choice(split, "split", SPLITS)
    if n is not None:
        n = check_int(n, "n", low=1)
    check_random_state(random_state)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    X, y = entry.factory(split, data_dir, download)
    X = np.asarray(X)
    X = (X.astype(np.float32) / 255.0) if X.dtype == np.uint8 else X.astype(np.float32)
    y = np.asarray(y, dtype=np.int64)
    if n is not None and n < len(X):
        counts = np.bincount(y)
        stratify = y if n >= len(counts) and counts[counts > 0].min() >= 2 else None
        seed = np.random.RandomState(random_state) if isinstance(random_state, int) else (
            random_state)
        X, _, y, _ = train_test_split(X, y, train_size=n, stratify=stratify, random_state=seed)
    elif n is not None and n > len(X):
        raise ValueError(f"n={n} exceeds the {len(X)} samples of {name!r} split {split!r}")
    return np.ascontiguousarray(X), y


__all__ = ["DatasetNotFoundError", "SPLITS", "default_data_dir", "load"]
