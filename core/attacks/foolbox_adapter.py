"""Running a Foolbox 3 attack on a :class:`~robustlearn.attacks.victim.Victim`.

Foolbox (Rauber, Zimmermann, Bethge, Brendel, "Foolbox Native: Fast adversarial
attacks to benchmark the robustness of machine learning models in PyTorch,
TensorFlow, and JAX", JOSS 2020) runs the attack; this module only builds the
``foolbox.PyTorchModel`` and the criterion and hands back the clipped results.
"""

from __future__ import annotations

import torch

from .base import BaseAttack


class _ConstantLogits(torch.nn.Module):
    """Two constant logits: the model Foolbox needs when a model-free attack has no victim."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2, device=x.device)


def foolbox_model(victim, device=None):
    """A ``foolbox.PyTorchModel`` with bounds (0, 1) over the victim's surface (or a constant)."""
    import foolbox

    if victim is None:
        return foolbox.PyTorchModel(_ConstantLogits().eval(), bounds=(0, 1),
                                    device=device or torch.device("cpu"))
    return foolbox.PyTorchModel(victim.module(), bounds=(0, 1), device=victim.device)


def run_foolbox(attack, victim, x, labels, epsilons):
    """Call a Foolbox attack once for all ``epsilons``; return the clipped results stacked.

    Parameters
    ----------
    attack : foolbox.attacks.Attack
    victim : Victim or None
    x : torch.Tensor (n, C, H, W) in [0, 1]
    labels : torch.Tensor of int64 (n,)
    epsilons : list of float or None

    Returns
    -------
    torch.Tensor of shape (len(epsilons), *x.shape)
    """
    import foolbox

    model = foolbox_model(victim, x.device)
    criterion = foolbox.criteria.Misclassification(labels)
    _, clipped, _ = attack(model, x, criterion, epsilons=list(epsilons))
    return torch.stack([c.detach() for c in clipped])


def minimize_with_foolbox(attack, victim, x, labels, epsilons):
    """One unbounded run of a Foolbox minimization attack.

    As Foolbox does, the attack may stop early once an example is within the
    smallest radius asked for (and so within all of them).

    Parameters
    ----------
    attack : foolbox.attacks.MinimizationAttack
    victim : Victim
    x : torch.Tensor (n, C, H, W) in [0, 1]
    labels : torch.Tensor of int64 (n,)
    epsilons : list of float or None

    Returns
    -------
    torch.Tensor of the shape of ``x``
    """
    import foolbox

    early_stop = None if any(e is None for e in epsilons) else min(epsilons)
    criterion = foolbox.criteria.Misclassification(labels)
    return attack.run(foolbox_model(victim, x.device), x, criterion,
                      early_stop=early_stop).detach()


class FoolboxAttack(BaseAttack):
    """An attack run by Foolbox: subclasses build the Foolbox attack in ``_foolbox_attack``.

    A subclass is also one of the two kinds of attack, which decides which of
    the two hooks below runs: ``class MyAttack(FoolboxAttack, FixedEpsilonAttack)``
    or ``class MyAttack(FoolboxAttack, MinimizationAttack)``.
    """

    def _foolbox_attack(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_epsilon(self, victim, x, labels, epsilon):
        """One run of a fixed-epsilon Foolbox attack, clipped to the ball."""
        return run_foolbox(self._foolbox_attack(), victim, x, labels, [epsilon])[0]

    def _minimize(self, victim, x, labels, epsilons):
        """One unbounded run of a minimization Foolbox attack (:func:`minimize_with_foolbox`)."""
        return minimize_with_foolbox(self._foolbox_attack(), victim, x, labels, epsilons)
