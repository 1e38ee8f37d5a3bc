"""InterferenceClassifier: learning, joint labels, voting, reproducible draws, surfaces."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.plugins.interference import InterferenceClassifier
from robustlearn.plugins.interference.pipeline import decode_joint, interfere

from .conftest import FAST


def test_learns_digits_well_above_chance(fitted_inn, digits):
    _, _, X_test, y_test = digits
    assert np.mean(fitted_inn.predict(X_test) == y_test) > 0.6
    assert fitted_inn.n_background_labels_ == 10
    assert fitted_inn.module_(torch.zeros(1, 1, 8, 8)).shape == (1, 100)
    assert len(fitted_inn.checkpoints_) == 2 and fitted_inn.checkpoint_epochs_ == [9, 10]


def test_joint_prediction_decodes_to_the_class(fitted_inn, digits):
    """On superposed test digits the joint argmax, mod C, is the class."""
    _, _, X_test, y_test = digits
    x = torch.from_numpy(X_test[:300])
    g = torch.Generator().manual_seed(0)
    images, _ = fitted_inn.backgrounds_.draw(len(x), g)
    superposed = interfere(x, images, alpha=fitted_inn.alpha, squash_kind=fitted_inn.squash)
    with torch.no_grad():
        joint = fitted_inn.checkpoints_[-1](superposed).argmax(1)
    background, cls = decode_joint(joint, 10)
    assert np.mean(cls.numpy() == y_test[:300]) > 0.6
    assert background.max() < 10


def _proba_spread(clf, X, repeats=6):
    probas = np.stack([clf.predict_proba(X) for _ in range(repeats)])
    return probas.std(axis=0).mean()


def test_more_votes_reduce_prediction_variance(fitted_inn, digits):
    _, _, X_test, _ = digits
    clf = clone(fitted_inn)
    clf.__dict__.update({k: v for k, v in fitted_inn.__dict__.items() if k.endswith("_")})
    spreads = [_proba_spread(clf.set_params(n_votes=n), X_test[:200]) for n in (1, 16)]
    assert spreads[1] < 0.5 * spreads[0]


def test_predictions_are_random_across_calls_and_reproducible_from_random_state(digits):
    X, y, X_test, _ = digits
    params = dict(FAST, max_epochs=2, n_checkpoints=1, n_votes=1)
    a = InterferenceClassifier(random_state=3, **params).fit(X[:300], y[:300])
    b = InterferenceClassifier(random_state=3, **params).fit(X[:300], y[:300])
    first = [a.predict_proba(X_test[:50]) for _ in range(2)]
    assert not np.allclose(first[0], first[1])  # a fresh draw per call
    for expected in first:  # the same sequence of draws from the same random_state
        np.testing.assert_allclose(b.predict_proba(X_test[:50]), expected, rtol=1e-5)
    a.reset_draws()
    np.testing.assert_allclose(a.predict_proba(X_test[:50]), first[0], rtol=1e-5)
    copy = pickle.loads(pickle.dumps(a))
    np.testing.assert_allclose(copy.predict_proba(X_test[:50]), a.predict_proba(X_test[:50]),
                               rtol=1e-5)


def test_surfaces_are_typed_and_the_fixed_draw_is_deterministic(fitted_inn, digits):
    _, _, X_test, _ = digits
    surfaces = fitted_inn.attack_surfaces()
    kinds = {name: s.kind for name, s in surfaces.items()}
    assert kinds == {"default": "exact", "detector": "detector", "soft-vote": "eot",
                     "fixed-draw": "transfer", "mean-background": "transfer"}
    assert robustlearn.get_defense_tags(fitted_inn).stochastic
    x = torch.from_numpy(X_test[:20])
    fixed = [surfaces["fixed-draw"](x) for _ in range(2)]
    assert torch.equal(*fixed)
    assert not torch.equal(*(surfaces["soft-vote"](x) for _ in range(2)))
    static = [surfaces["mean-background"](x) for _ in range(2)]
    assert torch.equal(*static)
    x.requires_grad_(True)
    surfaces["soft-vote"](x).logsumexp(1).sum().backward()
    assert x.grad.abs().sum() > 0


def test_hard_voting_predicts_by_majority(fitted_inn, digits):
    _, _, X_test, y_test = digits
    clf = clone(fitted_inn)
    clf.__dict__.update({k: v for k, v in fitted_inn.__dict__.items() if k.endswith("_")})
    clf.set_params(voting="hard", n_votes=5)
    scores = np.exp(clf.predict_log_proba(X_test[:100]))
    votes = scores * 10  # 5 votes x 2 checkpoints, plus a tie-breaker below one vote
    assert np.allclose(votes, np.round(votes), atol=0.02)
    assert np.mean(clf.predict(X_test) == y_test) > 0.6


def test_eot_pgd_through_the_vote_beats_the_fixed_draw_transfer(fitted_inn, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:60], y_test[:60]
    clean = np.mean(fitted_inn.predict(X) == y)
    eot = robustlearn.make_attack("linf-pgd", epsilon=0.3, estimator=fitted_inn, steps=10,
                                  eot_samples=2, random_state=0)
    robust = np.mean(fitted_inn.predict(eot.transform(X, y)) == y)
    assert robust < 0.5 * clean


@pytest.mark.parametrize("params, error, match", [
    (dict(alpha="a"), TypeError, "alpha"),
    (dict(beta=-1.0), ValueError, "beta"),
    (dict(gamma=1.5), ValueError, "gamma"),
    (dict(squash="relu"), ValueError, "squash"),
    (dict(backgrounds="random"), ValueError, "backgrounds"),
    (dict(backgrounds=0), ValueError, "backgrounds"),
    (dict(backgrounds=np.zeros((0, 64))), ValueError, "backgrounds"),
    (dict(n_votes=0), ValueError, "n_votes"),
    (dict(n_checkpoints=0), ValueError, "n_checkpoints"),
    (dict(voting="majority"), ValueError, "voting"),
    (dict(test_noise=1), TypeError, "test_noise"),
    (dict(architecture="vgg"), ValueError, "architecture"),
    (dict(architecture_params={"width": 8}), ValueError, "architecture_params"),
    (dict(backgrounds=np.zeros((2, 10))), ValueError, "backgrounds"),
])
def test_invalid_parameters_are_rejected_before_training(digits, params, error, match):
    X, y, _, _ = digits
    with pytest.raises(error, match=match):
        InterferenceClassifier(**{**FAST, **params}).fit(X[:40], y[:40])


def test_short_training_votes_over_the_checkpoints_it_has(digits):
    X, y, _, _ = digits
    clf = InterferenceClassifier(**{**FAST, "max_epochs": 1, "n_checkpoints": 3}).fit(X[:100],
                                                                                      y[:100])
    assert clf.checkpoint_epochs_ == [1] and len(clf.checkpoints_) == 1


def test_fixed_backgrounds_and_a_resnet_backbone(digits):
    X, y, X_test, y_test = digits
    clf = InterferenceClassifier(
        backgrounds=3, architecture="resnet",
        architecture_params={"width": 4, "blocks": (1, 1)},
        **{k: v for k, v in FAST.items() if k != "architecture_params"},
        random_state=0,
    ).fit(X[:400], y[:400])
    assert clf.n_background_labels_ == 3
    assert clf.module_(torch.zeros(2, 1, 8, 8)).shape == (2, 30)
    assert np.mean(clf.predict(X_test) == y_test) > 0.2  # chance is 0.1


def test_grid_search_over_alpha_and_votes(digits):
    X, y, _, _ = digits
    grid = GridSearchCV(
        InterferenceClassifier(**{**FAST, "max_epochs": 6}, random_state=0),
        {"alpha": [0.1, 1.0], "n_votes": [1, 4]}, cv=2,
    ).fit(X[:600], y[:600])
    assert set(grid.best_params_) == {"alpha", "n_votes"}
    assert grid.best_score_ > 0.3
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
