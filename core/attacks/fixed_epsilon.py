"""Fixed-epsilon attacks: FGSM, PGD (linf and l2) and additive noise.

A fixed-epsilon attack looks for an adversarial example inside the ball of
radius ``epsilon`` (:class:`~robustlearn.attacks.base.FixedEpsilonAttack`, as
Foolbox's); with several epsilons it runs once per epsilon, on the inputs not
yet fooled in a smaller ball.

FGSM and PGD run either through Foolbox (``backend="foolbox"``) or through the
torch loop of :func:`robustlearn.attacks.gradient.projected_gradient_descent`
(``backend="torch"``, the default), which follows Foolbox's semantics step for
step (step size ``rel_stepsize * epsilon`` unless ``abs_stepsize``, sign
gradient for linf and l2-normalised gradient for l2, projection then clipping
to [0, 1], a uniform random start in the ball) but skips eagerpy's wrapping
and Foolbox's extra forward pass per epsilon; ``benchmarks/bench_attacks.py``
measures the difference.
"""

from __future__ import annotations

from ..validation import check_bool, check_choice, check_float, check_int
from .base import FixedEpsilonAttack
from .foolbox_adapter import FoolboxAttack, run_foolbox
from .gradient import LOSSES, best_of_pgd

BACKENDS = ("torch", "foolbox")


class _GradientDescentAttack(FoolboxAttack, FixedEpsilonAttack):
    """PGD-type attacks sharing Foolbox's ``BaseGradientDescent`` parameters."""

    def _validate_params(self):
        super()._validate_params()
        check_int(self.steps, "steps", low=1)
        if self.rel_stepsize is not None:
            check_float(self.rel_stepsize, "rel_stepsize", low=0, low_open=True)
        check_int(self.restarts, "restarts", low=1)
        check_choice(self.loss, "loss", LOSSES)
        if self.abs_stepsize is not None:
            check_float(self.abs_stepsize, "abs_stepsize", low=0, low_open=True)
        check_bool(self.random_start, "random_start")
        check_choice(self.backend, "backend", BACKENDS)

    @property
    def relative_step(self) -> float:
        """Step size relative to epsilon: ``rel_stepsize``, or ``2.5 / steps`` when None."""
        return 2.5 / self.steps if self.rel_stepsize is None else float(self.rel_stepsize)

    def _run_epsilon(self, victim, x, labels, epsilon):
        if self.backend == "foolbox":
            return self._run_foolbox(victim, x, labels, epsilon)
        step = self.abs_stepsize if self.abs_stepsize is not None else self.relative_step * epsilon
        return best_of_pgd(
            victim.logits, x, labels, epsilon=epsilon, steps=self.steps, step_size=step,
            norm=self.norm, random_init=self.random_start, restarts=self.restarts,
            loss=self.loss,
        )

    def _run_foolbox(self, victim, x, labels, epsilon):
        """Foolbox's iterates (its last one per run); restarts keep the first success."""
        import torch

        best = run_foolbox(self._foolbox_attack(), victim, x, labels, [epsilon])[0]
        for _ in range(self.restarts - 1):
            fooled = victim.predict_indices(best) != labels
            if bool(fooled.all()):
                break
            again = run_foolbox(self._foolbox_attack(), victim, x, labels, [epsilon])[0]
            best = torch.where(fooled.view(-1, *([1] * (x.dim() - 1))), best, again)
        return best


