"""A small interference network fitted once on digits, shared by the tests (do not mutate)."""

import pytest

from robustlearn.plugins.interference import InterferenceClassifier

#: Mild noise on 8x8 digits: the authors' MNIST strengths (0.9 / 0.4) drown 8x8 images.
FAST = dict(architecture_params={"channels": (16,), "hidden": 64}, alpha=0.1, beta=0.2,
            gamma=0.05, squash="none", max_epochs=10, lr=3e-3, n_votes=3, n_checkpoints=2,
            device="cpu")


@pytest.fixture(scope="session")
def fitted_inn(digits):
    X, y, _, _ = digits
    return InterferenceClassifier(random_state=0, **FAST).fit(X, y)
