"""Bad input raises a clear error before any work."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import robustlearn

BAD_EPSILONS = [
    (-0.1, ValueError, ">= 0"),
    (float("nan"), ValueError, "finite"),
    ([0.1, -1.0], ValueError, ">= 0"),
    ([], ValueError, "empty"),
    ("0.1", TypeError, "real number"),
]


@pytest.mark.parametrize("epsilon, error, message", BAD_EPSILONS)
def test_bad_epsilon(epsilon, error, message, fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("fgsm", epsilon=epsilon, estimator=fitted_mlp)
    with pytest.raises(error, match=message):
        attack.fit(X, y)
    with pytest.raises(error, match=message):
        robustlearn.make_attack("fgsm", estimator=fitted_mlp).generate(X, y, epsilons=epsilon)


def test_fixed_epsilon_attack_needs_an_epsilon(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("linf-pgd", estimator=fitted_mlp).fit(X, y)
    with pytest.raises(ValueError, match="fixed-epsilon"):
        attack.transform(X)


def test_unknown_attack_suggests_a_name():
    with pytest.raises(ValueError, match="Did you mean 'linf-pgd'"):
        robustlearn.make_attack("linf-pdg", epsilon=0.1)


@pytest.mark.parametrize("shift", [-0.5, 0.5])
def test_images_outside_the_unit_interval(shift, fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack.fit(X + shift, y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack.generate(X + shift, y)


def test_victim_not_fitted(few):
    X, y = few
    unfitted = robustlearn.make_defense("mlp")
    with pytest.raises(NotFittedError):
        robustlearn.make_attack("fgsm", epsilon=0.1, estimator=unfitted).fit(X, y)
    with pytest.raises(NotFittedError):
        robustlearn.make_attack("fgsm", epsilon=0.1, estimator=unfitted).generate(X, y)
    with pytest.raises(NotFittedError):
        robustlearn.make_attack("fgsm", epsilon=0.1).transform(X)


def test_no_victim_or_two_victims(fitted_mlp, few):
    X, y = few
    with pytest.raises(ValueError, match="needs a victim"):
        robustlearn.make_attack("fgsm", epsilon=0.1).fit(X, y)
    with pytest.raises(ValueError, match="not both"):
        robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp,
                                surrogate=robustlearn.make_defense("mlp")).fit(X, y)
    with pytest.raises(ValueError, match="needs y"):
        robustlearn.make_attack("fgsm", epsilon=0.1,
                                surrogate=robustlearn.make_defense("mlp")).fit(X)


def test_labels_the_victim_does_not_know(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp)
    with pytest.raises(ValueError, match="not fitted on"):
        attack.generate(X, np.full(len(X), 42))
    with pytest.raises(ValueError, match="shape"):
        attack.generate(X, y[:-1])


def test_wrong_number_of_features(fitted_mlp, few):
    X, y = few
    with pytest.raises(ValueError, match="features"):
        robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp).generate(
            X.reshape(len(X), -1)[:, :32], y)


@pytest.mark.parametrize("name, params, error", [
    ("linf-pgd", dict(steps=0), ValueError),
    ("linf-pgd", dict(steps=2.5), TypeError),
    ("linf-pgd", dict(backend="jax"), ValueError),
    ("linf-pgd", dict(random_start="yes"), TypeError),
    ("apgd-ce", dict(norm="l1"), ValueError),
    ("square", dict(norm="l2"), ValueError),
    ("autoattack", dict(version="plus"), ValueError),
    ("l2-cw", dict(confidence=-1.0), ValueError),
    ("fgsm", dict(batch_size=0), ValueError),
    ("fgsm", dict(surface=3), TypeError),
])
def test_bad_attack_parameters(name, params, error, fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack(name, epsilon=0.1, estimator=fitted_mlp, **params)
    with pytest.raises(error):
        attack.fit(X, y)


def test_unknown_surface(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp,
                                     surface="bpda")
    with pytest.raises(ValueError, match="surface must be one of"):
        attack.fit(X, y).transform(X)


def test_gradient_attack_on_a_model_without_surfaces(digits):
    from sklearn.linear_model import LogisticRegression

    X, y, X_test, y_test = digits
    flat = X.reshape(len(X), -1)
    logistic = LogisticRegression(max_iter=200).fit(flat, y)
    test = X_test[:40].reshape(40, -1)
    with pytest.raises(TypeError, match="needs gradients"):
        robustlearn.make_attack("fgsm", epsilon=0.1, estimator=logistic).generate(test)
    # decision-based attacks only need predict_proba
    adv = robustlearn.make_attack("salt-and-pepper", steps=20, estimator=logistic).transform(test)
    assert adv.shape == test.shape
