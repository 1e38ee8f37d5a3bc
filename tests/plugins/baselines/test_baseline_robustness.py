"""Adversarial training makes the MLP clearly more robust to FGSM than the plain MLP."""

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn.attacks.gradient import projected_gradient_descent

EPSILON = 0.1


def fgsm(estimator, X, y, epsilon):
    """FGSM (Goodfellow et al. 2015): one signed-gradient step of size epsilon, no random start."""
    labels = torch.as_tensor(np.searchsorted(estimator.classes_, y))
    return projected_gradient_descent(
        estimator.logits, torch.from_numpy(X), labels, epsilon=epsilon, steps=1,
        step_size=epsilon, random_init=False,
    ).cpu().numpy()


@pytest.fixture(scope="module")
def trained(digits):
    X, y, _, _ = digits
    plain = robustlearn.make_defense("mlp", random_state=0, device="cpu").fit(X, y)
    robust = robustlearn.make_defense("adversarial-training", network="mlp", epsilon=EPSILON,
                                      random_state=0, device="cpu").fit(X, y)
    return plain, robust


@pytest.mark.slow
def test_adversarial_training_beats_plain_mlp_under_fgsm(trained, digits):
    """Issue 2 evidence; measured with seed 0: plain 0.49, adversarially trained 0.84."""
    plain, robust = trained
    _, _, X_test, y_test = digits
    clean_plain, clean_robust = plain.score(X_test, y_test), robust.score(X_test, y_test)
    fgsm_plain = plain.score(fgsm(plain, X_test, y_test, EPSILON), y_test)
    fgsm_robust = robust.score(fgsm(robust, X_test, y_test, EPSILON), y_test)
    assert clean_plain >= 0.95 and clean_robust >= 0.93
    assert fgsm_plain < clean_plain - 0.2  # the attack does hurt the undefended model
    assert fgsm_robust > fgsm_plain + 0.2  # clearly higher
    assert robustlearn.get_defense_tags(robust).adversarially_trained
    assert not robustlearn.get_defense_tags(plain).adversarially_trained


@pytest.mark.slow
def test_fgsm_examples_are_valid(trained, digits):
    plain, _ = trained
    _, _, X_test, y_test = digits
    X_adv = fgsm(plain, X_test, y_test, EPSILON)
    assert X_adv.shape == X_test.shape and X_adv.dtype == np.float32
    assert X_adv.min() >= 0 and X_adv.max() <= 1
    assert np.abs(X_adv - X_test).max() <= EPSILON + 1e-6
    # a step of size epsilon on every pixel not clipped at the box
    moved = np.abs(X_adv - X_test)
    inside = (X_adv > 0) & (X_adv < 1)
    assert np.allclose(moved[inside & (moved > 0)], EPSILON, atol=1e-6)
