"""SCAClassifier: learning, the inner dynamics, T at prediction time, surfaces, validation."""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.metrics import robust_accuracy_scorer
from robustlearn.plugins.sca import SCAClassifier, SCANetwork

from .conftest import SMALL


def test_registered_as_an_iterative_defense():
    estimator = robustlearn.make_defense("sca", width=16)
    assert isinstance(estimator, SCAClassifier)
    tags = robustlearn.get_defense_tags(estimator)
    assert tags.iterative and not tags.stochastic and not tags.certified


def test_defaults_are_the_papers_main_model():
    params = SCAClassifier().get_params()
    assert {k: params[k] for k in ("width", "T", "eta", "lambda_", "g", "dropout", "n_layers",
                                   "batch_size", "lr", "optimizer")} == dict(
        width=2048, T=16, eta=0.25, lambda_=0.3, g="relu", dropout=0.2, n_layers=1,
        batch_size=256, lr=1e-3, optimizer="adam")


def test_learns_digits_with_the_papers_weight_decay(fitted_sca, digits):
    _, _, X_test, y_test = digits
    assert fitted_sca.score(X_test, y_test) > 0.85
    assert isinstance(fitted_sca.module_, SCANetwork)
    assert fitted_sca.net_.optimizer_.param_groups[0]["weight_decay"] == 5e-5


def test_explicit_weight_decay_overrides_the_default(digits):
    X, y, _, _ = digits
    est = SCAClassifier(**{**SMALL, "max_epochs": 1, "optimizer__weight_decay": 0.0})
    assert est.fit(X[:100], y[:100]).net_.optimizer_.param_groups[0]["weight_decay"] == 0.0


def test_energy_decreases_over_the_inner_steps_of_the_fitted_model(fitted_sca, digits):
    energies = fitted_sca.energy_trajectory(digits[2][:200])
    assert energies.shape == (SMALL["T"] + 1,)
    assert np.all(np.diff(energies) < 0)


def test_T_predict_sets_the_inner_steps_at_prediction_only(fitted_sca, digits):
    X_test = digits[2][:50]
    est = copy.deepcopy(fitted_sca)
    deployed = est.predict_proba(X_test)
    est.set_params(T_predict=SMALL["T"])
    np.testing.assert_allclose(est.predict_proba(X_test), deployed, rtol=1e-6)
    est.set_params(T_predict=0)
    zero_steps = est.predict_proba(X_test)
    assert not np.allclose(zero_steps, deployed)
    hidden = est.hidden_activations(X_test, T=0)
    assert hidden.shape == (50, SMALL["width"]) and hidden.min() >= 0
    assert clone(est).get_params()["T_predict"] == 0


def test_surfaces_keep_the_deployed_value_and_change_the_gradient(fitted_sca, digits):
    x = torch.from_numpy(digits[2][:8])
    found = fitted_sca.attack_surfaces()
    assert {name: s.kind for name, s in found.items() if name != "detector"} == {
        "default": "exact", "bpda-identity": "bpda", "bpda-T0": "bpda", "bpda-T1": "bpda",
        "transfer-T1": "transfer"}
    gradients = {}
    for name in ("default", "bpda-identity", "bpda-T0", "bpda-T1"):
        xr = x.clone().requires_grad_(True)
        logits = found[name](xr)
        torch.testing.assert_close(logits, fitted_sca.logits(x), rtol=1e-5, atol=1e-5)
        (gradients[name],) = torch.autograd.grad(logits[:, 0].sum(), xr)
    # one layer: identity through the loop = the whole network at T = 0 on the backward pass
    torch.testing.assert_close(gradients["bpda-identity"], gradients["bpda-T0"])
    assert not torch.allclose(gradients["default"], gradients["bpda-identity"])
    at_one = copy.deepcopy(fitted_sca).set_params(T_predict=1)
    torch.testing.assert_close(found["transfer-T1"](x), at_one.logits(x))
    assert fitted_sca.attack_surface_at(3).kind == "bpda"
    with pytest.raises(ValueError, match="forward"):
        fitted_sca.attack_surface_at(3, forward="other")


@pytest.mark.parametrize("surface", ["default", "bpda-identity", "transfer-T1"])
def test_attacks_through_each_surface_stay_in_the_ball_and_hurt(fitted_sca, digits, surface):
    _, _, X_test, y_test = digits
    X, y = X_test[:60], y_test[:60]
    attack = robustlearn.make_attack("linf-pgd", epsilon=0.3, estimator=fitted_sca,
                                     surface=surface, steps=10, random_state=0)
    X_adv = attack.fit(X).transform(X, y)
    assert np.abs(X_adv - X).max() <= 0.3 + 1e-6
    assert fitted_sca.score(X_adv, y) < fitted_sca.score(X, y) - 0.2


def test_stacked_layers_and_the_autograd_inner_gradient_fit(digits):
    X, y, X_test, y_test = digits
    est = SCAClassifier(**{**SMALL, "n_layers": 2, "width": 32, "T": 2,
                           "inner_gradient": "autograd", "g": "tanh", "max_epochs": 10}).fit(X, y)
    assert len(est.module_.sca) == 2
    assert est.score(X_test, y_test) > 0.7
    assert est.module_.sca[1].inner_gradient == "autograd"


def test_grid_search_over_T_and_lambda_with_a_robust_accuracy_scorer(digits):
    X, y, _, _ = digits
    search = GridSearchCV(
        SCAClassifier(width=32, max_epochs=8, batch_size=32, lr=3e-3, device="cpu",
                      random_state=0),
        {"T": [0, 2], "lambda_": [0.1, 0.3]}, cv=2,
        scoring={"clean": "accuracy",
                 "robust": robust_accuracy_scorer("linf-pgd", 0.1, steps=5, random_state=0)},
        refit="robust",
    ).fit(X[:400], y[:400])
    results = search.cv_results_
    assert len(results["params"]) == 4
    assert np.all(results["mean_test_clean"] > 0.5)
    assert np.all((results["mean_test_robust"] >= 0) & (results["mean_test_robust"] <= 1))
    assert np.all(results["mean_test_robust"] < results["mean_test_clean"])
    assert search.best_params_ in results["params"]
    assert search.best_estimator_.T == search.best_params_["T"]


@pytest.mark.parametrize("params, error, match", [
    ({"width": 0}, ValueError, "width"),
    ({"T": -1}, ValueError, "T"),
    ({"T": 2.5}, TypeError, "T"),
    ({"T_predict": -2}, ValueError, "T_predict"),
    ({"eta": 0.0}, ValueError, "eta"),
    ({"lambda_": -0.1}, ValueError, "lambda_"),
    ({"g": "softplus"}, ValueError, "g"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"n_layers": 0}, ValueError, "n_layers"),
    ({"clip": 0.0}, ValueError, "clip"),
    ({"inner_gradient": "numeric"}, ValueError, "inner_gradient"),
])
def test_invalid_parameters_fail_in_fit_naming_the_parameter(digits, params, error, match):
    X, y, _, _ = digits
    with pytest.raises(error, match=match):
        SCAClassifier(**{**SMALL, **params}).fit(X[:20], y[:20])
