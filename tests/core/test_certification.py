"""The certification contract: radii are sound lower bounds, and no attack breaks them."""

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn.certification import margin_radius, sequential_linf_lipschitz


def test_margin_radius_divides_the_margin_by_the_pairwise_constant():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.5, 2.5]])
    assert torch.allclose(margin_radius(logits, 1.0), torch.tensor([1.0, 1.0]))
    pair = torch.ones(3, 3) * 4.0
    assert torch.allclose(margin_radius(logits, pair), torch.tensor([0.5, 0.5]))


def test_sequential_bound_holds_on_random_perturbations():
    torch.manual_seed(0)
    layers = [torch.nn.Linear(6, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)]
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    pair = sequential_linf_lipschitz(layers)
    x = torch.rand(200, 6)
    delta = (torch.rand(200, 6) * 2 - 1) * 0.1
    with torch.no_grad():
        a, b = net(x), net(x + delta)
    change = (a[:, :, None] - a[:, None, :]) - (b[:, :, None] - b[:, None, :])
    size = delta.abs().max(dim=1).values[:, None, None]
    assert bool((change.abs() <= pair[None] * size + 1e-6).all())


def test_uncertified_defense_says_so(digits):
    X, y, X_test, _ = digits
    cnn = robustlearn.make_defense("cnn", channels=(4,), hidden=16, max_epochs=1,
                                   random_state=0).fit(X, y)
    with pytest.raises(NotImplementedError, match="does not certify"):
        cnn.certified_radius(X_test[:5])


@pytest.mark.parametrize("name", [n for n in sorted(robustlearn.list_defenses())
                                  if n in ("mlp",)])
def test_no_certified_example_is_broken_by_any_attack(name, fitted_mlp, digits):
    _, _, X, y = digits
    X, y = X[:150], y[:150]
    radius = fitted_mlp.certified_radius(X)
    eps = float(np.quantile(radius[radius > 0], 0.5))  # half the examples certified
    certified = fitted_mlp.certify(X, y, eps)
    assert certified.sum() > 10
    for attack, params in [("apgd-ce", {}), ("apgd-t", {}), ("linf-pgd", {"restarts": 2}),
                           ("fgsm", {}), ("square", {"n_queries": 300})]:
        adv = robustlearn.make_attack(attack, epsilon=eps, estimator=fitted_mlp,
                                      random_state=0, **params).transform(X, y)
        broken = fitted_mlp.predict(adv) != y
        assert not np.any(broken & certified), attack


def test_certify_checks_its_arguments(fitted_mlp, digits):
    _, _, X, y = digits
    with pytest.raises(ValueError, match="epsilon"):
        fitted_mlp.certify(X[:5], y[:5], -0.1)
    with pytest.raises(ValueError, match="y must have shape"):
        fitted_mlp.certify(X[:5], y[:4], 0.1)
