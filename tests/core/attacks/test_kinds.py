"""The two kinds of attack, as in Foolbox: fixed-epsilon and minimization.

The loop over radii and the output projection are written once in the base
classes; these tests hold them to what they promise.
"""

import numpy as np
import torch

from robustlearn.attacks.base import FixedEpsilonAttack, MinimizationAttack
from robustlearn.attacks.fixed_epsilon import LinfPGD


class _RecordingPGD(LinfPGD):
    """LinfPGD that records how many inputs each radius attacked."""

    def _run_epsilon(self, victim, x, labels, epsilon):
        self.calls_.append((epsilon, len(x)))
        return super()._run_epsilon(victim, x, labels, epsilon)


def _recording(estimator, **params):
    attack = _RecordingPGD(estimator=estimator, steps=10, **params)
    attack.calls_ = []
    return attack


def test_fixed_epsilon_attacks_only_the_inputs_not_fooled_in_a_smaller_ball(fitted_mlp, few):
    X, y = few
    attack = _recording(fitted_mlp)
    epsilons = [0.3, 0.05, 0.1]  # any order: run from the smallest up
    adv = attack.generate(X, y, epsilons=epsilons)
    assert [eps for eps, _ in attack.calls_] == [0.05, 0.1, 0.3]
    sizes = [n for _, n in attack.calls_]
    assert sizes[0] == len(X) and sizes[0] > sizes[1] > sizes[2]
    fooled = np.stack([fitted_mlp.predict(a) != y for a in adv])  # rows in the order asked
    # balls are nested: an input fooled at 0.05 is fooled at 0.1 and 0.3, with the same example
    assert np.all(fooled[1] <= fooled[2]) and np.all(fooled[2] <= fooled[0])
    kept = fooled[1]
    np.testing.assert_allclose(adv[2][kept], adv[1][kept], atol=1e-6)  # float32 re-projection
    # the inputs attacked at 0.1 are exactly those not fooled at 0.05
    assert sizes[1] == int((~fooled[1]).sum())


def test_fixed_epsilon_attacks_every_radius_afresh_on_a_transfer_surface(fitted_mlp, few):
    from robustlearn import Surface

    class _WithTransfer(type(fitted_mlp)):
        def attack_surfaces(self):
            surfaces = super().attack_surfaces()
            exact = surfaces["default"]
            return {**surfaces, "static": Surface(exact.fn, "transfer", "the same net")}

    victim = _WithTransfer(**fitted_mlp.get_params())
    victim.__dict__.update({k: v for k, v in vars(fitted_mlp).items() if k.endswith("_")})
    X, y = few
    attack = _recording(victim, surface="static")
    attack.generate(X, y, epsilons=[0.05, 0.1])
    # a transfer surface's forward is not the deployed prediction: nothing is reused
    assert [n for _, n in attack.calls_] == [len(X), len(X)]


class _FarAway(MinimizationAttack):
    """Moves every pixel by 0.5 towards the farther bound: always outside small balls."""

    norm = "linf"
    needs_gradient = False

    def __init__(self, epsilon=None, *, estimator=None, surrogate=None, surface="default",
                 batch_size=256, random_state=None):
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size, random_state=random_state)

    def _minimize(self, victim, x, labels, epsilons):
        self.runs_ = getattr(self, "runs_", 0) + 1
        return torch.where(x < 0.5, x + 0.5, x - 0.5)


def test_minimization_attack_runs_once_and_is_projected_per_radius(fitted_mlp, few):
    X, y = few
    attack = _FarAway(estimator=fitted_mlp)
    adv = attack.generate(X, y, epsilons=[0.1, 0.2, None])
    assert attack.runs_ == 1 and attack.is_minimization
    for k, eps in enumerate([0.1, 0.2]):
        assert np.abs(adv[k] - X).max() <= eps * (1 + 1e-6)
        assert np.abs(adv[k] - X).max() > 0.9 * eps  # projected onto the ball, not dropped
    np.testing.assert_allclose(np.abs(adv[2] - X).max(), 0.5, atol=1e-6)  # None: unbounded


def test_every_registered_attack_is_one_of_the_two_kinds():
    import robustlearn

    for entry in robustlearn.registry.list_registrations("attack"):
        attack = entry.factory()
        kinds = (isinstance(attack, FixedEpsilonAttack), isinstance(attack, MinimizationAttack))
        assert sum(kinds) == 1, entry.name
        assert attack.is_minimization == kinds[1], entry.name
