"""Every registered attack: valid outputs, the scikit-learn API, registration.

The cases are a declarative table (as foolbox's ``tests/test_attacks.py``):
one row per attack with fast settings and the epsilons it is checked at.
"""

import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from sklearn.base import clone

import robustlearn
from robustlearn.attacks import BaseAttack
from robustlearn.registry import get_registry


@dataclass(frozen=True)
class Case:
    name: str
    epsilons: tuple
    params: dict = field(default_factory=dict)
    #: at the last epsilon, at least this fraction of the correctly classified images is fooled
    min_success: float = 0.0


CASES = [
    Case("fgsm", (0.0, 0.1, 0.3), min_success=0.9),
    Case("linf-pgd", (0.0, 0.1, 0.3), dict(steps=10, rel_stepsize=0.25), min_success=0.9),
    Case("linf-pgd", (0.1, 0.3), dict(steps=10, rel_stepsize=0.25, backend="foolbox"),
         min_success=0.9),
    Case("l2-pgd", (0.0, 1.0, 3.0), dict(steps=10, rel_stepsize=0.25), min_success=0.9),
    Case("l2-cw", (1.0, 3.0, None), dict(steps=50, binary_search_steps=3, initial_const=1.0),
         min_success=0.9),
    Case("linf-deepfool", (0.1, 0.3, None), dict(steps=20), min_success=0.9),
    Case("boundary", (2.0, 4.0, None), dict(steps=50), min_success=0.9),
    Case("gaussian-noise", (0.0, 1.0, 3.0)),
    Case("uniform-noise", (0.0, 0.1, 0.3)),
    Case("salt-and-pepper", (1.0, 3.0, None), dict(steps=50), min_success=0.9),
    Case("apgd-ce", (0.0, 0.1, 0.3), dict(steps=10), min_success=0.9),
    Case("apgd-dlr", (0.1, 0.3), dict(steps=10, norm="linf"), min_success=0.9),
    Case("apgd-t", (0.1, 0.3), dict(steps=10, n_target_classes=2), min_success=0.9),
    Case("apgd-ce", (1.0, 3.0), dict(steps=10, norm="l2"), min_success=0.9),
    Case("square", (0.0, 0.1, 0.3), dict(n_queries=100), min_success=0.5),
    Case("autoattack", (0.1, 0.3), dict(steps=10, n_target_classes=2, n_queries=50),
         min_success=0.9),
    Case("autoattack-rand", (0.1, 0.3), dict(steps=5, eot_samples=2), min_success=0.9),
    Case("fab", (0.1, 0.3, None), dict(steps=20), min_success=0.9),
    Case("fab-t", (0.1, 0.3, None), dict(steps=20, n_target_classes=2), min_success=0.9),
]
IDS = [f"{c.name}-{i}" for i, c in enumerate(CASES)]

REQUIRED = {"fgsm", "linf-pgd", "l2-pgd", "l2-cw", "linf-deepfool", "boundary", "gaussian-noise",
            "uniform-noise", "salt-and-pepper", "apgd-ce", "apgd-dlr", "apgd-t", "square",
            "autoattack", "autoattack-rand", "fab", "fab-t"}


