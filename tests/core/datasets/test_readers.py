"""Readers of IDX and CIFAR-10 files, on small synthetic files."""

import numpy as np
import pytest

from robustlearn.datasets.readers import read_cifar_npz, read_cifar_python, read_idx

from .synthetic import (
    cifar_like,
    idx_bytes,
    mnist_like,
    tar_folder,
    write_cifar_npz,
    write_cifar_python,
    write_idx,
)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_read_idx_round_trip(tmp_path, compress):
    images, labels = mnist_like(12)
    suffix = ".gz" if compress else ""
    got_images = read_idx(write_idx(tmp_path / f"img{suffix}", images, compress=compress))
    got_labels = read_idx(write_idx(tmp_path / f"lab{suffix}", labels, compress=compress))
    assert got_images.dtype == np.uint8 and got_images.shape == (12, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes((0x00000D03).to_bytes(4, "big") + bytes(16))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated)


def test_read_cifar_npz_converts_hwc_to_chw(tmp_path):
    images, labels = cifar_like(5)
    images[0, 0, 1, 2] = 7  # red channel, row 1, column 2
    images[0, 2, 3, 4] = 9  # blue channel, row 3, column 4
    X, y = read_cifar_npz(write_cifar_npz(tmp_path / "train.npz", images, labels))
    assert X.shape == (5, 3, 32, 32) and X.dtype == np.uint8 and y.dtype == np.int64
    assert X[0, 0, 1, 2] == 7 and X[0, 2, 3, 4] == 9
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar.gz"])
def test_read_cifar_python_batches(tmp_path, packed):
    arrays = write_cifar_python(tmp_path / "cifar-10-batches-py", per_batch=3)
    source = tmp_path / "cifar-10-batches-py"
    if packed:
        source = tar_folder(source, tmp_path / "cifar-10-python.tar.gz")
    for split in ("train", "test"):
        X, y = read_cifar_python(source, split)
        images, labels = arrays[split]
        assert X.shape == (len(images), 3, 32, 32) and X.dtype == np.uint8
        np.testing.assert_array_equal(X, images)
        np.testing.assert_array_equal(y, labels)
    assert len(read_cifar_python(source, "train")[0]) == 15  # all five training batches
