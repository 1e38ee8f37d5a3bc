"""scikit-learn's estimator checks over every estimator of every registered plugin."""

import pytest
from sklearn.utils.estimator_checks import check_estimator

from robustlearn.estimator_checks import (
    DEFENSE_EXPECTED_FAILED,
    check_defense,
    expected_failed_checks,
    fast_instance,
    parametrize_defense_checks,
    registered_defense_instances,
    registered_purifier_instances,
)
from robustlearn.plugins.baselines import MLPClassifier


@parametrize_defense_checks(registered_defense_instances())
def test_registered_defenses_pass_sklearn_checks(estimator, check):
    check(estimator)


@parametrize_defense_checks(registered_purifier_instances())
def test_registered_purifiers_pass_sklearn_checks(estimator, check):
    check(estimator)


def test_every_builtin_purifier_is_checked():
    assert "AttractorPurifier" in {type(e).__name__ for e in registered_purifier_instances()}


def test_every_builtin_defense_is_checked():
    names = {type(e).__name__ for e in registered_defense_instances()}
    assert {"MLPClassifier", "CNNClassifier", "AdversarialTraining"} <= names


def test_fast_instance_applies_test_params_and_overrides():
    est = fast_instance(MLPClassifier, max_epochs=3)
    assert est.hidden_layer_sizes == MLPClassifier._test_params["hidden_layer_sizes"]
    assert est.max_epochs == 3 and est.device == "cpu"


def test_declared_expected_failures_are_passed_to_sklearn(monkeypatch):
    class Declares(MLPClassifier):
        def _expected_failed_checks(self):
            return {"check_fit2d_1sample": "demonstration only"}

    est = fast_instance(Declares)
    assert expected_failed_checks(est) == {**DEFENSE_EXPECTED_FAILED,
                                           "check_fit2d_1sample": "demonstration only"}
    assert expected_failed_checks(fast_instance(MLPClassifier)) == DEFENSE_EXPECTED_FAILED


def test_check_defense_raises_on_a_broken_estimator():
    class NoClasses(MLPClassifier):
        def fit(self, X, y):
            super().fit(X, y)
            del self.classes_
            return self

    with pytest.raises(Exception):  # noqa: B017 - any sklearn check failure
        check_defense(fast_instance(NoClasses, max_epochs=1))


def test_check_estimator_results_are_reported():
    est = fast_instance(MLPClassifier, max_epochs=10)
    results = check_estimator(est, expected_failed_checks=expected_failed_checks(est),
                              on_fail=None)
    statuses = {r["check_name"]: r["status"] for r in results}
    assert statuses["check_fit_idempotent"] == "passed"
    assert "failed" not in statuses.values()
