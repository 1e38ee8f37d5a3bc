"""Fixtures of the attractor tests: small networks fitted once per session."""

import pytest

from robustlearn.plugins.attractor import AttractorClassifier

#: A small attractor network that learns digits in a few seconds on one core.
SMALL = dict(encoder_layers=(64, 32), decoder_layers=(64,), activation="elu", batch_size=64,
             lr=3e-3, max_epochs=20, finetune_epochs=8, eigen_method="power",
             eigen_margin=0.5, eigen_batch_size=16, max_iter=150, tol=1e-3,
             attractor_check_size=100, attractor_residual_tol=0.3, device="cpu",
             random_state=0)


@pytest.fixture(scope="session")
def fitted_pair(digits):
    """The same small network trained with and without L_eigen on digits (do not mutate)."""
    X, y, _, _ = digits
    with_eigen = AttractorClassifier(**{**SMALL, "lambda_eig": 1.0}).fit(X, y)
    without = AttractorClassifier(**{**SMALL, "lambda_eig": 0.0}).fit(X, y)
    return with_eigen, without
