"""Attacks: scikit-learn transformers over Foolbox 3 and torch, plus training inner loops.

Every attack is a :class:`BaseAttack` (a scikit-learn transformer) registered
through the ``register_attacks`` hook; make one with
:func:`robustlearn.make_attack`. :mod:`robustlearn.attacks.gradient` holds the
plain torch PGD loop that adversarial training runs every batch, and
:mod:`robustlearn.attacks.detector_aware` the joint attack on a classifier and its detector.
"""

from .apgd import APGD
from .autoattack import AutoAttack
from .base import (
    BaseAttack,
    FixedEpsilonAttack,
    MinimizationAttack,
    check_adversarial,
    check_epsilons,
    project_to_ball,
)
from .detector_aware import DetectorAwarePGD, detector_aware_pgd
from .fab import FAB
from .fixed_epsilon import FGSM, L2PGD, GaussianNoise, LinfPGD, UniformNoise
from .gradient import projected_gradient_descent
from .minimization import Boundary, L2CarliniWagner, LinfDeepFool, SaltAndPepper
from .square import Square
from .victim import Victim


def make_attack(name, epsilon=None, estimator=None, surrogate=None, **params):
    """Make the attack transformer registered as ``name``.

    Parameters
    ----------
    name : str
        A registered attack (``robustlearn plugins`` lists them), e.g. ``"linf-pgd"``.
    epsilon : float or list of float, optional
        Radius of the threat model (images in [0, 1]).
    estimator : fitted estimator, optional
        White-box victim.
    surrogate : estimator, optional
        Unfitted estimator that ``fit`` trains and attacks (transfer attack).
    **params
        The attack's own parameters (``steps``, ``rel_stepsize``, ``random_state``, ...).

    Returns
    -------
    BaseAttack
        A scikit-learn transformer.

    Examples
    --------
    >>> import robustlearn
    >>> attack = robustlearn.make_attack("linf-pgd", epsilon=0.1, steps=10)
    >>> attack.get_params()["steps"]
    10
    """
    from ..registry import make

    return make("attack", name, epsilon=epsilon, estimator=estimator, surrogate=surrogate,
                **params)


__all__ = [
    "APGD",
    "AutoAttack",
    "BaseAttack",
    "Boundary",
    "DetectorAwarePGD",
    "FAB",
    "FGSM",
    "FixedEpsilonAttack",
    "GaussianNoise",
    "L2CarliniWagner",
    "L2PGD",
    "LinfDeepFool",
    "LinfPGD",
    "MinimizationAttack",
    "SaltAndPepper",
    "Square",
    "UniformNoise",
    "Victim",
    "check_adversarial",
    "check_epsilons",
    "detector_aware_pgd",
    "make_attack",
    "project_to_ball",
    "projected_gradient_descent",
]
