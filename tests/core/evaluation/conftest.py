"""Fixtures of the evaluation tests: a classifier and attacks whose outcome is known per example.

``coded_data`` holds 2x2 images whose pixel 0 decides the class (above 0.5 is
class 1) and whose pixel 1 is a code saying which stub attack can break the
example; :class:`CodedAttack` moves pixel 0 towards the boundary by epsilon
on the examples carrying its code, so it flips them exactly when epsilon
exceeds their distance to the boundary (0.1).
"""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from robustlearn.attacks.base import BaseAttack


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Predicts class 1 when pixel 0 exceeds 0.5; optionally flags inputs with pixel 3 > 0.5."""

    def __init__(self, detector=False):
        self.detector = detector

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 4
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return (X[:, 0] > 0.5).astype(int)

    def predict_proba(self, X):
        p = self.predict(X).astype(float)
        return np.stack([1 - p, p], axis=1)

    def detect(self, X):
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return X[:, 0] < 0.55  # flags inputs pushed close to the boundary

    def __robustlearn_tags__(self):
        from robustlearn import DefenseTags

        return DefenseTags(has_detector=self.detector, gradient_attacks=False)


class CodedAttack(BaseAttack):
    """Moves pixel 0 by epsilon towards the boundary on examples whose pixel 1 equals ``code``.

    Breaks nothing above ``max_epsilon`` (a deliberately non-monotone attack).
    """

    norm = "linf"
    is_minimization = False
    needs_gradient = False

    def __init__(self, code=0.1, max_epsilon=1.0, epsilon=None, *, estimator=None,
                 surrogate=None, surface="default", batch_size=256, random_state=None):
        self.code = code
        self.max_epsilon = max_epsilon
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size, random_state=random_state)

    def needs_victim(self):
        return False

    def _run(self, victim, x, labels, epsilons):
        out = []
        hit = (x[:, 0, 0, 1] - self.code).abs() < 1e-3
        direction = torch.where(x[:, 0, 0, 0] > 0.5, -1.0, 1.0)
        for eps in epsilons:
            adv = x.clone()
            if eps <= self.max_epsilon:
                adv[hit, 0, 0, 0] += direction[hit] * eps
            out.append(adv)
        return torch.stack(out)


class CodedL2Attack(CodedAttack):
    """:class:`CodedAttack` in the l2 threat model (one pixel moved: same distance)."""

    norm = "l2"


def make_coded_data(codes, labels):
    """Images with pixel 0 at 0.6 (label 1) or 0.4 (label 0) and pixel 1 = code."""
    codes = np.asarray(codes, dtype=np.float32)
    labels = np.asarray(labels)
    X = np.zeros((len(codes), 1, 2, 2), dtype=np.float32)
    X[:, 0, 0, 0] = np.where(labels == 1, 0.6, 0.4)
    X[:, 0, 0, 1] = codes
    return X, labels


@pytest.fixture
def coded():
    """30 examples: 10 broken by code 0.1, 10 by code 0.2, 10 by nothing (code 0.3)."""
    codes = np.repeat([0.1, 0.2, 0.3], 10)
    labels = np.tile([0, 1], 15)
    X, y = make_coded_data(codes, labels)
    return ThresholdClassifier().fit(X, y), X, y


@pytest.fixture(scope="session")
def digits_small(digits):
    """120 digits test images (stratified enough for a smoke test)."""
    _, _, X_test, y_test = digits
    return X_test[:120], y_test[:120]
