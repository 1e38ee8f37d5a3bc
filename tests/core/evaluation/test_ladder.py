"""The adaptive ladder: evaluate chooses BPDA and EOT from tags and surfaces by itself."""

import numpy as np
import pytest

import robustlearn
from robustlearn.evaluation import adaptive_attacks

from ..toy_defenses import RandomSignGradientDefense, VanishingGradientDefense

EPS = [0, 0.1]


@pytest.fixture(scope="module")
def split(digits):
    X, y, X_test, y_test = digits
    return X, y, X_test[:50], y_test[:50]


@pytest.fixture(scope="module")
def vanishing(split):
    X, y, _, _ = split
    return VanishingGradientDefense(random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def random_sign(split):
    X, y, _, _ = split
    return RandomSignGradientDefense(random_state=0).fit(X, y)


def test_ladder_for_a_plain_model_is_apgd_and_square(fitted_mlp):
    names = [name for name, _ in adaptive_attacks(fitted_mlp)]
    assert names == ["apgd-ce", "apgd-t", "square"]


def test_exact_gradient_of_the_vanishing_toy_is_useless_and_bpda_breaks_it(vanishing, split):
    _, _, X, y = split
    exact = robustlearn.evaluate(vanishing, X, y, attacks=["apgd-ce"], epsilons=EPS)
    assert any("BPDA" in warning for warning in exact.warnings)
    chosen = robustlearn.evaluate(vanishing, X, y, epsilons=EPS)
    assert any(a["params"].get("surface") == "bpda-identity" for a in chosen.attacks)
    assert not chosen.warnings
    by_key = {a["key"]: a["accuracy"][-1] for a in chosen.attacks}
    plain_apgd = [v for k, v in by_key.items() if "surface" not in k and k.startswith("apgd-ce")]
    assert plain_apgd[0] > chosen.clean["accuracy"] - 0.05  # the exact gradient does nothing
    assert chosen.headline["linf"][-1] < plain_apgd[0] - 0.2  # BPDA does


def test_pgd_without_eot_overestimates_the_random_sign_toy_and_eot_does_not(
        random_sign, fitted_mlp, split):
    _, _, X, y = split
    plain, eot = (robustlearn.make_attack("linf-pgd", epsilon=0.2, estimator=random_sign,
                                          steps=20, random_state=0, eot_samples=k)
                  for k in (1, 20))
    acc_plain = random_sign.score(plain.transform(X, y), y)
    acc_eot = random_sign.score(eot.transform(X, y), y)
    assert acc_plain > acc_eot + 0.15
    chosen = robustlearn.evaluate(random_sign, X, y, epsilons=[0, 0.2])
    assert any(a["params"].get("eot_samples") == 20 for a in chosen.attacks)
    assert chosen.headline["linf"][-1] <= acc_eot + 0.1
    named = robustlearn.evaluate(random_sign, X, y, attacks=["fgsm"], epsilons=EPS)
    assert any("EOT" in w for w in named.warnings)


def test_named_attacks_missing_the_black_box_check_warn_in_the_markdown(fitted_mlp, split):
    _, _, X, y = split
    report = robustlearn.evaluate(fitted_mlp, X[:20], y[:20], attacks=["fgsm"], epsilons=EPS)
    assert "**WARN**: no gradient-free attack" in report.to_markdown()


def test_certified_accuracy_is_reported_below_the_worst_case(fitted_mlp, split):
    _, _, X, y = split
    report = robustlearn.evaluate(fitted_mlp, X, y, attacks=["apgd-ce", "square"],
                                  epsilons=[0, 0.01, 0.05])
    cert = report.certified
    assert cert["norm"] == "linf" and cert["broken_by_attacks"] == 0
    assert np.all(np.asarray(cert["accuracy"]) <= np.asarray(report.headline["linf"]) + 1e-12)
    assert cert["accuracy"][1] > 0  # the bound is loose, but not vacuous at 0.01
