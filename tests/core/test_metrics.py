"""Scorers that attack the estimator being scored."""

import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate

import robustlearn
from robustlearn.metrics import (
    detection_auroc_scorer,
    robust_accuracy,
    robust_accuracy_scorer,
)


def test_robust_accuracy_scorer_attacks_the_scored_estimator(fitted_mlp, digits):
    _, _, X, y = digits
    scorer = robust_accuracy_scorer("fgsm", 0.1)
    score = scorer(fitted_mlp, X, y)
    adv = robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp).transform(X, y)
    assert score == pytest.approx((fitted_mlp.predict(adv) == y).mean())
    assert score < fitted_mlp.score(X, y) - 0.2
    assert robust_accuracy(fitted_mlp, X, y, "fgsm", 0.0) == pytest.approx(fitted_mlp.score(X, y))
    assert pickle.loads(pickle.dumps(scorer))(fitted_mlp, X, y) == score


def test_scorer_accepts_an_attack_transformer(fitted_mlp, digits):
    _, _, X, y = digits
    template = robustlearn.make_attack("linf-pgd", steps=5, random_state=0)
    by_object = robust_accuracy_scorer(template, 0.1)(fitted_mlp, X, y)
    by_name = robust_accuracy_scorer("linf-pgd", 0.1, steps=5, random_state=0)(fitted_mlp, X, y)
    assert by_object == by_name
    assert template.estimator is None  # the template is cloned, never mutated


def test_multi_metric_search_refits_on_robust_accuracy(digits):
    X, y, _, _ = digits
    search = GridSearchCV(
        robustlearn.make_defense("mlp", hidden_layer_sizes=(32,), random_state=0, device="cpu"),
        {"max_epochs": [2, 10]},
        scoring={"clean": "accuracy", "robust": robust_accuracy_scorer("fgsm", 0.1)},
        refit="robust", cv=2,
    ).fit(X[:600], y[:600])
    robust = search.cv_results_["mean_test_robust"]
    clean = search.cv_results_["mean_test_clean"]
    assert search.best_index_ == int(np.argmax(robust))
    assert np.all(robust < clean)
    assert search.best_score_ == pytest.approx(robust.max())
    assert hasattr(search.best_estimator_, "classes_")


def test_cross_validate_with_the_robust_scorer(digits):
    X, y, _, _ = digits
    result = cross_validate(
        robustlearn.make_defense("mlp", hidden_layer_sizes=(32,), max_epochs=5,
                                 random_state=0, device="cpu"),
        X[:400], y[:400], cv=2, scoring={"robust": robust_accuracy_scorer("fgsm", 0.3)},
    )
    assert np.all(result["test_robust"] < 0.5)


def test_detection_auroc_scorer(fitted_mlp, digits):
    _, _, X, y = digits
    # max-softmax detection: large FGSM perturbations lower the confidence of a plain MLP
    auroc = detection_auroc_scorer("fgsm", 0.3)(fitted_mlp, X, y)
    assert 0.0 <= auroc <= 1.0
    noise = detection_auroc_scorer("uniform-noise", 0.0)(fitted_mlp, X, y)
    assert noise == pytest.approx(0.5)
    assert abs(auroc - 0.5) > 0.05


def test_scorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Did you mean 'linf-pgd'"):
        robust_accuracy_scorer("linf-pdg", 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        robust_accuracy_scorer("fgsm", -0.1)
    with pytest.raises(ValueError, match="one epsilon"):
        robust_accuracy_scorer("fgsm", [0.1, 0.2])
    with pytest.raises(TypeError, match="attack must be"):
        robust_accuracy_scorer(3, 0.1)
