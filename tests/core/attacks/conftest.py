"""Fixtures of the attack tests: a small slice of the digits test set."""

import pytest


@pytest.fixture(scope="session")
def digits_test(digits):
    """The digits test images and labels (450 images of 1 x 8 x 8)."""
    _, _, X_test, y_test = digits
    return X_test, y_test


@pytest.fixture(scope="session")
def few(digits_test):
    """60 test images and labels, for tests that only check outputs."""
    X, y = digits_test
    return X[:60], y[:60]
