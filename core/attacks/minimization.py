"""Minimization attacks: the smallest perturbation that changes the decision.

A minimization attack (:class:`~robustlearn.attacks.base.MinimizationAttack`,
as Foolbox's) runs once without a budget; its result at each epsilon is that
run projected onto the epsilon ball,
and ``epsilon=None`` returns the unbounded result (Carlini et al. 2019 ask for
such an unbounded attack as a sanity check: it must reach 100 % success).
"""

from __future__ import annotations

from ..validation import check_bool, check_choice, check_float, check_int
from .base import MinimizationAttack
from .foolbox_adapter import FoolboxAttack, foolbox_model, minimize_with_foolbox


class L2CarliniWagner(FoolboxAttack, MinimizationAttack):
    """Carlini & Wagner's l2 attack.

    Minimises ``||delta||_2^2 + c * max(Z_y - max_{i != y} Z_i, -kappa)`` with Adam
    in tanh space, binary-searching ``c`` (Carlini, Wagner, "Towards Evaluating
    the Robustness of Neural Networks", IEEE S&P 2017, Eq. 6 and Sec. V.A;
    Foolbox ``L2CarliniWagnerAttack``).

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
        l2 radii to clip the result to; None is unbounded.
    binary_search_steps : int, default=9
    steps : int, default=1000
        Adam steps per binary-search step (Foolbox's default is 10000; with
        ``abort_early`` 1000 reaches the same result on MNIST-size models).
    stepsize : float, default=0.01
    confidence : float, default=0
        The margin kappa.
    initial_const : float, default=1e-3
    abort_early : bool, default=True
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "l2"

    def __init__(self, epsilon=None, *, binary_search_steps=9, steps=1000, stepsize=0.01,
                 confidence=0.0, initial_const=1e-3, abort_early=True,
                 eot_samples=1, estimator=None,
                 surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.binary_search_steps = binary_search_steps
        self.steps = steps
        self.stepsize = stepsize
        self.confidence = confidence
        self.initial_const = initial_const
        self.abort_early = abort_early
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_int(self.binary_search_steps, "binary_search_steps", low=1)
        check_int(self.steps, "steps", low=1)
        check_float(self.stepsize, "stepsize", low=0, low_open=True)
        check_float(self.confidence, "confidence", low=0)
        check_float(self.initial_const, "initial_const", low=0, low_open=True)
        check_bool(self.abort_early, "abort_early")

    def _foolbox_attack(self):
        import foolbox

        return foolbox.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps, steps=self.steps,
            stepsize=self.stepsize, confidence=self.confidence,
            initial_const=self.initial_const, abort_early=self.abort_early,
        )


class LinfDeepFool(FoolboxAttack, MinimizationAttack):
    """DeepFool in the linf norm: step to the linearised nearest decision boundary.

    Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate method
    to fool deep neural networks", CVPR 2016, Eq. 8 and 9 with q = 1 (linf);
    Foolbox ``LinfDeepFoolAttack``.

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
    steps : int, default=50
    candidates : int or None, default=10
        Classes with the highest logits considered as targets (None: all).
    overshoot : float, default=0.02
    loss : {"logits", "crossentropy"}, default="logits"
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "linf"

    def __init__(self, epsilon=None, *, steps=50, candidates=10, overshoot=0.02, loss="logits",
                 eot_samples=1, estimator=None, surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.steps = steps
        self.candidates = candidates
        self.overshoot = overshoot
        self.loss = loss
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_int(self.steps, "steps", low=1)
        if self.candidates is not None:
            check_int(self.candidates, "candidates", low=2)
        check_float(self.overshoot, "overshoot", low=0)
        check_choice(self.loss, "loss", ("logits", "crossentropy"))

    def _minimize(self, victim, x, labels, epsilons):
        import foolbox

        candidates = self.candidates
        if candidates is not None:  # Foolbox needs at most the victim's number of classes
            candidates = min(candidates, len(victim.classes))
        attack = foolbox.attacks.LinfDeepFoolAttack(
            steps=self.steps, candidates=candidates, overshoot=self.overshoot, loss=self.loss
        )
        return minimize_with_foolbox(attack, victim, x, labels, epsilons)


class Boundary(FoolboxAttack, MinimizationAttack):
    """The decision-based Boundary Attack: a random walk along the decision boundary.

    Starts from an adversarial point found by blending with uniform noise and
    shrinks the distance to the original by orthogonal and source steps
    (Brendel, Rauber, Bethge, "Decision-Based Adversarial Attacks: Reliable
    Attacks Against Black-Box Machine Learning Models", ICLR 2018, Sec. 3;
    Foolbox ``BoundaryAttack``). Needs only the victim's decisions. Images for
    which the starting search finds no adversarial point are returned
    unperturbed.

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
        l2 radii to clip the result to; None is unbounded.
    steps : int, default=5000
        Foolbox's default is 25000.
    spherical_step : float, default=0.01
    source_step : float, default=0.01
    source_step_convergance : float, default=1e-7
    step_adaptation : float, default=1.5
    update_stats_every_k : int, default=10
    init_steps : int, default=50
        Steps of the blended-noise line search that finds the starting points.
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "l2"
    needs_gradient = False

    def __init__(self, epsilon=None, *, steps=5000, spherical_step=0.01, source_step=0.01,
                 source_step_convergance=1e-7, step_adaptation=1.5, update_stats_every_k=10,
                 init_steps=50, estimator=None, surrogate=None, surface="default",
                 batch_size=256, memory_budget=None, random_state=None):
        self.steps = steps
        self.spherical_step = spherical_step
        self.source_step = source_step
        self.source_step_convergance = source_step_convergance
        self.step_adaptation = step_adaptation
        self.update_stats_every_k = update_stats_every_k
        self.init_steps = init_steps
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state)

    def _validate_params(self):
        super()._validate_params()
        check_int(self.steps, "steps", low=1)
        check_float(self.spherical_step, "spherical_step", low=0, low_open=True)
        check_float(self.source_step, "source_step", low=0, low_open=True)
        check_float(self.source_step_convergance, "source_step_convergance", low=0,
                    low_open=True)
        check_float(self.step_adaptation, "step_adaptation", low=1, low_open=True)
        check_int(self.update_stats_every_k, "update_stats_every_k", low=1)
        check_int(self.init_steps, "init_steps", low=1)

    def _minimize(self, victim, x, labels, epsilons):
        import foolbox

        model = foolbox_model(victim)
        criterion = foolbox.criteria.Misclassification(labels)
        init = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(steps=self.init_steps)
        starts = init.run(model, x, criterion)
        found = victim.predict_indices(starts) != labels
        raw = x.clone()
        if bool(found.any()):
            attack = foolbox.attacks.BoundaryAttack(
                steps=self.steps, spherical_step=self.spherical_step,
                source_step=self.source_step,
                source_step_convergance=self.source_step_convergance,
                step_adaptation=self.step_adaptation,
                update_stats_every_k=self.update_stats_every_k,
            )
            sub = foolbox.criteria.Misclassification(labels[found])
            raw[found] = attack.run(model, x[found], sub, starting_points=starts[found])
        return raw


class SaltAndPepper(FoolboxAttack, MinimizationAttack):
    """Salt-and-pepper noise of increasing density until the decision changes.

    A decision-based corruption: it queries only the victim's decisions and
    returns the sparsest noise found that fools it (Foolbox
    ``SaltAndPepperNoiseAttack``; Rauber, Brendel, Bethge, "Foolbox: A Python
    toolbox to benchmark the robustness of machine learning models", 2017).

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
        l2 radii to clip the result to; None is unbounded.
    steps : int, default=1000
    across_channels : bool, default=True
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    norm = "l2"
    needs_gradient = False

    def __init__(self, epsilon=None, *, steps=1000, across_channels=True, estimator=None,
                 surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.steps = steps
        self.across_channels = across_channels
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state)

    def _validate_params(self):
        super()._validate_params()
        check_int(self.steps, "steps", low=1)
        check_bool(self.across_channels, "across_channels")

    def _foolbox_attack(self):
        import foolbox

        return foolbox.attacks.SaltAndPepperNoiseAttack(
            steps=self.steps, across_channels=self.across_channels, channel_axis=1
        )