class _ProjectedGradientDescent(_GradientDescentAttack):
    """The constructor and Foolbox attack that LinfPGD and L2PGD share.

    They differ only in ``norm`` and in the Foolbox class ``_foolbox_name``.
    """

    #: Foolbox attack class (in ``foolbox.attacks``) run with ``backend="foolbox"``
    _foolbox_name = None

    def __init__(self, epsilon=None, *, steps=100, rel_stepsize=None, abs_stepsize=None,
                 random_start=True, restarts=1, loss="ce", backend="torch", eot_samples=1,
                 estimator=None, surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.steps = steps
        self.restarts = restarts
        self.loss = loss
        self.rel_stepsize = rel_stepsize
        self.abs_stepsize = abs_stepsize
        self.random_start = random_start
        self.backend = backend
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _foolbox_attack(self):
        import foolbox

        return getattr(foolbox.attacks, self._foolbox_name)(
            rel_stepsize=self.relative_step, abs_stepsize=self.abs_stepsize, steps=self.steps,
            random_start=self.random_start,
        )


class LinfPGD(_ProjectedGradientDescent):
    """Projected gradient descent in the linf ball (Madry et al. 2018).

    ``x <- clip_[0,1](x0 + clip_[-eps,eps](x + step * sign(grad CE) - x0))`` for
    ``steps`` steps (Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep
    Learning Models Resistant to Adversarial Attacks", ICLR 2018, Eq. 2.2;
    Foolbox ``LinfPGD``).

    Parameters
    ----------
    epsilon : float or list of float, default=None
    steps : int, default=100
    rel_stepsize : float, optional
        Step size relative to epsilon; None (default) is ``2.5 / steps``, so
        the steps can cross the ball and back (Madry et al. 2018), whatever
        ``steps`` is.
    abs_stepsize : float, optional
        Absolute step size; overrides ``rel_stepsize``.
    random_start : bool, default=True
        Start from a uniform random point of the ball.
    restarts : int, default=1
        Further runs from random starts on the examples not fooled yet.
    loss : {"ce", "margin"}, default="ce"
        Cross-entropy, or the logit margin ``max_{j != y} z_j - z_y``.
    backend : {"torch", "foolbox"}, default="torch"
        "torch" keeps the best point found per example over every step and
        restart; "foolbox" runs Foolbox's loop (its last iterate per run, the
        first successful run kept).
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "linf"
    _foolbox_name = "LinfPGD"


class L2PGD(_ProjectedGradientDescent):
    """Projected gradient descent in the l2 ball with l2-normalised gradient steps.

    Madry et al., ICLR 2018; Foolbox ``L2PGD``.

    Parameters
    ----------
    epsilon : float or list of float, default=None
    steps : int, default=100
    rel_stepsize : float, optional
        None (default) is ``2.5 / steps``.
    abs_stepsize : float, optional
    random_start : bool, default=True
    restarts : int, default=1
    loss : {"ce", "margin"}, default="ce"
    backend : {"torch", "foolbox"}, default="torch"
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "l2"
    _foolbox_name = "L2PGD"


class FGSM(_GradientDescentAttack):
    """Fast gradient sign method: one linf step of size epsilon.

    ``x_adv = clip_[0,1](x + epsilon * sign(grad_x CE(f(x), y)))`` (Goodfellow,
    Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR
    2015, Eq. 3; Foolbox ``FGSM``).

    Parameters
    ----------
    epsilon : float or list of float, default=None
    random_start : bool, default=False
    backend : {"torch", "foolbox"}, default="torch"
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "linf"
    steps = 1
    rel_stepsize = 1.0
    abs_stepsize = None
    restarts = 1
    loss = "ce"

    def __init__(self, epsilon=None, *, random_start=False, backend="torch", eot_samples=1,
                 estimator=None,
                 surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.random_start = random_start
        self.backend = backend
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _foolbox_attack(self):
        import foolbox

        return foolbox.attacks.FGSM(random_start=self.random_start)


class _AdditiveNoise(FoolboxAttack, FixedEpsilonAttack):
    """Additive random noise scaled to the ball's surface (model-free unless ``repeats > 1``)."""

    needs_gradient = False
    #: Foolbox attack class names: one draw, and the repeated version (``repeats > 1``)
    _foolbox_single = None
    _foolbox_repeated = None

    def __init__(self, epsilon=None, *, repeats=1, estimator=None, surrogate=None,
                 surface="default", batch_size=256, memory_budget=None, random_state=None):
        self.repeats = repeats
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state)

    def needs_victim(self):
        return self.repeats > 1

    def _validate_params(self):
        super()._validate_params()
        check_int(self.repeats, "repeats", low=1)

    def _foolbox_attack(self):
        import foolbox

        if self.repeats == 1:
            return getattr(foolbox.attacks, self._foolbox_single)()
        return getattr(foolbox.attacks, self._foolbox_repeated)(repeats=self.repeats)


class GaussianNoise(_AdditiveNoise):
    """Gaussian noise rescaled to l2 norm epsilon, then clipped to [0, 1].

    A model-free corruption (Foolbox ``L2AdditiveGaussianNoiseAttack``; Rauber
    et al., Foolbox, 2017). With ``repeats > 1`` it draws that many samples per
    image and keeps the first that fools the victim (Foolbox
    ``L2RepeatedAdditiveGaussianNoiseAttack``), which needs a victim.

    Parameters
    ----------
    epsilon : float or list of float, default=None
        l2 radius.
    repeats : int, default=1
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "l2"
    _foolbox_single = "L2AdditiveGaussianNoiseAttack"
    _foolbox_repeated = "L2RepeatedAdditiveGaussianNoiseAttack"


class UniformNoise(_AdditiveNoise):
    """Uniform noise rescaled to linf norm epsilon, then clipped to [0, 1].

    A model-free corruption (Foolbox ``LinfAdditiveUniformNoiseAttack``); with
    ``repeats > 1``, Foolbox ``LinfRepeatedAdditiveUniformNoiseAttack``. Carlini
    et al. 2019 ("On Evaluating Adversarial Robustness", arXiv 1902.06705)
    recommend it as the random-noise sanity check.

    Parameters
    ----------
    epsilon : float or list of float, default=None
        linf radius.
    repeats : int, default=1
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "linf"
    _foolbox_single = "LinfAdditiveUniformNoiseAttack"
    _foolbox_repeated = "LinfRepeatedAdditiveUniformNoiseAttack"
