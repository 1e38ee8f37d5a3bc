"""Fixtures of the SCA tests: a small SCA network fitted once per session."""

import pytest

from robustlearn.plugins.sca import SCAClassifier

#: A small SCA network that learns digits in a few seconds on one core.
SMALL = dict(width=64, T=4, max_epochs=15, batch_size=32, lr=3e-3, device="cpu",
             random_state=0)


@pytest.fixture(scope="session")
def fitted_sca(digits):
    """SCA on the digits training set (shared: restore T_predict if you change it)."""
    X, y, _, _ = digits
    return SCAClassifier(**SMALL).fit(X, y)
