"""The joint attack on a classifier and its detector (selective PGD with success tracking)."""

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn.attacks import detector_aware_pgd, projected_gradient_descent

# A two-pixel world: class 1 when x1 + x2 > 1.05, flagged when x2 > 0.6.


def classifier(x):
    z = 10 * (x[:, 0] + x[:, 1] - 1.05)
    return torch.stack([-z, z], dim=1)


def detector(x):
    z = 10 * (x[:, 1] - 0.6)
    return torch.stack([-z, z], dim=1)  # [accepted, flagged]


def met(x, y):
    return (classifier(x).argmax(1) != y) & (detector(x).argmax(1) == 0)


def test_joint_attack_succeeds_where_plain_pgd_is_flagged():
    x = torch.tensor([[0.45, 0.55]])
    y = torch.tensor([0])
    plain = projected_gradient_descent(classifier, x, y, epsilon=0.1, steps=50, random_init=False)
    assert classifier(plain).argmax(1).item() == 1
    assert detector(plain).argmax(1).item() == 1  # fooled, but caught

    adv, success = detector_aware_pgd(classifier, detector, x, y, epsilon=0.1, steps=50)
    assert success.tolist() == [True]
    assert met(adv, y).tolist() == [True]
    assert (adv - x).abs().max() <= 0.1 + 1e-6


def test_steps_on_the_detector_once_misclassified():
    # following the classifier alone crosses x2 = 0.6 before the class flips
    x = torch.tensor([[0.45, 0.595]])
    y = torch.tensor([0])
    adv, success = detector_aware_pgd(classifier, detector, x, y, epsilon=0.05, steps=50)
    assert success.item() and met(adv, y).item()


def test_every_reported_success_holds_on_the_returned_inputs():
    torch.manual_seed(0)
    x = torch.rand(200, 2)
    y = classifier(x).argmax(1)
    adv, success = detector_aware_pgd(classifier, detector, x, y, epsilon=0.08, steps=20,
                                      restarts=2)
    assert torch.equal(met(adv, y), success)
    assert 0 < success.float().mean() < 1
    assert (adv - x).abs().max() <= 0.08 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1


def test_larger_ball_fools_at_least_as_many():
    torch.manual_seed(0)
    x = torch.rand(300, 2)
    y = classifier(x).argmax(1)
    rates = [detector_aware_pgd(classifier, detector, x, y, epsilon=eps, steps=30)[1]
             .float().mean().item() for eps in (0.0, 0.02, 0.05, 0.1)]
    assert rates == sorted(rates)
    assert rates[-1] > rates[0]


def test_detector_only_mode_pushes_flagged_inputs_past_the_detector():
    x = torch.tensor([[0.2, 0.65], [0.2, 0.9]])
    adv, success = detector_aware_pgd(None, detector, x, epsilon=0.1, steps=20)
    assert success.tolist() == [True, False]  # 0.9 is out of reach at eps 0.1
    assert detector(adv[:1]).argmax(1).item() == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(epsilon=-0.1), "epsilon"),
    (dict(epsilon=0.1, steps=-1), "steps"),
    (dict(epsilon=0.1, restarts=0), "restarts"),
    (dict(epsilon=0.1, norm="l1"), "norm"),
])
def test_bad_parameters_are_named(kwargs, match):
    x, y = torch.rand(2, 2), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        detector_aware_pgd(classifier, detector, x, y, **kwargs)


def test_labels_are_required_with_a_classifier():
    with pytest.raises(ValueError, match="y is required"):
        detector_aware_pgd(classifier, detector, torch.rand(2, 2), epsilon=0.1)


def correct_or_flagged(clf, advs, y):
    return np.array([((clf.predict(a) == y) | clf.detect(a)).mean() for a in advs])


def test_transformer_beats_detector_blind_pgd_on_the_joint_system(fitted_mlp, digits_test):
    X, y = digits_test
    epsilons = [0.02, 0.05, 0.1, 0.3]
    joint = robustlearn.make_attack("detector-aware-pgd", epsilon=epsilons, estimator=fitted_mlp,
                                    random_state=0)
    advs = joint.generate(X, y)
    assert advs.shape == (len(epsilons), *X.shape)
    assert np.all(np.abs(advs - X[None]).reshape(len(epsilons), -1).max(axis=1)
                  <= np.array(epsilons) + 1e-6)
    blind = robustlearn.make_attack("linf-pgd", epsilon=epsilons, estimator=fitted_mlp,
                                    random_state=0).generate(X, y)
    joint_rate = correct_or_flagged(fitted_mlp, advs, y)
    assert np.all(np.diff(joint_rate) <= 0)  # nested balls: never weaker at a larger epsilon
    assert np.all(joint_rate <= correct_or_flagged(fitted_mlp, blind, y) + 0.01)
    assert joint_rate[2] < correct_or_flagged(fitted_mlp, blind, y)[2] - 0.1
    assert joint_rate[-1] < 0.05


def test_transformer_names_a_missing_detector_surface(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("detector-aware-pgd", epsilon=0.1, estimator=fitted_mlp,
                                     detector_surface="ood")
    with pytest.raises(ValueError, match="detector_surface must be one of"):
        attack.fit_transform(X, y)


def test_every_defense_exposes_its_detector_as_a_surface(fitted_mlp, few):
    X, _ = few
    logits = fitted_mlp.attack_surfaces()["detector"](torch.from_numpy(X))
    np.testing.assert_array_equal(logits.argmax(1).numpy().astype(bool), fitted_mlp.detect(X))
