"""AutoAttack: a parameter-free ensemble run in sequence on the images still robust.

Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020, arXiv 2003.01690, Sec. 5:

``"standard"``
    APGD-CE (100 iterations), APGD-T (targeted DLR, 9 target classes, 100
    iterations each), FAB-T and Square (5000 queries).
``"rand"``
    for stochastic defenses: APGD-CE and APGD-DLR, each averaging 20 EOT
    gradients per step.

FAB-T (Croce & Hein, "Minimally distorted adversarial examples with a fast
adaptive boundary attack", ICML 2020; :mod:`robustlearn.attacks.fab`) runs
with the same iterations and target classes as APGD-T and counts only where
its perturbation, projected onto the epsilon ball, still fools the model.
Square is implemented for linf only, so the l2 ensemble is APGD-CE, APGD-T
and FAB-T; :attr:`AutoAttack.components` names what actually runs, so
reports can say so.
"""

from __future__ import annotations

import torch

from ..validation import check_choice, check_int
from .apgd import _project, apgd_attack, check_loss_classes
from .base import NORMS, FixedEpsilonAttack
from .fab import fab_attack
from .square import square_attack

VERSIONS = ("standard", "rand")
COMPONENTS = ("apgd-ce", "apgd-t", "apgd-dlr", "fab-t", "square")


def components(version, norm):
    """The attacks AutoAttack runs, in order, for a version and a norm."""
    if version == "rand":
        return ("apgd-ce", "apgd-dlr")
    if norm == "linf":
        return ("apgd-ce", "apgd-t", "fab-t", "square")
    return ("apgd-ce", "apgd-t", "fab-t")


class AutoAttack(FixedEpsilonAttack):
    """AutoAttack (Croce & Hein 2020): see :mod:`robustlearn.attacks.autoattack`.

    Each component attacks only the images that the earlier ones left
    correctly classified, so the result is the per-image worst case over the
    ensemble.

    Parameters
    ----------
    epsilon : float or list of float, default=None
    norm : {"linf", "l2"}, default="linf"
    version : {"standard", "rand"}, default="standard"
    attacks : tuple of str, optional
        Components to run instead of the version's (from "apgd-ce", "apgd-t",
        "apgd-dlr", "fab-t", "square").
    steps : int, default=100
        APGD and FAB-T iterations.
    n_target_classes : int, default=9
        Targets of APGD-T and of FAB-T.
    n_queries : int, default=5000
        Square's budget.
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.

    """

    _eot_in_loss = True

    def __init__(self, epsilon=None, *, norm="linf", version="standard", attacks=None,
                 steps=100, n_target_classes=9, n_queries=5000, eot_samples=1, estimator=None,
                 surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.norm = norm
        self.version = version
        self.attacks = attacks
        self.steps = steps
        self.n_target_classes = n_target_classes
        self.n_queries = n_queries
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.version, "version", VERSIONS)
        if self.attacks is not None:
            if isinstance(self.attacks, str) or not self.attacks:
                raise ValueError(f"attacks must be a non-empty sequence of names, got "
                                 f"{self.attacks!r}")
            for name in self.attacks:
                check_choice(name, "attacks[]", COMPONENTS)
            if "square" in self.attacks and self.norm != "linf":
                raise ValueError("the square component is implemented for norm='linf' only")
        check_int(self.steps, "steps", low=1)
        check_int(self.n_target_classes, "n_target_classes", low=1)
        check_int(self.n_queries, "n_queries", low=1)

    @property
    def components(self):
        """The component attacks that run, in order."""
        return tuple(self.attacks) if self.attacks else components(self.version, self.norm)

    def _run_epsilon(self, victim, x, labels, epsilon):
        x_adv = x.detach().clone()
        with torch.no_grad():
            robust = victim.logits(x).argmax(1) == labels
        for name in self.components:
            idx = robust.nonzero()[:, 0]
            if len(idx) == 0:
                break
            xs, ys = x[idx], labels[idx]
            # the components in the faster layout; success is checked below in the original
            with victim.channels_last(xs):
                if name == "square":
                    cand = square_attack(victim.logits, xs, ys, epsilon=epsilon,
                                         n_queries=self.n_queries)
                elif name == "fab-t":
                    cand, _ = fab_attack(victim.logits, xs, ys, norm=self.norm, targeted=True,
                                         n_target_classes=self.n_target_classes,
                                         steps=self.steps, epsilon=epsilon, early_stop=True)
                    # only success inside the ball counts (FAB minimizes, it is not bounded)
                    cand = _project(xs, cand, epsilon, self.norm)
                else:
                    loss = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}[name]
                    check_loss_classes(loss, len(victim.classes))
                    cand = apgd_attack(victim.logits, xs, ys, epsilon=epsilon, norm=self.norm,
                                       steps=self.steps, loss=loss,
                                       n_target_classes=self.n_target_classes,
                                       eot_iter=self.eot_samples)
            with torch.no_grad():
                fooled = victim.logits(cand).argmax(1) != ys
            x_adv[idx[fooled]] = cand[fooled]
            robust[idx[fooled]] = False
        return x_adv
