"""AttractorClassifier: learning, attraction, convergence, detection and the estimator contract."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.attacks.gradient import projected_gradient_descent
from robustlearn.plugins.attractor import AttractorClassifier

from .conftest import SMALL


def test_registered_as_defense_with_its_tags():
    estimator = robustlearn.make_defense("attractor", max_epochs=3)
    assert isinstance(estimator, AttractorClassifier)
    tags = robustlearn.get_defense_tags(estimator)
    assert tags.iterative and tags.custom_detector and tags.has_detector
    assert not tags.stochastic


def test_learns_digits_and_iterating_keeps_it_above_chance(fitted_pair, digits):
    _, _, X_test, y_test = digits
    for estimator in fitted_pair:
        assert copy.deepcopy(estimator).set_params(max_iter=1).score(X_test, y_test) > 0.85
        assert copy.deepcopy(estimator).set_params(max_iter=5).score(X_test, y_test) > 0.6
        # run to convergence, test digits drift into spurious attractors on this small
        # model (documented in docs/defenses/attractor.md): accuracy falls, towards chance
        assert estimator.score(X_test, y_test) > 0.1


def test_eigen_loss_makes_more_training_points_attractors(fitted_pair):
    with_eigen, without = fitted_pair
    assert np.median(with_eigen.train_spectral_radius_) < np.median(
        without.train_spectral_radius_)
    assert with_eigen.attractor_fraction_ > without.attractor_fraction_ + 0.2
    assert 0.0 <= without.attractor_fraction_ <= 1.0
    assert with_eigen.train_spectral_radius_.shape == (100,)


def test_iterations_converge_on_test_digits(fitted_pair, digits):
    _, _, X_test, _ = digits
    attractors, iterations, residual = fitted_pair[0].fixed_points(X_test[:100])
    assert attractors.shape == X_test[:100].shape
    assert np.mean(residual < fitted_pair[0].tol) > 0.9
    assert np.median(iterations) < fitted_pair[0].max_iter
    # from a fixed point, the dynamics stop after (nearly) one pass
    again, iterations_again, _ = fitted_pair[0].fixed_points(attractors)
    assert np.median(iterations_again) < np.median(iterations)
    assert np.median(np.linalg.norm((again - attractors).reshape(100, -1), axis=1)) < 0.05


def test_spectral_radius_and_norm_match_the_brute_force_jacobian(fitted_pair, digits):
    estimator = fitted_pair[0]
    X = digits[0][:4]
    radius, norm = estimator.spectral_radius(X), estimator.spectral_norm(X)
    assert radius.shape == norm.shape == (4,)
    step = estimator.module_.step
    for x, r, s in zip(torch.from_numpy(X).flatten(1), radius, norm):
        jacobian = torch.autograd.functional.jacobian(lambda v: step(v[None])[0], x)
        expected_radius = torch.linalg.eigvals(jacobian).abs().max().item()
        assert r == pytest.approx(expected_radius, rel=1e-3)
        assert s == pytest.approx(torch.linalg.matrix_norm(jacobian, 2).item(), rel=0.01)
        assert s >= r * 0.99


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, TypeError)])
def test_spectral_norm_rejects_bad_iteration_counts(fitted_pair, digits, bad, error):
    with pytest.raises(error, match="n_iterations"):
        fitted_pair[0].spectral_norm(digits[0][:2], n_iterations=bad)


def test_detects_fashion_mnist_far_more_often_than_mnist(data_dir):
    X, y = robustlearn.load_dataset("mnist", "train", n=600, data_dir=data_dir, random_state=0)
    X_id, _ = robustlearn.load_dataset("mnist", "test", n=300, data_dir=data_dir, random_state=0)
    X_ood, _ = robustlearn.load_dataset("fashion-mnist", "test", n=300, data_dir=data_dir,
                                        random_state=0)
    estimator = AttractorClassifier(**{**SMALL, "encoder_layers": (128, 64),
                                       "decoder_layers": (128,), "max_epochs": 20,
                                       "finetune_epochs": 3, "max_iter": 2}).fit(X, y)
    flagged_id, flagged_ood = estimator.detect(X_id).mean(), estimator.detect(X_ood).mean()
    assert flagged_id < 0.15  # calibrated at 95 % TPR on held-out training digits
    assert flagged_ood > flagged_id + 0.4


def test_bpda_attack_goes_through_where_the_loop_may_mask_gradients(fitted_pair, digits):
    estimator = copy.deepcopy(fitted_pair[0]).set_params(max_iter=3)
    _, _, X_test, y_test = digits
    x, y = torch.from_numpy(X_test[:100]), torch.from_numpy(y_test[:100])
    surfaces = estimator.attack_surfaces()
    assert {"default", "bpda-identity", "bpda-one-pass", "one-pass", "detector-aware",
            "detector"} <= set(surfaces)
    with torch.no_grad():
        reference = surfaces["default"](x)
        for name in ("bpda-identity", "bpda-one-pass"):
            torch.testing.assert_close(surfaces[name](x), reference)
    clean = (reference.argmax(1) == y).float().mean().item()
    adversarial = projected_gradient_descent(surfaces["bpda-identity"], x, y, epsilon=0.3,
                                             steps=20)
    assert (adversarial - x).abs().max() <= 0.3 + 1e-6
    robust = np.mean(estimator.predict(adversarial.numpy()) == y_test[:100])
    assert robust < clean - 0.3


def test_detector_aware_surface_rewards_staying_undetected(fitted_pair, digits):
    estimator = fitted_pair[0]
    x = torch.from_numpy(digits[2][:20])
    y = torch.from_numpy(digits[3][:20])
    surface = estimator.attack_surfaces()["detector-aware"]
    noisy = (x + 0.6 * torch.randn_like(x)).clamp(0, 1)  # flagged: far from any digit
    with torch.no_grad():
        plain = estimator.logits(noisy)
        aware = surface(noisy, y)
        flagged = torch.from_numpy(estimator.detect(noisy.numpy()))
    assert flagged.any()
    loss = torch.nn.functional.cross_entropy
    for i in torch.nonzero(flagged).flatten():
        assert loss(aware[i:i + 1], y[i:i + 1]) < loss(plain[i:i + 1], y[i:i + 1])


def test_estimator_checks_pass():
    from robustlearn.estimator_checks import check_defense

    check_defense(AttractorClassifier(**AttractorClassifier._test_params, device="cpu"))


def test_grid_search_over_lambda_eig_and_max_iter(digits):
    X, y, _, _ = digits
    small = {**SMALL, "max_epochs": 15, "finetune_epochs": 1}
    search = GridSearchCV(AttractorClassifier(**small),
                          {"lambda_eig": [0.0, 1.0], "max_iter": [1, 50]}, cv=2)
    search.fit(X[:400], y[:400])
    assert len(search.cv_results_["params"]) == 4
    # one pass keeps the head's accuracy; fifty passes drift (see test above)
    assert search.best_params_["max_iter"] == 1
    assert search.best_score_ > 0.3  # chance is 0.1


def test_pickle_round_trip_keeps_predictions_and_detections(fitted_pair, digits):
    estimator = fitted_pair[0]
    X_test = digits[2][:50]
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.predict(X_test), estimator.predict(X_test))
    np.testing.assert_allclose(restored.detect_score(X_test), estimator.detect_score(X_test))
    assert restored.attractor_fraction_ == estimator.attractor_fraction_


BAD_PARAMS = [
    ("eigen_method", "svd", ValueError),
    ("lambda_eig", -1.0, ValueError),
    ("lambda_cls", "1", TypeError),
    ("max_iter", 0, ValueError),
    ("max_iter", 2.5, TypeError),
    ("tol", -1e-3, ValueError),
    ("eigen_margin", 0.0, ValueError),
    ("eigen_batch_size", 0, ValueError),
    ("finetune_epochs", -1, ValueError),
    ("encoder_layers", (), ValueError),
    ("encoder_layers", "wide", TypeError),
    ("activation", "swish", ValueError),
    ("output_activation", "tanh", ValueError),
    ("attractor_check_size", 0, ValueError),
    ("attractor_residual_tol", 0.0, ValueError),
    ("power_iterations", 0, ValueError),
]


@pytest.mark.parametrize(("name", "value", "error"), BAD_PARAMS)
def test_bad_parameters_fail_before_training(digits, name, value, error):
    X, y, _, _ = digits
    with pytest.raises(error, match=name):
        AttractorClassifier(**{**SMALL, name: value}).fit(X[:50], y[:50])


def test_warns_when_eigen_loss_collapses_the_autoencoder(digits):
    # a constant map has a zero Jacobian, the trivial minimiser of L_eigen: an overweighted
    # L_eigen finds it, and the user is told which parameters to change
    X, y, _, _ = digits
    params = {**SMALL, "max_epochs": 10, "finetune_epochs": 10, "attractor_check_size": 30}
    collapsing = {"lambda_eig": 1e4, "eigen_margin": 0.01}
    with pytest.warns(ConvergenceWarning, match="lambda_eig"):
        collapsed = AttractorClassifier(**{**params, **collapsing}).fit(X, y)
    assert collapsed.score(X, y) < 0.3
    purifier_params = {k: v for k, v in params.items()
                       if k not in ("attractor_check_size", "attractor_residual_tol")}
    with pytest.warns(ConvergenceWarning, match="eigen_margin"):
        robustlearn.make_purifier("attractor", **{**purifier_params, **collapsing}).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        AttractorClassifier(**params, lambda_eig=0.1).fit(X, y)
