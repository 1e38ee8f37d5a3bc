"""Adversarial training with the built-in PGD loop or any registered gradient attack."""

import numpy as np
import pytest

import robustlearn
from robustlearn.tags import get_defense_tags

SMALL = dict(network="mlp", hidden_layer_sizes=(32,), max_epochs=8, lr=1e-2, epsilon=0.15,
             attack_steps=3, random_state=0, device="cpu")


def pgd_accuracy(clf, X, y, epsilon=0.15):
    attack = robustlearn.make_attack("linf-pgd", epsilon=epsilon, estimator=clf, steps=20,
                                     rel_stepsize=0.1, random_state=0)
    return (clf.predict(attack.transform(X, y)) == y).mean()


@pytest.fixture(scope="module")
def plain(digits):
    X, y, _, _ = digits
    return robustlearn.make_defense("mlp", hidden_layer_sizes=(32,), max_epochs=8, lr=1e-2,
                                    random_state=0, device="cpu").fit(X, y)


# attack, extra parameters
INNER_ATTACKS = [
    ("pgd", {}),
    ("fgsm", {}),
    ("linf-pgd", {}),
    ("apgd-ce", {"attack_params": {"steps": 3}}),
]


@pytest.mark.parametrize("attack, extra", INNER_ATTACKS, ids=[a for a, _ in INNER_ATTACKS])
def test_inner_attacks_train_a_more_robust_model(attack, extra, digits, plain):
    X, y, X_test, y_test = digits
    model = robustlearn.make_defense("adversarial-training", attack=attack,
                                     **{**SMALL, **extra}).fit(X, y)
    assert model.score(X_test, y_test) > 0.8
    assert pgd_accuracy(model, X_test, y_test) > pgd_accuracy(plain, X_test, y_test) + 0.1
    assert get_defense_tags(model).adversarially_trained


def test_transformer_attack_training_is_reproducible(digits):
    X, y, X_test, _ = digits
    params = {**SMALL, "max_epochs": 2, "attack": "apgd-ce", "attack_params": {"steps": 2}}
    first, second = (
        robustlearn.make_defense("adversarial-training", **params).fit(X[:300], y[:300])
        for _ in range(2)
    )
    np.testing.assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))


@pytest.mark.parametrize("params, error, message", [
    (dict(attack="linf-pdg"), ValueError, "Did you mean"),
    (dict(attack="gaussian-noise"), ValueError, "does not use gradients"),
    (dict(attack="l2-pgd"), ValueError, "set norm='l2'"),
    (dict(attack="apgd-ce", attack_params={"norm": "l2"}), ValueError, "set norm='l2'"),
    (dict(attack="pgd", attack_params={"steps": 3}), ValueError, "attack_params"),
    (dict(attack="apgd-ce", attack_params={"steps": 0}), ValueError, "steps"),
    (dict(attack="apgd-ce", attack_params=[1]), TypeError, "attack_params"),
    (dict(attack=3), TypeError, "attack"),
])
def test_bad_attack_settings_fail_before_training(params, error, message, digits):
    X, y, _, _ = digits
    model = robustlearn.make_defense("adversarial-training", **{**SMALL, **params})
    with pytest.raises(error, match=message):
        model.fit(X, y)
    assert not hasattr(model, "net_")
