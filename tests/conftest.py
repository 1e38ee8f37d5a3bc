"""Shared fixtures: fixed seeds, small datasets, the shared data folder."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_dir():
    """``$ROBUSTLEARN_DATA`` or ``../shared/data`` beside the checkout, or None."""
    env = os.environ.get("ROBUSTLEARN_DATA")
    for candidate in (Path(env) if env else None, SHARED_DATA):
        if candidate is not None and (candidate / "mnist").is_dir():
            return candidate
    return None


@pytest.fixture(autouse=True)
def _fixed_seeds():
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def data_dir():
    """Folder with MNIST/Fashion-MNIST/CIFAR-10 files; skips the test when absent."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("../shared/data (or $ROBUSTLEARN_DATA) is not available")
    return found


@pytest.fixture(scope="session")
def digits():
    """The embedded digits dataset: (X_train, y_train, X_test, y_test)."""
    from robustlearn.datasets import load

    X, y = load("digits", "train")
    X_test, y_test = load("digits", "test")
    return X, y, X_test, y_test


@pytest.fixture(scope="session")
def fitted_mlp(digits):
    """An MLP baseline fitted on digits (shared, do not mutate)."""
    import robustlearn

    X, y, _, _ = digits
    return robustlearn.make_defense("mlp", hidden_layer_sizes=(128,), max_epochs=15,
                                    random_state=0, device="cpu").fit(X, y)
