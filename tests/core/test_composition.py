"""Attackable Pipelines: purifiers and a defense attacked, scored and grid-searched as one."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import robustlearn
from robustlearn.metrics import robust_accuracy_scorer
from robustlearn.surfaces import surfaces_of


def quantise(X):
    """A non-differentiable preprocessor: 4 grey levels."""
    return np.round(np.asarray(X) * 3) / 3


def mlp(**params):
    settings = dict(hidden_layer_sizes=(64,), max_epochs=20, random_state=0, device="cpu")
    return robustlearn.make_defense("mlp", **{**settings, **params})


@pytest.fixture(scope="module")
def quantised_pipeline(digits):
    X, y, _, _ = digits
    return Pipeline([("quantise", FunctionTransformer(quantise)), ("clf", mlp())]).fit(X, y)


@pytest.fixture(scope="module")
def purified_pipeline(digits):
    X, y, _, _ = digits
    purifier = robustlearn.make_purifier(
        "attractor", encoder_layers=(64,), decoder_layers=(64,), max_epochs=15,
        finetune_epochs=2, max_iter=3, eigen_method="power", random_state=0, device="cpu")
    return Pipeline([("purify", purifier), ("clf", mlp())]).fit(X, y)


def test_pipeline_surfaces_combine_the_steps(purified_pipeline):
    surfaces = surfaces_of(purified_pipeline)
    assert surfaces["default"].kind == "exact"
    assert surfaces["bpda-identity@purify"].kind == "bpda"
    assert surfaces["detector"].kind == "detector"
    tags = robustlearn.get_defense_tags(purified_pipeline)
    assert tags.iterative and tags.has_detector and tags.certified is None


def test_a_non_differentiable_step_is_attacked_through_bpda(quantised_pipeline, digits):
    _, _, X, y = digits
    X, y = X[:120], y[:120]
    assert surfaces_of(quantised_pipeline)["default"].kind == "bpda"
    clean = quantised_pipeline.score(X, y)
    attack = robustlearn.make_attack("apgd-ce", epsilon=0.15, estimator=quantised_pipeline,
                                     random_state=0)
    adv = attack.transform(X, y)
    assert np.abs(adv - X).max() <= 0.15 + 1e-6
    assert quantised_pipeline.score(adv, y) < clean - 0.3


def test_purifier_pipeline_is_attacked_white_box_through_both_surfaces(purified_pipeline,
                                                                        digits):
    _, _, X, y = digits
    X, y = X[:100], y[:100]
    clean = purified_pipeline.score(X, y)
    assert clean > 0.6
    for surface in ("default", "bpda-identity@purify"):
        attack = robustlearn.make_attack("linf-pgd", epsilon=0.2, steps=20, surface=surface,
                                         estimator=purified_pipeline, random_state=0)
        assert purified_pipeline.score(attack.transform(X, y), y) < clean - 0.2, surface


def test_evaluate_picks_the_bpda_surface_of_a_pipeline(purified_pipeline, digits):
    _, _, X, y = digits
    report = robustlearn.evaluate(purified_pipeline, X[:40], y[:40], epsilons=[0, 0.2])
    surfaces = {a["params"].get("surface", "default") for a in report.attacks}
    assert "bpda-identity@purify" in surfaces
    assert not report.warnings


def test_grid_search_over_a_pipeline_with_a_robust_scorer(digits):
    X, y, _, _ = digits
    pipe = Pipeline([("quantise", FunctionTransformer(quantise)), ("clf", mlp(max_epochs=5))])
    search = GridSearchCV(pipe, {"clf__hidden_layer_sizes": [(16,), (64,)]}, cv=2,
                          scoring=robust_accuracy_scorer("fgsm", 0.1))
    search.fit(X[:400], y[:400])
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores >= 0) & (scores <= 1)) and scores.max() > 0.1
