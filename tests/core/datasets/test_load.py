"""``robustlearn.datasets.load``: the registered datasets, splits, subsets and missing files."""

import numpy as np
import pytest

import robustlearn
from robustlearn.datasets import DatasetNotFoundError, default_data_dir, load

from .synthetic import (
    cifar_like,
    tar_folder,
    write_cifar_npz,
    write_cifar_python,
    write_mnist_folder,
)


def test_digits_has_a_fixed_stratified_split():
    X, y = load("digits", "train")
    X_test, y_test = load("digits", "test")
    assert X.shape == (1347, 1, 8, 8) and X_test.shape == (450, 1, 8, 8)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() >= 0 and X.max() <= 1 and X.max() == 1
    # the split is fixed and the two parts are disjoint
    again, _ = load("digits", "train")
    np.testing.assert_array_equal(X, again)
    train_rows = {row.tobytes() for row in X}
    assert sum(row.tobytes() in train_rows for row in X_test) < 5  # digits has a few duplicates
    # stratified: class shares agree between train and test
    np.testing.assert_allclose(np.bincount(y) / len(y), np.bincount(y_test) / len(y_test),
                               atol=0.01)


def test_load_dataset_top_level_alias():
    X, y = robustlearn.load_dataset("digits", "test", n=20, random_state=0)
    assert X.shape == (20, 1, 8, 8)


def test_n_draws_a_reproducible_stratified_subset():
    X, y = load("digits", "train", n=200, random_state=0)
    assert X.shape == (200, 1, 8, 8) and y.shape == (200,)
    assert np.bincount(y, minlength=10).min() >= 19 and np.bincount(y).max() <= 21
    X2, y2 = load("digits", "train", n=200, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = load("digits", "train", n=200, random_state=1)
    assert not np.array_equal(X, X3)
    full, _ = load("digits", "train")
    rows = {row.tobytes() for row in full}
    assert all(row.tobytes() in rows for row in X)  # a subset, not a resample


def test_n_equal_to_the_split_size_returns_everything():
    X, _ = load("digits", "test", n=450)
    assert len(X) == 450


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(split="validation"), ValueError, "split must be one of"),
    (dict(n=0), ValueError, "n must be >= 1"),
    (dict(n=2.5), TypeError, "n must be an int"),
    (dict(n=100_000), ValueError, "exceeds the 1347 samples"),
    (dict(random_state="x"), TypeError, "random_state"),
])
def test_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        load("digits", **kwargs)


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(ValueError, match="Did you mean 'mnist'"):
        load("minst")


# -- MNIST-family and CIFAR readers through load(), on synthetic files ----------------------

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_family_from_idx_files(tmp_path, name):
    arrays = write_mnist_folder(tmp_path, name, n_train=30, n_test=20)
    for split, (images, labels) in arrays.items():
        X, y = load(name, split, data_dir=tmp_path)
        assert X.shape == (len(images), 1, 28, 28) and X.dtype == np.float32
        np.testing.assert_allclose(X[:, 0] * 255.0, images, atol=1e-4)
        np.testing.assert_array_equal(y, labels)
    X, y = load(name, "train", n=20, data_dir=tmp_path, random_state=0)
    assert len(X) == 20 and np.bincount(y).tolist() == [2] * 10


def test_data_dir_defaults_to_the_environment(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path, "mnist")
    monkeypatch.setenv("ROBUSTLEARN_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert load("mnist", "test")[0].shape == (20, 1, 28, 28)


@pytest.mark.parametrize("name, folder", [("mnist", "mnist"), ("fashion-mnist", "fashion-mnist")])
def test_missing_idx_files_say_where_they_were_looked_for(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as info:
        load(name, "train", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / folder / "train-images-idx3-ubyte.gz") in message
    assert str(tmp_path / folder / "train-labels-idx1-ubyte.gz") in message
    assert "ROBUSTLEARN_DATA" in message and "download=True" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_cifar_lists_every_place_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load("cifar10", "test", data_dir=tmp_path)
    message = str(info.value)
    for place in ("test.npz", "cifar-10-batches-py", "cifar-10-python.tar.gz"):
        assert str(tmp_path / "cifar10" / place) in message


@pytest.mark.parametrize("layout", ["npz", "folder", "tar.gz"])
def test_cifar10_layouts(tmp_path, layout):
    root = tmp_path / "cifar10"
    if layout == "npz":
        arrays = {"train": cifar_like(12, seed=1), "test": cifar_like(10, seed=2)}
        for split, (images, labels) in arrays.items():
            write_cifar_npz(root / f"{split}.npz", images, labels)
    else:
        arrays = write_cifar_python(root / "cifar-10-batches-py", per_batch=2)
        if layout == "tar.gz":
            tar_folder(root / "cifar-10-batches-py", root / "cifar-10-python.tar.gz")
            for path in (root / "cifar-10-batches-py").iterdir():
                path.unlink()
            (root / "cifar-10-batches-py").rmdir()
    for split, (images, labels) in arrays.items():
        X, y = load("cifar10", split, data_dir=tmp_path)
        assert X.shape == (len(images), 3, 32, 32) and X.dtype == np.float32
        np.testing.assert_allclose(X * 255.0, images, atol=1e-3)
        np.testing.assert_array_equal(y, labels)


def test_cifar10_gray_is_itu_r_601_luma(tmp_path):
    images, labels = cifar_like(10)
    images[0, :, 0, 0] = (255, 0, 0)
    images[0, :, 0, 1] = (0, 255, 0)
    images[0, :, 0, 2] = (0, 0, 255)
    images[0, :, 0, 3] = (255, 255, 255)
    write_cifar_npz(tmp_path / "cifar10" / "test.npz", images, labels)
    X, _ = load("cifar10-gray", "test", data_dir=tmp_path)
    assert X.shape == (10, 1, 32, 32) and X.dtype == np.float32
    np.testing.assert_allclose(X[0, 0, 0, :4], [0.299, 0.587, 0.114, 1.0], atol=1e-6)
    expected = (images / 255.0 * np.array([0.299, 0.587, 0.114])[None, :, None, None]).sum(1)
    np.testing.assert_allclose(X[:, 0], expected, atol=1e-6)


# -- the real files of ../shared/data --------------------------------------------------------

@pytest.mark.needs_data
@pytest.mark.parametrize("name, shape, sizes", [
    ("mnist", (1, 28, 28), (60000, 10000)),
    ("fashion-mnist", (1, 28, 28), (60000, 10000)),
    ("cifar10", (3, 32, 32), (4000, 1000)),
    ("cifar10-gray", (1, 32, 32), (4000, 1000)),
])
def test_shared_data(data_dir, name, shape, sizes):
    X_test, y_test = load(name, "test", data_dir=data_dir)
    assert X_test.shape == (sizes[1],) + shape and X_test.dtype == np.float32
    assert 0 <= X_test.min() and X_test.max() <= 1 and X_test.std() > 0.1
    assert np.array_equal(np.unique(y_test), np.arange(10))
    X, y = load(name, "train", n=500, data_dir=data_dir, random_state=0)
    assert X.shape == (500,) + shape
    assert np.bincount(y, minlength=10).min() >= 40  # stratified (CIFAR subsets are ~balanced)
    if name == "mnist":
        # the first test image of MNIST is a 7, the first training label is a 5
        assert y_test[0] == 7
        assert load(name, "train", data_dir=data_dir)[1][0] == 5
