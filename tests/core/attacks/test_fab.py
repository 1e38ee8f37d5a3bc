"""FAB and FAB-T: the box-constrained projection, minimal perturbations, AutoAttack's use."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

import robustlearn
from robustlearn.attacks.autoattack import AutoAttack, components
from robustlearn.attacks.fab import FAB, fab, project_onto_hyperplane
from robustlearn.registry import get_registry


def _distances(x, x_adv, norm):
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)


@pytest.fixture(scope="module")
def slice_(digits_test):
    X, y = digits_test
    return X[:100], y[:100]


@pytest.fixture(scope="module")
def fab_t_linf(fitted_mlp, slice_):
    """FAB-T (3 targets, 50 steps) unbounded and at linf 0.1 on 100 test digits."""
    X, y = slice_
    attack = robustlearn.make_attack("fab-t", estimator=fitted_mlp, n_target_classes=3, steps=50,
                                     random_state=0)
    return attack.generate(X, y, epsilons=[0.0, 0.1, None])


# ------------------------------------------------------------------ projection
@pytest.mark.parametrize("seed", range(3))
def test_linf_projection_is_the_linear_program_optimum(seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(6, 12, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 12, generator=gen, dtype=torch.float64)
    r = torch.randn(6, generator=gen, dtype=torch.float64)
    delta = project_onto_hyperplane(p, w, r, "linf")
    for i in range(6):
        # variables (delta, t): minimise t, -t <= delta_j <= t, -p_j <= delta_j <= 1 - p_j
        d = p.shape[1]
        eye = np.eye(d)
        a_ub = np.block([[eye, -np.ones((d, 1))], [-eye, -np.ones((d, 1))]])
        result = linprog(np.r_[np.zeros(d), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * d),
                         A_eq=np.r_[w[i].numpy(), 0.0][None], b_eq=[r[i].item()],
                         bounds=[(-p[i, j].item(), 1 - p[i, j].item()) for j in range(d)]
                         + [(0, None)])
        if result.status == 0:
            assert delta[i].abs().max().item() == pytest.approx(result.fun, abs=1e-9)
            assert (w[i] * delta[i]).sum().item() == pytest.approx(r[i].item(), abs=1e-9)
        else:  # the hyperplane misses the box: every coordinate at its bound towards it
            reach = torch.where(w[i] * r[i] > 0, 1 - p[i], -p[i])
            torch.testing.assert_close(delta[i], torch.where(w[i] != 0, reach, 0.0))


def test_l2_projection_without_active_box_is_the_euclidean_one():
    p = torch.full((4, 10), 0.5, dtype=torch.float64)
    w = torch.randn(4, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = torch.tensor([0.05, -0.05, 0.0, 0.02], dtype=torch.float64)
    delta = project_onto_hyperplane(p, w, r, "l2")
    expected = r[:, None] * w / (w * w).sum(dim=1, keepdim=True)
    torch.testing.assert_close(delta, expected)


def test_l2_projection_with_box_is_feasible_and_no_feasible_move_is_shorter():
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(50, 30, generator=gen, dtype=torch.float64)
    w = torch.randn(50, 30, generator=gen, dtype=torch.float64)
    r = 0.8 * torch.randn(50, generator=gen, dtype=torch.float64)
    delta = project_onto_hyperplane(p, w, r, "l2")
    assert ((p + delta) >= -1e-12).all() and ((p + delta) <= 1 + 1e-12).all()
    on_plane = torch.isclose((w * delta).sum(dim=1), r, atol=1e-9)
    assert on_plane.float().mean() > 0.5
    # any other feasible point on the plane (a move within it, kept in the box) is not closer
    for _ in range(50):
        v = 0.02 * torch.randn(50, 30, generator=gen, dtype=torch.float64)
        v -= (v * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True) * w
        other = delta + v
        inside = ((p + other) >= 0).all(1) & ((p + other) <= 1).all(1) & on_plane
        assert (other.norm(dim=1)[inside] >= delta.norm(dim=1)[inside] - 1e-12).all()


# ------------------------------------------------------------------ the iteration
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_finds_the_exact_boundary_of_a_linear_classifier(norm):
    # linearisation is exact: FAB must land on the nearest point of the decision boundary
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(3, 20, generator=gen)
    bias = torch.tensor([0.3, 0.0, -0.2])

    def logits_fn(x):
        return x.flatten(1) @ weights.T + bias

    x = 0.4 + 0.2 * torch.rand(8, 20, generator=gen)
    y = logits_fn(x).argmax(1)
    target = (y + 1) % 3
    x_adv, dist = fab(logits_fn, x, y, norm=norm, target=target, steps=100)
    w = weights[target] - weights[y]
    g = (logits_fn(x).gather(1, target[:, None]) - logits_fn(x).gather(1, y[:, None]))[:, 0]
    dual = w.abs().sum(1) if norm == "linf" else w.norm(dim=1)
    nearest = g.abs() / dual  # the box is not active: x is 0.4 away from it, far enough
    assert (logits_fn(x_adv).argmax(1) != y).all()
    assert torch.all(dist >= nearest * (1 - 1e-4))
    assert torch.all(dist <= nearest * 1.01)


# ------------------------------------------------------------------ the transformer
def test_registered_as_minimization_attacks_in_both_norms():
    for name, targeted in (("fab", False), ("fab-t", True)):
        registration = get_registry().get("attack", name)
        assert {"linf", "l2", "minimization"} <= set(registration.capabilities)
        attack = robustlearn.make_attack(name)
        assert attack.is_minimization and attack.needs_gradient and attack.targeted is targeted


@pytest.mark.parametrize("params, error", [
    (dict(norm="l1"), ValueError),
    (dict(eta=0.9), ValueError),
    (dict(beta=1.5), ValueError),
    (dict(alpha_max=-0.1), ValueError),
    (dict(steps=0), ValueError),
    (dict(targeted="yes"), TypeError),
    (dict(n_target_classes=0), ValueError),
])
def test_bad_parameters_are_rejected_before_any_work(params, error, fitted_mlp, few):
    X, y = few
    with pytest.raises(error):
        FAB(0.1, estimator=fitted_mlp, **params).transform(X, y)


def test_fab_t_outputs_are_valid(fab_t_linf, slice_):
    X, _ = slice_
    np.testing.assert_array_equal(fab_t_linf[0], X)
    for eps, x_adv in zip((0.1, None), fab_t_linf[1:]):
        assert np.all(np.isfinite(x_adv)) and x_adv.min() >= 0 and x_adv.max() <= 1
        if eps is not None:
            assert _distances(X, x_adv, "linf").max() <= eps * (1 + 1e-6)


def test_fab_t_fools_a_good_fraction_at_linf_tenth(fab_t_linf, fitted_mlp, slice_):
    X, y = slice_
    correct = fitted_mlp.predict(X) == y
    fooled = fitted_mlp.predict(fab_t_linf[1]) != y
    assert fooled[correct].mean() >= 0.3
    # unbounded, it fools every image it attacks
    assert (fitted_mlp.predict(fab_t_linf[2]) != y)[correct].all()


def test_fab_t_perturbations_are_no_larger_than_pgds(fab_t_linf, fitted_mlp, slice_):
    X, y = slice_
    pgd = robustlearn.make_attack("linf-pgd", epsilon=0.1, estimator=fitted_mlp, steps=40,
                                  rel_stepsize=2.5 / 40, random_state=0).transform(X, y)
    correct = fitted_mlp.predict(X) == y
    pgd_fooled = correct & (fitted_mlp.predict(pgd) != y)
    assert pgd_fooled.sum() >= 20
    # where PGD finds an adversarial within 0.1, FAB-T's smallest one is within 0.1 too
    fab_dist = _distances(X, fab_t_linf[2], "linf")
    assert (fab_dist[pgd_fooled] <= 0.1 * (1 + 1e-6)).mean() >= 0.95


def test_fab_t_l2_perturbations_are_no_larger_than_pgds(fitted_mlp, slice_):
    X, y = slice_[0][:50], slice_[1][:50]
    fab_adv = robustlearn.make_attack("fab-t", norm="l2", estimator=fitted_mlp,
                                      n_target_classes=3, steps=50).transform(X, y)
    pgd = robustlearn.make_attack("l2-pgd", epsilon=1.0, estimator=fitted_mlp, steps=40,
                                  rel_stepsize=0.1, random_state=0).transform(X, y)
    correct = fitted_mlp.predict(X) == y
    pgd_fooled = correct & (fitted_mlp.predict(pgd) != y)
    assert pgd_fooled.sum() >= 20
    assert (_distances(X, fab_adv, "l2")[pgd_fooled] <= 1.0).mean() >= 0.95


def test_restarts_never_lengthen_the_perturbation(fitted_mlp, slice_):
    X, y = slice_[0][:30], slice_[1][:30]
    params = dict(estimator=fitted_mlp, steps=20, n_target_classes=2, random_state=0)
    once = robustlearn.make_attack("fab-t", **params).transform(X, y)
    thrice = robustlearn.make_attack("fab-t", restarts=3, epsilon=0.3, **params).transform(X, y)
    assert np.all(_distances(X, thrice, "linf") <= _distances(X, once, "linf") + 1e-7)


# ------------------------------------------------------------------ AutoAttack
def test_autoattack_standard_runs_fab_t_third():
    assert components("standard", "linf") == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert components("standard", "l2") == ("apgd-ce", "apgd-t", "fab-t")
    assert AutoAttack(0.1).components[2] == "fab-t"


def test_autoattack_with_fab_t_is_at_least_as_strong(fitted_mlp, slice_):
    X, y = slice_
    params = dict(estimator=fitted_mlp, steps=20, n_target_classes=3, random_state=0)

    def accuracy(attacks):
        attack = AutoAttack(0.1, attacks=attacks, **params)
        return (fitted_mlp.predict(attack.transform(X, y)) == y).mean()

    without = accuracy(("apgd-ce",))
    with_fab = accuracy(("apgd-ce", "fab-t"))
    fab_alone = accuracy(("fab-t",))
    clean = fitted_mlp.score(X, y)
    assert with_fab <= without
    assert fab_alone < clean - 0.2  # FAB-T inside AutoAttack fools on its own


def test_untargeted_fab_matches_fab_t_on_a_ten_class_mlp(fitted_mlp, slice_):
    X, y = slice_[0][:40], slice_[1][:40]
    params = dict(estimator=fitted_mlp, steps=50)
    untargeted = robustlearn.make_attack("fab", **params).transform(X, y)
    targeted = robustlearn.make_attack("fab-t", n_target_classes=9, **params).transform(X, y)
    correct = fitted_mlp.predict(X) == y
    assert (fitted_mlp.predict(untargeted) != y)[correct].all()
    # the closest boundary at every step is as good as trying the top classes, within 10 %
    ratio = _distances(X, untargeted, "linf")[correct] / _distances(X, targeted, "linf")[correct]
    assert np.median(ratio) <= 1.1
