"""How strong the attacks are: the plain ``mlp`` in detail, and a strength table over models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import robustlearn

EPSILONS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3]


def robust_accuracy(clf, X, y, name, epsilons=EPSILONS, **params):
    attack = robustlearn.make_attack(name, estimator=clf, random_state=0, **params)
    return np.array([(clf.predict(a) == y).mean() for a in attack.generate(X, y, epsilons)])


@pytest.fixture(scope="module")
def curves(fitted_mlp, digits_test):
    X, y = digits_test
    return {
        "fgsm": robust_accuracy(fitted_mlp, X, y, "fgsm"),
        "pgd": robust_accuracy(fitted_mlp, X, y, "linf-pgd", steps=40),
        "pgd-foolbox-step": robust_accuracy(fitted_mlp, X, y, "linf-pgd", steps=40,
                                            rel_stepsize=0.01 / 0.3),
        "pgd-default": robust_accuracy(fitted_mlp, X, y, "linf-pgd"),
        "apgd-ce": robust_accuracy(fitted_mlp, X, y, "apgd-ce", steps=100),
        "clean": fitted_mlp.score(X, y),
    }


def test_pgd_is_at_least_as_strong_as_fgsm_at_every_epsilon(curves):
    assert np.all(curves["pgd"] <= curves["fgsm"])
    assert curves["pgd"].sum() < curves["fgsm"].sum()


def test_default_step_beats_foolboxs_mnist_tuned_step(curves):
    # Foolbox's relative step 0.01/0.3 is tuned for eps 0.3 on MNIST; at small eps with 40
    # steps it cannot leave the neighbourhood of the start, which made PGD weaker than FGSM
    assert np.all(curves["pgd"] <= curves["pgd-foolbox-step"])
    assert curves["pgd"].sum() < curves["pgd-foolbox-step"].sum() - 0.05


def test_apgd_and_default_pgd_agree(curves):
    # both keep the best point found; up to 1 % = 4 images (the random starts differ)
    assert np.all(curves["apgd-ce"] <= curves["pgd-default"] + 0.01)
    assert np.all(curves["pgd-default"] <= curves["apgd-ce"] + 0.01)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce"])
def test_robust_accuracy_is_non_increasing_in_epsilon(curves, name):
    accuracy = np.r_[curves["clean"], curves[name]]
    assert np.all(np.diff(accuracy) <= 0)
    assert accuracy[-1] < accuracy[0] - 0.5


def test_plain_mlp_is_at_most_chance_at_linf_half(fitted_mlp, digits_test):
    X, y = digits_test
    chance = np.bincount(y).max() / len(y)
    (accuracy,) = robust_accuracy(fitted_mlp, X, y, "linf-pgd", [0.5], steps=20,
                                  rel_stepsize=0.1)
    assert accuracy <= chance


def plain_pgd(model, x, y, epsilon, steps, step_size):
    """Textbook linf PGD without random start, written independently of robustlearn."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return x_adv.detach()


@pytest.mark.parametrize("epsilon", [0.05, 0.1, 0.2])
def test_linf_pgd_agrees_with_a_plain_pytorch_pgd(fitted_mlp, digits_test, epsilon):
    X, y = digits_test
    steps, step_size = 20, epsilon / 8
    ours = robust_accuracy(fitted_mlp, X, y, "linf-pgd", [epsilon], steps=steps,
                           abs_stepsize=step_size, random_start=False)[0]
    x = torch.from_numpy(X)
    reference = plain_pgd(fitted_mlp.module_, x, torch.from_numpy(y), epsilon, steps, step_size)
    theirs = (fitted_mlp.predict(reference.numpy()) == y).mean()
    assert abs(ours - theirs) <= 0.02


def test_autoattack_is_the_worst_case_of_its_first_component(fitted_mlp, digits_test):
    X, y = digits_test[0][:150], digits_test[1][:150]
    params = dict(epsilons=[0.1], steps=20)
    apgd = robust_accuracy(fitted_mlp, X, y, "apgd-ce", **params)
    auto = robust_accuracy(fitted_mlp, X, y, "autoattack", n_target_classes=3, n_queries=200,
                           **params)
    assert auto[0] <= apgd[0]


def test_square_fools_without_gradients(fitted_mlp, digits_test):
    X, y = digits_test[0][:150], digits_test[1][:150]
    clean = fitted_mlp.score(X, y)
    (square,) = robust_accuracy(fitted_mlp, X, y, "square", [0.2], n_queries=300)
    assert square < clean - 0.5


# -- strength table: every iterative gradient attack is at least as strong as FGSM ----------

TABLE_EPSILONS = [0.05, 0.1, 0.2]
ITERATIVE = [("linf-pgd", {}), ("apgd-ce", {}), ("apgd-t", {}), ("linf-pgd", {"loss": "margin"})]
MODELS = {
    "mlp": None,  # the shared fitted_mlp fixture
    "cnn": dict(channels=(8,), hidden=32, max_epochs=10),
    "adversarial-training": dict(network="mlp", hidden_layer_sizes=(64,), epsilon=0.1,
                                 attack_steps=3, max_epochs=8),
    "attractor": dict(encoder_layers=(64,), decoder_layers=(64,), max_epochs=10,
                      finetune_epochs=3, max_iter=3, eigen_method="power"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained(request, fitted_mlp, digits):
    if MODELS[request.param] is None:
        return request.param, fitted_mlp
    X, y, _, _ = digits
    model = robustlearn.make_defense(request.param, random_state=0, **MODELS[request.param])
    return request.param, model.fit(X, y)


def test_every_iterative_attack_is_at_least_as_strong_as_fgsm(trained, digits_test):
    name, model = trained
    X, y = digits_test[0][:120], digits_test[1][:120]
    fgsm = robust_accuracy(model, X, y, "fgsm", TABLE_EPSILONS)
    for attack, params in ITERATIVE:
        accuracy = robust_accuracy(model, X, y, attack, TABLE_EPSILONS, **params)
        assert np.all(accuracy <= fgsm + 0.005), (name, attack, params, accuracy, fgsm)
