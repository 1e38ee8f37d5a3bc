"""Tests of the pixel-similarity regulariser ST_h (arXiv 2410.03952)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.plugins.pixel_similarity import (
    GaussianNoiseScorer,
    PixelSimilarityClassifier,
    R0U0Refit,
    SimilarityResNet,
    pixel_similarity_matrix,
    r0_u0_scoring,
    similarity_loss,
    stretched,
    threshold_targets,
)
from robustlearn.plugins.pixel_similarity.estimator import CyclicStepLR

#: Learns the 8x8 digits in a few seconds on one core.
FAST = dict(width=8, blocks=(1, 1), depths=(0, 1, 2), stem_kernel=3, k=8, n_regularization=200,
            max_epochs=6, lr=0.05, calibration_fraction=0.0, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def small_digits(digits):
    X, y, X_test, y_test = digits
    return X[:600], y[:600], X_test[:300], y_test[:300]


@pytest.fixture(scope="module")
def fitted_pair(small_digits):
    """Unregularised and regularised models with the same recipe (do not mutate)."""
    X, y, _, _ = small_digits
    plain = PixelSimilarityClassifier(alpha=0.0, threshold=0.5, **FAST).fit(X, y)
    reg = PixelSimilarityClassifier(alpha=0.1, threshold=0.5, **FAST).fit(X, y)
    return plain, reg


# ------------------------------------------------------------------ targets
def test_similarity_is_the_cosine_of_centred_grayscale_images():
    rng = np.random.default_rng(0)
    images = rng.random((6, 3, 4, 4)).astype(np.float32)
    gray = images.astype(np.float64).mean(axis=1).reshape(6, -1)
    centred = gray - gray.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(pixel_similarity_matrix(images), unit @ unit.T, atol=1e-12)


def test_targets_are_plus_one_minus_one_and_zero_as_thresholded():
    s = np.array([[1.0, 0.9, -0.9, 0.3],
                  [0.9, 1.0, 0.5, -0.5],
                  [-0.9, 0.5, 1.0, -0.1],
                  [0.3, -0.5, -0.1, 1.0]])
    t = threshold_targets(s, 0.4)
    expected = np.array([[1, 1, -1, 0],
                         [1, 1, 1, -1],
                         [-1, 1, 1, 0],
                         [0, -1, 0, 1]])
    np.testing.assert_array_equal(t, expected)
    assert t.dtype == np.int8
    # exactly at the threshold is not above it: 0
    assert threshold_targets(np.array([[1.0, 0.4], [0.4, 1.0]]), 0.4)[0, 1] == 0


def test_targets_of_real_images_follow_their_similarities(digits):
    X = digits[0][:100]
    s = pixel_similarity_matrix(X)
    t = threshold_targets(s, 0.3)
    off = ~np.eye(100, dtype=bool)
    assert set(np.unique(t)) == {-1, 0, 1}
    assert np.all(t[off & (s > 0.3)] == 1) and np.all(t[off & (s < -0.3)] == -1)
    assert np.all(t[off & (np.abs(s) <= 0.3)] == 0)
    assert np.all(np.diag(t) == 1) and np.array_equal(t, t.T)


# --------------------------------------------------------------------- loss
def test_stretched_targets_and_loss():
    one = torch.tensor(1.0, dtype=torch.float64)
    assert float(stretched(one)) == pytest.approx(np.log(2 / 1e-5 + 1), abs=1e-6)  # ~12.2
    assert float(stretched(0 * one)) == 0.0
    assert float(stretched(-one)) == pytest.approx(-np.log(2 / 1e-5 + 1), abs=1e-6)
    s = torch.tensor([0.0, 0.5])
    assert float(similarity_loss(s, torch.tensor([0, 0]))) == pytest.approx(
        float(stretched(torch.tensor(0.5)) ** 2 / 2))
    assert float(similarity_loss(s, torch.tensor([0, 1]), arctanh=False)) == pytest.approx(0.125)


@pytest.mark.parametrize("depths", [(0,), (0, 2), (0, 1, 2, 3, 4)])
def test_regulariser_gradient_reaches_every_chosen_depth(depths):
    torch.manual_seed(0)
    net = SimilarityResNet((1, 16, 16), 10, width=4, blocks=(1, 1, 1, 1), stem_kernel=7,
                           depths=depths, ema_beta=0.9)
    net.train()
    xa, xb = torch.rand(6, 1, 16, 16), torch.rand(6, 1, 16, 16)
    captured = {}
    original = net.resnet.features

    def features(x):
        out = original(x)
        for d in depths:
            out[d].retain_grad()
        captured["feats"] = out
        return out

    net.resnet.features = features
    s_hat = net.pair_similarity(xa, xb)
    similarity_loss(s_hat, torch.tensor([1, 0, -1, 0, 1, 0])).backward()
    feats = captured["feats"]
    for d in depths:  # every chosen depth gets its own gradient
        assert feats[d].grad is not None and feats[d].grad.abs().sum() > 0, d
    deepest = max(depths)  # and stages beyond the deepest chosen one get none
    stages = [net.resnet.stem] + list(net.resnet.stages)
    for i, module in enumerate(stages):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        reached = bool(grads) and any(g.abs().sum() > 0 for g in grads)
        assert reached == (i <= deepest), i
    if len(depths) > 1:
        assert net.depth_logits.grad.abs().sum() > 0


def test_running_means_start_at_the_first_batch_then_average():
    torch.manual_seed(0)
    net = SimilarityResNet((1, 8, 8), 3, width=4, blocks=(1,), stem_kernel=3, depths=(0, 1),
                           ema_beta=0.9)
    net.train()
    xa, xb = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    net.pair_similarity(xa, xb)
    first = net.running_mean_0.clone()
    feats = net.features(torch.cat([xa, xb]))[0].detach()
    np.testing.assert_allclose(first, feats.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    net.pair_similarity(xb, xa)
    np.testing.assert_allclose(net.running_mean_0, first, rtol=1e-5, atol=1e-6)  # same images
    net.eval()
    net.pair_similarity(torch.rand(4, 1, 8, 8), xa)
    assert int(net.n_updates) == 2  # evaluation does not update the statistics


def test_paper_learning_rate_schedule():
    lam = CyclicStepLR(40)
    factors = [lam(e) for e in range(40)]
    expected = [0.3 ** (e % 20 // 4) for e in range(40)]
    np.testing.assert_allclose(factors, expected)
    assert [round(CyclicStepLR(5)(e), 4) for e in range(5)] == [1, 0.3, 0.09, 0.027, 0.0081]


# ---------------------------------------------------------------- estimator
def test_registered_with_documented_defaults():
    model = robustlearn.make_defense("pixel-similarity")
    assert isinstance(model, PixelSimilarityClassifier)
    params = model.get_params()
    assert (params["alpha"], params["threshold"], params["k"]) == (10.0, 0.8, 16)
    assert params["depths"] == (0, 1, 2, 3, 4) and params["blocks"] == (2, 2, 2, 2)
    assert (params["optimizer"], params["lr"], params["batch_size"]) == ("sgd", 0.1, 64)
    assert params["regularization_images"] is None


def test_learns_digits_with_and_without_the_regulariser(fitted_pair, small_digits):
    _, _, X_test, y_test = small_digits
    plain, reg = fitted_pair
    assert plain.score(X_test, y_test) > 0.6
    assert reg.score(X_test, y_test) > 0.6
    assert reg.similarity_targets_.shape == (200, 200)
    assert reg.regularization_images_.shape == (200, 1, 8, 8)
    np.testing.assert_allclose(reg.depth_weights_.sum(), 1.0, rtol=1e-5)


def test_regulariser_moves_model_similarities_towards_the_targets(fitted_pair):
    plain, reg = fitted_pair
    images, targets = reg.regularization_images_, reg.similarity_targets_
    i, j = np.triu_indices(len(images), k=1)
    keep = np.random.default_rng(0).choice(len(i), 1000, replace=False)
    i, j = i[keep], j[keep]

    def error(model):
        s = model.pair_similarity(images[i], images[j])
        return float(np.mean((s - targets[i, j]) ** 2))

    assert error(reg) < 0.5 * error(plain)


def test_regularisation_set_is_drawn_by_random_state(small_digits):
    X, y, _, _ = small_digits
    params = dict(FAST, max_epochs=1)
    a = PixelSimilarityClassifier(**params).fit(X, y)
    b = PixelSimilarityClassifier(**params).fit(X, y)
    c = PixelSimilarityClassifier(**dict(params, random_state=1)).fit(X, y)
    np.testing.assert_array_equal(a.regularization_images_, b.regularization_images_)
    assert not np.array_equal(a.regularization_images_, c.regularization_images_)
    big = PixelSimilarityClassifier(**dict(params, n_regularization=10_000)).fit(X, y)
    assert len(big.regularization_images_) == len(X)  # capped at the training set


def test_given_regularisation_images_are_used_and_not_modified(small_digits):
    X, y, X_test, _ = small_digits
    reg = X_test[:50].copy()
    before = reg.copy()
    model = PixelSimilarityClassifier(regularization_images=reg, **dict(FAST, max_epochs=1))
    model.fit(X, y)
    np.testing.assert_array_equal(reg, before)
    np.testing.assert_array_equal(model.regularization_images_, before)
    assert model.get_params()["regularization_images"] is reg
    with pytest.raises(ValueError, match="regularization_images must have images of shape"):
        PixelSimilarityClassifier(regularization_images=np.zeros((5, 1, 4, 4)), **FAST).fit(X, y)


@pytest.mark.parametrize("name, value, error", [
    ("alpha", -1.0, ValueError),
    ("threshold", 1.0, ValueError),
    ("k", 0, ValueError),
    ("n_regularization", 1, ValueError),
    ("depths", (0, 5), ValueError),
    ("depths", (1, 1), ValueError),
    ("stem_kernel", 4, ValueError),
    ("arctanh", "yes", TypeError),
    ("lr_schedule", "cosine", ValueError),
    ("noise_sigma", -0.1, ValueError),
    ("regularization_images", 3, TypeError),
])
def test_bad_parameters_fail_before_training(small_digits, name, value, error):
    X, y, _, _ = small_digits
    model = PixelSimilarityClassifier(**dict(FAST, **{name: value}))
    with pytest.raises(error, match=name):
        model.fit(X, y)
    assert not hasattr(model, "net_")


def test_pickle_round_trip_keeps_predictions(fitted_pair, small_digits):
    _, reg = fitted_pair
    X_test = small_digits[2]
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X_test), reg.predict(X_test))


def test_blur_and_noise_baselines_train_and_attacks_go_through_the_blur(small_digits):
    X, y, X_test, y_test = small_digits
    blur = PixelSimilarityClassifier(alpha=0.0, blur_sigma=0.7, **FAST).fit(X, y)
    noisy = PixelSimilarityClassifier(alpha=0.0, noise_sigma=0.2, **FAST).fit(X, y)
    assert blur.score(X_test, y_test) > 0.5 and noisy.score(X_test, y_test) > 0.5
    # a constant image is unchanged by the blur
    const = torch.full((1, 1, 8, 8), 0.3)
    np.testing.assert_allclose(blur.module_.blur(const), const, atol=1e-6)
    x = torch.from_numpy(X_test[:4]).requires_grad_(True)
    blur.logits(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_estimator_checks_cover_this_defense():
    """scikit-learn's checks run on every registered defense in
    tests/core/test_estimator_checks.py, with ``_test_params``; make sure this one is there
    (``check_defense`` on the same instance passed when this test was written)."""
    from robustlearn.estimator_checks import registered_defense_instances

    found = [e for e in registered_defense_instances()
             if isinstance(e, PixelSimilarityClassifier)]
    assert len(found) == 1
    assert found[0].get_params()["width"] == PixelSimilarityClassifier._test_params["width"]


# ---------------------------------------------------------------- selection
def test_r0_u0_refit_picks_the_most_robust_accepted_candidate():
    cv = {"param_alpha": [0, 1, 10, 100],
          "mean_test_accuracy": [0.9, 0.85, 0.82, 0.5],
          "mean_test_robustness": [0.3, 0.4, 0.6, 0.9]}
    refit = R0U0Refit(ratio=0.9)
    assert refit(cv) == 2  # 100 is most robust but R0/U0 = 0.56 < 0.9
    np.testing.assert_allclose(refit.ratios(cv), [1, 0.85 / 0.9, 0.82 / 0.9, 0.5 / 0.9])
    cv["mean_test_accuracy"] = [0.9, 0.5, 0.5, 0.5]
    assert refit(cv) == 0  # nothing passes: the unregularised model
    with pytest.raises(ValueError, match="alpha=0"):
        refit({"param_alpha": [1, 10], "mean_test_accuracy": [0.9, 0.9],
               "mean_test_robustness": [0.1, 0.2]})


def test_gaussian_noise_scorer_uses_fixed_draws(fitted_pair, small_digits):
    plain, _ = fitted_pair
    _, _, X_test, y_test = small_digits
    scorer = GaussianNoiseScorer(sigma=0.3, random_state=0)
    assert scorer(plain, X_test, y_test) == scorer(plain, X_test, y_test)
    assert GaussianNoiseScorer(sigma=0.0)(plain, X_test, y_test) == plain.score(X_test, y_test)
    assert scorer(plain, X_test, y_test) < plain.score(X_test, y_test)


def test_grid_search_with_the_r0_u0_rule(small_digits):
    X, y, _, _ = small_digits
    search = GridSearchCV(
        PixelSimilarityClassifier(threshold=0.5, **dict(FAST, max_epochs=3)),
        {"alpha": [0.0, 0.3, 30.0]},
        scoring=r0_u0_scoring(sigma=0.3), refit=R0U0Refit(ratio=0.9), cv=2,
    ).fit(X[:400], y[:400])
    res = search.cv_results_
    acc = np.asarray(res["mean_test_accuracy"])
    best = search.best_index_
    assert best == R0U0Refit(ratio=0.9)(res)
    assert acc[best] >= 0.9 * acc[0]  # the chosen configuration meets R0 >= 0.9 U0
    assert search.best_estimator_.alpha == res["param_alpha"][best]
    assert hasattr(search.best_estimator_, "similarity_targets_")