def _distances(x, x_adv, norm):
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_outputs_are_valid_and_effective(case, fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack(case.name, estimator=fitted_mlp, random_state=0,
                                     **case.params)
    adv = attack.generate(X, y, epsilons=list(case.epsilons))
    assert adv.shape == (len(case.epsilons),) + X.shape
    assert adv.dtype == X.dtype
    for eps, x_adv in zip(case.epsilons, adv):
        assert np.all(np.isfinite(x_adv))
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        if eps is not None:
            assert _distances(X, x_adv, attack.norm).max() <= eps * (1 + 1e-6)
        if eps == 0:
            np.testing.assert_array_equal(x_adv, X)
    correct = fitted_mlp.predict(X) == y
    fooled = fitted_mlp.predict(adv[-1]) != y
    assert fooled[correct].mean() >= case.min_success


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sklearn_api(case, fitted_mlp):
    attack = robustlearn.make_attack(case.name, epsilon=case.epsilons[-1], **case.params)
    assert isinstance(attack, BaseAttack)
    params = attack.get_params()
    for key in ("epsilon", "estimator", "surrogate", "surface", "batch_size", "random_state"):
        assert key in params
    for key, value in case.params.items():
        assert params[key] == value
    copy = clone(attack)
    assert copy.get_params() == params
    assert attack.norm in ("linf", "l2", None)
    assert isinstance(attack.is_minimization, bool)
    assert isinstance(attack.needs_gradient, bool)


def test_pickled_attack_gives_the_same_examples(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("linf-pgd", epsilon=0.1, steps=5, estimator=fitted_mlp,
                                     random_state=3).fit(X, y)
    restored = pickle.loads(pickle.dumps(attack))
    np.testing.assert_array_equal(restored.transform(X, y), attack.transform(X, y))


def test_random_state_makes_runs_reproducible(fitted_mlp, few):
    X, y = few
    runs = [robustlearn.make_attack("linf-pgd", epsilon=0.1, steps=3, estimator=fitted_mlp,
                                    random_state=seed).fit(X).transform(X) for seed in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_transform_keeps_shape_and_dtype(fitted_mlp, few):
    X, y = few
    flat = X.reshape(len(X), -1).astype(np.float64)
    attack = robustlearn.make_attack("fgsm", epsilon=0.1, estimator=fitted_mlp).fit(flat, y)
    out = attack.transform(flat, y)
    assert out.shape == flat.shape and out.dtype == np.float64
    stacked = attack.set_params(epsilon=[0.05, 0.1]).transform(flat)
    assert stacked.shape == (2,) + flat.shape


def test_transform_without_labels_attacks_the_victims_predictions(fitted_mlp, few):
    X, y = few
    predicted = fitted_mlp.predict(X)
    attack = robustlearn.make_attack("fgsm", epsilon=0.2, estimator=fitted_mlp).fit(X)
    np.testing.assert_array_equal(attack.transform(X), attack.transform(X, predicted))


def test_fit_transform_uses_the_true_labels(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("fgsm", epsilon=0.2, estimator=fitted_mlp)
    np.testing.assert_array_equal(attack.fit_transform(X, y), attack.transform(X, y))


def test_labels_of_any_type(digits):
    X, y, X_test, y_test = digits
    names = np.array([f"digit-{v}" for v in range(10)])
    clf = robustlearn.make_defense("mlp", hidden_layer_sizes=(32,), max_epochs=10,
                                   random_state=0, device="cpu").fit(X, names[y])
    attack = robustlearn.make_attack("fgsm", epsilon=0.3, estimator=clf)
    adv = attack.fit_transform(X_test[:50], names[y_test[:50]])
    assert (clf.predict(adv) == names[y_test[:50]]).mean() < 0.3


def test_model_free_noise_needs_no_victim(few):
    X, _ = few
    noise = robustlearn.make_attack("uniform-noise", epsilon=0.2, random_state=0)
    out = noise.fit_transform(X)
    assert np.abs(out - X).max() <= 0.2 * (1 + 1e-6)
    assert np.abs(out - X).max() > 0.1


def test_gradients_do_not_leak_into_the_victim(fitted_mlp, few):
    X, y = few
    params = list(fitted_mlp.module_.parameters())
    before = [None if p.grad is None else p.grad.clone() for p in params]
    robustlearn.make_attack("linf-pgd", epsilon=0.1, steps=2, backend="foolbox",
                            estimator=fitted_mlp).fit(X).transform(X, y)
    assert all(p.requires_grad for p in params)
    for p, old in zip(params, before):
        assert (p.grad is None) if old is None else torch.equal(p.grad, old)


def test_torch_backend_keeps_the_best_point_of_foolboxs_trajectory(fitted_mlp, few):
    # same start, same steps: both walk one trajectory; Foolbox returns its last point,
    # the torch backend the best one, so it fools a superset and never has a lower loss
    X, y = few
    out = {backend: robustlearn.make_attack(
        "linf-pgd", epsilon=0.1, steps=10, random_start=False, backend=backend,
        estimator=fitted_mlp).generate(X, y)[0] for backend in ("torch", "foolbox")}
    fooled = {k: fitted_mlp.predict(v) != y for k, v in out.items()}
    assert np.all(fooled["torch"] >= fooled["foolbox"])
    proba = {k: fitted_mlp.predict_proba(v)[np.arange(len(y)), y] for k, v in out.items()}
    both_robust = ~fooled["torch"]
    assert np.all(proba["torch"][both_robust] <= proba["foolbox"][both_robust] + 1e-5)


def test_builtin_attacks_are_registered_with_metadata():
    registry = get_registry()
    assert REQUIRED <= set(robustlearn.list_attacks())
    for name in REQUIRED:
        reg = registry.get("attack", name)
        assert reg.description and reg.paper and reg.capabilities
        assert reg.plugin == "attacks"
    assert "minimization" in registry.get("attack", "l2-cw").capabilities
    assert "model-free" in registry.get("attack", "gaussian-noise").capabilities


SKLEARN_CHECKS = ["check_no_attributes_set_in_init", "check_parameters_default_constructible",
                  "check_get_params_invariance", "check_set_params", "check_estimator_repr",
                  "check_estimator_cloneable"]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_scikit_learn_parameter_checks(name):
    from sklearn.utils import estimator_checks

    attack = robustlearn.make_attack(name)
    for check in SKLEARN_CHECKS:
        getattr(estimator_checks, check)(type(attack).__name__, attack)


def test_no_silent_success_the_best_point_found_is_returned(fitted_mlp, digits_test):
    # a step of epsilon bounces between corners of the ball: iterates that fooled the model are
    # often followed by ones that do not; the attack must return a fooling one when it met one
    from robustlearn.attacks.gradient import best_of_pgd, projected_gradient_descent

    X, y = digits_test
    xt, yt = torch.from_numpy(X[:150]), torch.from_numpy(y[:150])
    surface = fitted_mlp.attack_surfaces()["default"]
    fooled_any = torch.zeros(len(xt), dtype=torch.bool)

    def tracking(x):
        logits = surface(x)
        if len(x) == len(xt):
            fooled_any.__ior__(logits.detach().argmax(1) != yt)
        return logits

    def fooled(adv):
        return fitted_mlp.predict(adv.numpy()) != y[:150]

    torch.manual_seed(0)
    last = projected_gradient_descent(tracking, xt, yt, epsilon=0.1, steps=10, step_size=0.1)
    assert np.sum(fooled_any.numpy() & ~fooled(last)) > 0  # the planted silent successes
    fooled_any.zero_()
    torch.manual_seed(0)
    best = best_of_pgd(tracking, xt, yt, epsilon=0.1, steps=10, step_size=0.1)
    assert not np.any(fooled_any.numpy() & ~fooled(best))
