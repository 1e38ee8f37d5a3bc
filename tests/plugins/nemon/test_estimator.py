"""NEMONClassifier: the sklearn contract, solver reports, certificate, audit surfaces."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

import robustlearn
from robustlearn.attacks.gradient import best_of_pgd
from robustlearn.fixed_point import FixedPointWarning
from robustlearn.plugins.nemon import NEMONClassifier


def test_learns_and_reports_every_epoch(fitted_nemon, digits):
    _, _, X_test, y_test = digits
    assert fitted_nemon.score(X_test, y_test) > 0.8
    assert len(fitted_nemon.solver_history_) == fitted_nemon.max_epochs
    for epoch in fitted_nemon.solver_history_:
        assert epoch["fp_residual_max"] < fitted_nemon.tol
        assert epoch["bw_residual_max"] < fitted_nemon.backward_tol
        assert epoch["fp_hit_max_iter"] == 0
        assert epoch["log_norm_max"] <= fitted_nemon.mu
        assert 0 < epoch["alpha_min"] <= epoch["alpha_max"] <= 1


def test_tags_and_registration(fitted_nemon):
    tags = fitted_nemon.__robustlearn_tags__()
    assert tags.iterative and tags.certified == "linf"
    assert type(robustlearn.make_defense("nemon")) is NEMONClassifier


def test_contraction_holds_after_every_optimiser_step(digits):
    X, y, _, _ = digits
    seen = []

    class Check(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                seen.append(net.module_.weighted_log_norm())

    NEMONClassifier(width=16, max_epochs=2, lr=5e-2, mu=-0.5, tol=1e-2, backward_tol=1e-2,
                    device="cpu", random_state=0, callbacks=[Check()]).fit(X[:400], y[:400])
    assert len(seen) == 2 * 4
    assert max(seen) <= -0.5 + 1e-5


def test_forward_converges_on_clean_and_attacked_inputs(fitted_nemon, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:100], y_test[:100]
    fitted_nemon.predict(X)
    clean = fitted_nemon.last_solve_
    adv = best_of_pgd(fitted_nemon.logits, torch.from_numpy(X).reshape(-1, 1, 8, 8),
                      torch.from_numpy(y).long(), epsilon=0.1, steps=10)
    fitted_nemon.predict(adv.numpy())
    attacked = fitted_nemon.last_solve_
    for report in (clean, attacked):
        assert report["hit_max_iter"] == 0
        assert report["residual_max"] < fitted_nemon.tol


def test_warns_when_inference_hits_max_iter(fitted_nemon, digits):
    _, _, X_test, _ = digits
    old = fitted_nemon.max_iter
    try:
        fitted_nemon.set_params(max_iter=1)
        with pytest.warns(FixedPointWarning, match="max_iter=1"):
            fitted_nemon.predict(X_test[:10])
    finally:
        fitted_nemon.set_params(max_iter=old)


def test_certified_never_exceeds_empirical_robust_accuracy(fitted_nemon, digits):
    _, _, X_test, y_test = digits
    X, y = X_test[:150], y_test[:150]
    radius = fitted_nemon.certified_radius(X)
    eps = float(np.quantile(radius, 0.5))  # half the points certified: a real test
    certified = fitted_nemon.certify(X, y, eps)
    assert certified.mean() > 0.1
    xt = torch.from_numpy(X).reshape(-1, 1, 8, 8)
    yt = torch.from_numpy(y).long()
    robust = np.ones(len(X), dtype=bool)
    for name in ("default", "unrolled"):
        fn = fitted_nemon.attack_surfaces()[name].fn
        adv = best_of_pgd(fn, xt, yt, epsilon=eps, steps=20, restarts=2)
        robust &= fitted_nemon.predict(adv.numpy()) == y
    # per point, not only on average: no certified point is broken by the attack
    assert not np.any(certified & ~robust)
    assert certified.mean() <= robust.mean()


def test_lipschitz_matrix_is_pixel_space(fitted_nemon):
    L = fitted_nemon.lipschitz_matrix()
    assert L.shape == (10, 10) and np.allclose(np.diag(L), 0)
    module = fitted_nemon.module_
    with torch.no_grad():
        row = module.input_row_norms()
        raw = torch.exp(module.d) * module.U.weight.abs().sum(dim=1)
    std = float(fitted_nemon.input_std_[0])
    assert torch.allclose(row, raw / std, rtol=1e-5)


def test_audit_surfaces_agree_on_the_gradient(fitted_nemon, digits):
    _, _, X_test, y_test = digits
    surfaces = fitted_nemon.attack_surfaces()
    assert {"implicit-tight", "unrolled", "iterate-5", "iterate-10", "iterate-20"} <= set(surfaces)
    assert surfaces["iterate-10"].kind == "bpda" and surfaces["unrolled"].kind == "exact"
    x = torch.from_numpy(X_test[:20]).reshape(-1, 1, 8, 8).double()
    y = torch.from_numpy(y_test[:20]).long()
    module = fitted_nemon.module_.double()
    try:
        grads = {}
        for name in ("implicit-tight", "unrolled"):
            xi = x.clone().requires_grad_(True)
            if name == "unrolled":
                fitted_nemon.set_params(tol=1e-10, max_iter=3000)
            loss = torch.nn.functional.cross_entropy(surfaces[name].fn(xi), y)
            (grads[name],) = torch.autograd.grad(loss, xi)
        assert torch.allclose(grads["implicit-tight"], grads["unrolled"], rtol=1e-3, atol=1e-6)
    finally:
        module.float()
        fitted_nemon.set_params(tol=1e-3, max_iter=300)


@pytest.mark.parametrize("param, value, exc", [
    ("mu", 1.0, ValueError), ("architecture", "rnn", ValueError), ("kernel_size", 4, ValueError),
    ("width", 0, ValueError), ("lipschitz_reg", -1.0, ValueError), ("tol", 0.0, ValueError),
    ("max_iter", 2.5, TypeError),
])
def test_invalid_parameters_are_named(param, value, exc, digits):
    X, y, _, _ = digits
    with pytest.raises(exc, match=param):
        NEMONClassifier(**{param: value}).fit(X[:50], y[:50])


def test_conv_architecture_fits_and_certifies(digits):
    X, y, X_test, y_test = digits
    clf = NEMONClassifier(architecture="conv", width=6, kernel_size=3, stride=1, max_epochs=4,
                          lr=1e-2, lipschitz_reg=0.0, tol=1e-2, backward_tol=1e-2,
                          device="cpu", random_state=0).fit(X[:600], y[:600])
    assert clf.score(X_test, y_test) > 0.3  # chance is 0.1; four short epochs
    assert clf.module_.weighted_log_norm() <= 1e-5
    radius = clf.certified_radius(X_test[:20])
    assert radius.shape == (20,) and np.all(radius >= 0)
