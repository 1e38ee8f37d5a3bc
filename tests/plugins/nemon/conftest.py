"""A NEMON fitted once on the embedded digits, shared by the NEMON tests (do not mutate)."""

import pytest

from robustlearn.plugins.nemon import NEMONClassifier


@pytest.fixture(scope="package")
def fitted_nemon(digits):
    X, y, _, _ = digits
    return NEMONClassifier(width=32, max_epochs=6, lr=1e-2, lipschitz_reg=0.0, tol=1e-3,
                           backward_tol=1e-3, device="cpu", random_state=0).fit(X, y)
