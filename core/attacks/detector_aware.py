"""Joint attacks on a classifier and its detector: misclassify *and* stay unflagged.

A defense that flags suspicious inputs is only robust if an attacker who knows
the detector cannot find an input that is both misclassified and accepted
(Carlini & Wagner, "Adversarial Examples Are Not Easily Detected: Bypassing
Ten Detection Methods", AISec 2017). Summing the two objectives into one loss
leaves the attacker to balance their scales; the selective update of Bryniarski,
Hingun, Pachuca, Wang & Carlini ("Evading Adversarial Example Detectors using
Orthogonal Projected Gradient Descent", ICLR 2022) avoids that: each step
follows the gradient of whichever constraint is violated, the classifier's
while the input is still classified correctly and the detector's once it is
misclassified but flagged.

Both functions here keep, per example, the first iterate that meets the goal,
so a success is never lost to a later step, and the result is checked on the
real forward pass of the surfaces passed in.
"""

from __future__ import annotations

import torch

from ..validation import check_choice, check_float, check_int
from .base import FixedEpsilonAttack
from .gradient import NORMS, _flat_norm, project, random_start
from .victim import Victim


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the true one: positive means misclassified."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.max(dim=1).values - true


def detector_aware_pgd(
    logits_fn,
    detector_fn,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    epsilon: float,
    steps: int = 50,
    step_size: float | None = None,
    norm: str = "linf",
    random_init: bool = False,
    restarts: int = 1,
):
    """Selective PGD towards inputs that are misclassified and not flagged.

    Parameters
    ----------
    logits_fn : callable or None
        Maps images to class logits (a defense's attack surface). ``None``
        attacks the detector alone: the goal is then only to be accepted,
        as when out-of-distribution images are pushed past an OOD detector.
    detector_fn : callable
        Maps images to two logits per input, ``[accepted, flagged]``; the input
        counts as flagged when the second is larger.
    x : torch.Tensor
        Clean images in [0, 1].
    y : torch.Tensor of int64, optional
        True labels; required when ``logits_fn`` is given.
    epsilon : float
        Radius of the ``norm`` ball.
    steps : int, default=50
        Gradient steps per restart.
    step_size : float, optional
        Defaults to ``2.5 * epsilon / steps``.
    norm : {"linf", "l2"}, default="linf"
    random_init : bool, default=False
        Start the first restart from a random point of the ball; later restarts
        always start at random. The clean input is the natural start here, as
        it is usually accepted by the detector.
    restarts : int, default=1
        Runs, each on the inputs not yet successful.

    Returns
    -------
    x_adv : torch.Tensor
        For each input, the first iterate that met the goal, or the last
        iterate of the last restart where none did.
    success : torch.Tensor of bool
        Whether the goal was met (on the real forward pass of both surfaces).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not (isinstance(restarts, int) and restarts >= 1):
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if logits_fn is not None and y is None:
        raise ValueError("y is required when logits_fn is given")
    x = x.detach()
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    best = x.clone()
    success = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    def evaluate(x_adv, labels):
        """Goal met, and the per-example loss whose gradient to follow."""
        detection = detector_fn(x_adv)
        accepted_margin = detection[:, 0] - detection[:, 1]
        if logits_fn is None:
            return accepted_margin.detach() > 0, accepted_margin
        class_margin = _margin(logits_fn(x_adv), labels)
        fooled = class_margin.detach() > 0
        met = fooled & (accepted_margin.detach() > 0)
        return met, torch.where(fooled, accepted_margin, class_margin)

    if epsilon == 0 or steps == 0:
        with torch.no_grad():
            success = evaluate(x, y)[0]
        return best, success
    for restart in range(restarts):
        todo = (~success).nonzero()[:, 0]
        if len(todo) == 0:
            break
        start = x[todo]
        x_adv = random_start(start, epsilon, norm) if (random_init or restart > 0) else start
        for step in range(steps + 1):
            # only the inputs still short of the goal are run, so easy ones cost one pass
            x_adv = x_adv.detach().requires_grad_(step < steps)
            with torch.set_grad_enabled(step < steps):
                met, loss = evaluate(x_adv, None if y is None else y[todo])
            best[todo] = x_adv.detach()
            success[todo[met]] = True
            keep = ~met
            if step == steps or not bool(keep.any()):
                break
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                if norm == "linf":
                    x_adv = x_adv + step_size * grad.sign()
                else:
                    x_adv = x_adv + step_size * grad / _flat_norm(grad)
                todo, start, x_adv = todo[keep], start[keep], x_adv[keep]
                x_adv = (start + project(x_adv - start, epsilon, norm)).clamp(0.0, 1.0)
    return best, success


class DetectorAwarePGD(FixedEpsilonAttack):
    """Joint PGD on a defense and its detector (:func:`detector_aware_pgd`).

    Looks for inputs that are misclassified *and* not flagged by the victim's
    detector, following the selective update of Bryniarski et al. (ICLR 2022),
    and keeps the first success of each input. The victim must expose its
    detector as an attack surface returning ``[accepted, flagged]`` logits;
    every :class:`robustlearn.BaseDefense` does (``"detector"``, see
    :meth:`~robustlearn.BaseDefense.detection_logits`). Several epsilons are
    run from the smallest up, and an input that met the goal in a smaller ball
    is kept for the larger ones (see
    :class:`~robustlearn.attacks.base.FixedEpsilonAttack`).

    Accuracy under this attack is "correct or flagged": score the output with
    ``(victim.predict(X_adv) == y) | victim.detect(X_adv)``.

    Parameters
    ----------
    epsilon : float or list of float, default=None
    norm : {"linf", "l2"}, default="linf"
    steps : int, default=50
    rel_stepsize : float, optional
        Step size relative to epsilon; defaults to ``2.5 / steps``.
    restarts : int, default=2
        The first from the clean input (usually accepted by the detector),
        the others from random points of the ball.
    detector_surface : str, default="detector"
        Key of the victim's ``attack_surfaces()`` giving the detector logits.
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`; ``surface`` is the
        classification path (for example a BPDA surface).
    """

    def __init__(self, epsilon=None, *, norm="linf", steps=50, rel_stepsize=None, restarts=2,
                 detector_surface="detector", eot_samples=1, estimator=None, surrogate=None,
                 surface="default", batch_size=256, memory_budget=None, random_state=None):
        self.norm = norm
        self.steps = steps
        self.rel_stepsize = rel_stepsize
        self.restarts = restarts
        self.detector_surface = detector_surface
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.norm, "norm", NORMS)
        check_int(self.steps, "steps", low=1)
        if self.rel_stepsize is not None:
            check_float(self.rel_stepsize, "rel_stepsize", low=0, low_open=True)
        check_int(self.restarts, "restarts", low=1)
        if not isinstance(self.detector_surface, str):
            raise TypeError(f"detector_surface must be a str, got {self.detector_surface!r}")

    def _detector(self, victim):
        surfaces = victim.estimator.attack_surfaces()
        if self.detector_surface not in surfaces:
            raise ValueError(
                f"detector_surface must be one of {sorted(surfaces)} for "
                f"{type(victim.estimator).__name__}, got {self.detector_surface!r}"
            )
        return Victim(victim.estimator, self.detector_surface).logits

    def _run(self, victim, x, labels, epsilons):
        self._detector(victim)  # a wrong detector_surface fails before any work
        return super()._run(victim, x, labels, epsilons)

    def _run_epsilon(self, victim, x, labels, epsilon):
        rel = 2.5 / self.steps if self.rel_stepsize is None else self.rel_stepsize
        adv, _ = detector_aware_pgd(
            victim.logits, self._detector(victim), x, labels, epsilon=epsilon,
            steps=self.steps, step_size=rel * epsilon, norm=self.norm, restarts=self.restarts)
        return adv

    def _is_adversarial(self, victim, x_adv, labels):
        """Misclassified and accepted by the detector."""
        with torch.no_grad():
            detection = self._detector(victim)(x_adv)
        return (victim.predict_indices(x_adv) != labels) & (detection[:, 0] > detection[:, 1])
