"""Per-example worst case over attacks: the headline rule of a robustness report.

An example counts as robust at radius epsilon only if the model classifies it
correctly *and* no attack of the same threat model (norm) fooled it at any radius
up to epsilon. Accuracy is then the mean of that per-example indicator. Taking
the minimum of per-attack mean accuracies instead overstates robustness
whenever different attacks break different examples (Carlini et al., "On
Evaluating Adversarial Robustness", arXiv 1902.06705, 2019, "Report per-example
attack success rate"; Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020).
"""

from __future__ import annotations

import numpy as np

#: Group of attacks that declare no norm (model-free corruptions without a ball).
CORRUPTION_GROUP = "corruption"


def attack_group(norm) -> str:
    """Worst-case group of an attack: its norm (``"linf"``, ``"l2"``, ...) or ``"corruption"``."""
    return str(norm) if norm else CORRUPTION_GROUP


def robust_correct(clean_correct, adversarial_correct):
    """Per-attack robustness indicator: correct on the clean input and on the adversarial one.

    Parameters
    ----------
    clean_correct : array-like of bool, shape (n,)
    adversarial_correct : array-like of bool, shape (n_attacks, n_epsilons, n)

    Returns
    -------
    ndarray of bool, shape (n_attacks, n_epsilons, n)
    """
    clean = np.asarray(clean_correct, dtype=bool)
    adversarial = np.asarray(adversarial_correct, dtype=bool)
    return adversarial & clean[None, None, :]


def worst_case_correct(robust, groups, epsilons=None):
    """Per-example worst case over the attacks of each group, cumulative over radii.

    Parameters
    ----------
    robust : array-like of bool, shape (n_attacks, n_epsilons, n)
        Per-attack indicators from :func:`robust_correct`.
    groups : sequence of str, length n_attacks
        Group (norm) of each attack.
    epsilons : array-like of float, optional
        The radii of axis 1; they must be sorted in increasing order, since a
        perturbation found at a smaller radius also lies in every larger ball
        of the same norm. Used only for that check.

    Returns
    -------
    dict of str to ndarray of bool, shape (n_epsilons, n)
        For each group, ``worst[g][j, i]`` is True when example ``i`` survived
        every attack of group ``g`` at every radius ``<= epsilons[j]``; its mean
        over ``i`` is the headline accuracy. This curve is non-increasing in
        epsilon by construction.
    """
    robust = np.asarray(robust, dtype=bool)
    if robust.ndim != 3 or robust.shape[0] != len(groups):
        raise ValueError(
            f"robust must have shape (n_attacks={len(groups)}, n_epsilons, n), got {robust.shape}"
        )
    if epsilons is not None and np.any(np.diff(np.asarray(epsilons, dtype=float)) < 0):
        raise ValueError("epsilons must be sorted in increasing order")
    worst = {}
    for group in dict.fromkeys(groups):
        members = np.array([g == group for g in groups])
        per_radius = robust[members].all(axis=0)
        worst[group] = np.logical_and.accumulate(per_radius, axis=0)
    return worst
