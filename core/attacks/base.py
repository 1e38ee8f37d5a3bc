"""The attack transformer contract: :class:`BaseAttack`.

An attack is a scikit-learn transformer. Its victim is either a fitted
estimator (``estimator``, white-box) or an unfitted one that ``fit`` trains on
the data it sees (``surrogate``, a transfer attack: this is how an attack step
sits in front of a defense in a ``Pipeline``). ``transform`` returns
adversarial images of the input's shape; :meth:`BaseAttack.generate` runs the
attack for several epsilons at once, as Foolbox does, and is what evaluation
code calls.

Writing an attack means subclassing one of the two kinds, as in Foolbox:
:class:`FixedEpsilonAttack` (implement ``_run_epsilon(victim, x, labels,
epsilon)``: the best example within one ball) or :class:`MinimizationAttack`
(implement ``_minimize(victim, x, labels, epsilons)``: the smallest perturbation
found, unbounded), listing every parameter (the shared ones included) in
``__init__`` and setting the class attributes ``norm`` and ``needs_gradient``.
The loop over radii, the batching and the output projection are written once
here: every output is projected onto the threat model's ball and checked
(:func:`check_adversarial`) before it is returned. An attack that is neither
kind implements :meth:`BaseAttack._run` for all radii at once.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .. import memory
from ..seeding import seed_from, torch_seed
from ..validation import check_images, check_int, check_random_state, check_unit_interval
from .victim import Victim

#: Norms of the threat models; ``None`` is an unbounded (model-free or minimization) attack.
NORMS = ("linf", "l2")

#: Relative tolerance on the norm ball of every returned example.
BALL_RTOL = 1e-6

#: Images per batch with ``batch_size=None`` when the memory of one image cannot be measured.
UNMEASURED_BATCH_SIZE = 256


def check_epsilons(epsilon, name="epsilon", *, allow_none=False):
    """Validate one epsilon or a sequence of them; return a list of floats (or None).

    Parameters
    ----------
    epsilon : float, None or sequence of them
        Radii of the threat model's ball (non-negative, finite).
    name : str
        Parameter name used in error messages.
    allow_none : bool
        Whether ``None`` (unbounded, for minimization attacks) is accepted.

    Returns
    -------
    list
    """
    values = list(epsilon) if isinstance(epsilon, (list, tuple, np.ndarray)) else [epsilon]
    if not values:
        raise ValueError(f"{name} must not be an empty list")
    out = []
    for value in values:
        if value is None:
            if not allow_none:
                raise ValueError(
                    f"{name} must be given (a non-negative float or a list of them) for a "
                    "fixed-epsilon attack, got None"
                )
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number or a list of them, got {value!r}")
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value}")
        out.append(value)
    return out


def _flat(a):
    return a.reshape(a.shape[0], -1)


def project_to_ball(x, x_adv, epsilon, norm):
    """Project float32 ``x_adv`` onto the ``norm`` ball around ``x`` and into [0, 1], exactly.

    The projection is computed in float64 and rounded towards ``x``, so that the
    float32 result satisfies the constraint when checked in float64 (a float32
    clip alone can overshoot by one rounding step, 6e-8 near 1, which is more
    than ``BALL_RTOL`` of a small epsilon).

    Parameters
    ----------
    x, x_adv : ndarray of float32, same shape (n, ...)
    epsilon : float or None
        None only clips to [0, 1].
    norm : {"linf", "l2"} or None

    Returns
    -------
    ndarray of float32
    """
    x_adv = np.clip(x_adv, np.float32(0), np.float32(1))
    if epsilon is None or norm is None:
        return x_adv
    x64 = x.astype(np.float64)
    if norm == "linf":
        lo = np.maximum(x64 - epsilon, 0.0)
        hi = np.minimum(x64 + epsilon, 1.0)
        lo32 = lo.astype(np.float32)
        lo32 = np.where(lo32 < lo, np.nextafter(lo32, np.float32(np.inf)), lo32)
        hi32 = hi.astype(np.float32)
        hi32 = np.where(hi32 > hi, np.nextafter(hi32, np.float32(-np.inf)), hi32)
        return np.clip(x_adv, lo32, hi32).astype(np.float32)
    for _ in range(8):
        delta = _flat(x_adv.astype(np.float64) - x64)
        norms = np.linalg.norm(delta, axis=1)
        over = norms > epsilon
        if not np.any(over):
            break
        factor = np.ones_like(norms)
        factor[over] = epsilon / norms[over] * (1 - 1e-7)
        scaled = x64 + (delta * factor[:, None]).reshape(x.shape)
        x_adv = np.clip(scaled, 0.0, 1.0).astype(np.float32)
    return x_adv


def check_adversarial(x, x_adv, epsilon, norm, rtol=BALL_RTOL):
    """Raise ``RuntimeError`` unless ``x_adv`` is finite, in [0, 1] and within the ball.

    Parameters
    ----------
    x, x_adv : ndarray, same shape (n, ...)
    epsilon : float or None
    norm : {"linf", "l2"} or None
    rtol : float
        Relative tolerance on the radius.
    """
    if not np.all(np.isfinite(x_adv)):
        raise RuntimeError("the attack returned non-finite values")
    if x_adv.min(initial=0.0) < 0 or x_adv.max(initial=0.0) > 1:
        raise RuntimeError("the attack returned values outside [0, 1]")
    if epsilon is None or norm is None or len(x) == 0:
        return
    delta = _flat(x_adv.astype(np.float64) - x.astype(np.float64))
    dist = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    worst = float(dist.max())
    if worst > epsilon * (1 + rtol):
        raise RuntimeError(
            f"the attack returned a perturbation of {norm} norm {worst:.8g} > epsilon={epsilon}"
        )


class BaseAttack(TransformerMixin, BaseEstimator):
    """Base class of robustlearn attacks: a scikit-learn transformer that perturbs images.

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
        Radius of the threat model's ball (images in [0, 1]). A list makes
        ``transform`` return one adversarial set per epsilon, stacked on a new
        first axis, from one run of the attack. None is required to be
        replaced before ``transform`` for fixed-epsilon attacks, and means
        "unbounded" for minimization attacks.
    estimator : fitted estimator, default=None
        White-box victim: the attack goes through
        ``estimator.attack_surfaces()[surface]``. ``fit`` only checks it.
    surrogate : estimator, default=None
        Transfer attack: ``fit(X, y)`` fits a clone of it and attacks that clone.
        Give ``estimator`` or ``surrogate``, not both.
    surface : str, default="default"
        Which attack surface of the victim to differentiate through
        (``"default"`` is the victim's whole prediction function, ``logits``).
    batch_size : int or None, default=256
        The most images attacked at once. Lowered to the largest batch whose
        estimated memory fits ``memory_budget`` (as prediction is); None
        means "as many as the budget allows" (the whole input when it fits).
        The estimate: the activations of every layer the surface runs for one
        zero image, times 3 (value, gradient, temporaries),
        :meth:`Victim.bytes_per_sample`; when it cannot be measured (a
        victim without torch network), ``batch_size``, or 256 for None.
    memory_budget : int or None, default=None
        Bytes a batch may use; None is :func:`robustlearn.memory.memory_budget`
        of the victim's device: half its free memory, or the budget of an
        enclosing ``with robustlearn.memory.budget(nbytes):`` block. Attacks
        that draw no random numbers return the same images whatever the
        batches; random ones (random starts, Square, FAB restarts) draw from
        one generator seeded by ``random_state`` in batch order, so their
        draws, not their distribution, depend on the batches: fix
        ``batch_size`` and ``memory_budget`` to reproduce them on any machine.
    random_state : int, RandomState or None, default=None
        Seeds the attack's randomness (random starts, noise, proposals).
    eot_samples : int, default=1
        Gradient and score attacks only: Expectation over Transformation
        (Athalye, Carlini & Wagner, ICML 2018). The attack differentiates the
        mean of this many draws of the victim's surface, so its gradient is
        the average of the draws' gradients; use it on defenses tagged
        ``stochastic`` (evaluation does so by itself).

    Attributes
    ----------
    victim_ : estimator
        The fitted estimator ``transform`` attacks.
    norm : {"linf", "l2"} or None
        The norm of the threat model (None for model-free corruptions).
    is_minimization : bool
        Whether the attack looks for the smallest adversarial perturbation
        (its results at several epsilons are clips of one run).
    needs_gradient : bool
        Whether the attack differentiates through the victim.

    Notes
    -----
    Labels attacked are, in order of precedence: ``y`` passed to
    ``transform``/``fit_transform``/``generate`` (so ``fit_transform(X, y)``, as
    a ``Pipeline`` calls it when fitting, attacks the true labels), otherwise
    the victim's own predictions on ``X`` (as at ``predict`` time in a
    ``Pipeline``, where no labels are available). ``y`` cannot travel through
    scikit-learn metadata routing, which reserves the name.

    ``transform`` keeps the input's shape and floating dtype; ``uint8`` input
    is read as ``X / 255`` and returned as float32.
    """

    norm = None
    is_minimization = False
    needs_gradient = True
    #: The attack averages per-sample loss gradients over ``eot_samples`` draws itself
    #: (rather than differentiating the victim's mean logits).
    _eot_in_loss = False

    def __init__(self, epsilon=None, *, estimator=None, surrogate=None, surface="default",
                 batch_size=256, memory_budget=None, random_state=None, eot_samples=None):
        self.epsilon = epsilon
        self.estimator = estimator
        self.surrogate = surrogate
        self.surface = surface
        self.batch_size = batch_size
        # an attack written before memory_budget existed does not list it: no attribute then
        # (scikit-learn sets only parameters in __init__), and it means None
        if "memory_budget" in self._get_param_names():
            self.memory_budget = memory_budget
        self.random_state = random_state
        if eot_samples is not None:  # only attacks that list it in their signature take it
            self.eot_samples = eot_samples

    # ------------------------------------------------------------------ hooks
    def _run(self, victim, x, labels, epsilons):  # pragma: no cover - abstract
        """Attack one batch: return a tensor of shape (len(epsilons), *x.shape).

        ``x`` is float32 on ``victim.device`` (shape (n, C, H, W)), ``labels``
        int64 class indices; outputs need not be projected exactly (the base
        class projects and checks them).
        """
        raise NotImplementedError

    def _validate_params(self):
        """Check the shared parameters; subclasses extend this for their own."""
        check_epsilons(self.epsilon, allow_none=True)
        if self.estimator is not None and self.surrogate is not None:
            raise ValueError("give either estimator (white-box) or surrogate (transfer), not both")
        if not isinstance(self.surface, str):
            raise TypeError(f"surface must be a str, got {self.surface!r}")
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size", low=1)
        memory.check_memory_budget(getattr(self, "memory_budget", None))
        check_random_state(self.random_state)
        if hasattr(self, "eot_samples"):
            check_int(self.eot_samples, "eot_samples", low=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        tags.target_tags.required = False
        return tags

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y=None):
        """Set the victim: check ``estimator``, or fit a clone of ``surrogate`` on ``X, y``.

        Parameters
        ----------
        X : array-like of images in [0, 1]
        y : array-like of shape (n,), optional
            Required with ``surrogate``.

        Returns
        -------
        self
        """
        self._validate_params()
        X_img = check_images(X)
        check_unit_interval(X_img)
        if self.surrogate is not None:
            if y is None:
                raise ValueError("a transfer attack (surrogate=...) needs y to fit its surrogate")
            self.victim_ = clone(self.surrogate).fit(X, y)
        elif self.estimator is not None:
            check_is_fitted(self.estimator)
            self.victim_ = self.estimator
        elif self.needs_victim():
            raise ValueError(
                f"{type(self).__name__} needs a victim: pass estimator= (a fitted model, "
                "white-box) or surrogate= (an unfitted model, fitted in fit: transfer)"
            )
        else:
            self.victim_ = None
        self.n_features_in_ = int(np.prod(X_img.shape[1:]))
        return self

    def needs_victim(self) -> bool:
        """Whether the attack queries a model (False only for model-free corruptions)."""
        return True

    def __sklearn_is_fitted__(self):
        return hasattr(self, "victim_")

    def _current_victim(self):
        """The fitted victim: ``victim_``, or a fitted ``estimator`` when ``fit`` was skipped."""
        if hasattr(self, "victim_"):
            return self.victim_
        if self.estimator is not None:
            check_is_fitted(self.estimator)
            return self.estimator
        if self.surrogate is None and not self.needs_victim():
            return None
        raise NotFittedError(
            f"This {type(self).__name__} instance is not fitted yet and has no fitted "
            "estimator; call fit first or pass estimator=<a fitted model>."
        )

    # -------------------------------------------------------------- attacking
    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then attack ``X`` with the true labels ``y`` when given."""
        return self.fit(X, y, **fit_params).transform(X, y)

    def transform(self, X, y=None):
        """Adversarial versions of ``X``.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)
            Images in [0, 1].
        y : array-like of shape (n,), optional
            True labels (classes of the victim); defaults to the victim's predictions.

        Returns
        -------
        ndarray
            Shape of ``X`` (or ``(len(epsilon), *X.shape)`` when ``epsilon`` is
            a list), dtype of ``X`` (float32 for ``uint8`` input).
        """
        self._validate_params()
        epsilons = check_epsilons(self.epsilon, allow_none=self.is_minimization)
        out = self.generate(X, y, epsilons=epsilons)
        if isinstance(self.epsilon, (list, tuple, np.ndarray)):
            return out
        return out[0]

    def generate(self, X, y=None, epsilons=None):
        """Run the attack once for several epsilons.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)
            Images in [0, 1].
        y : array-like of shape (n,), optional
            True labels; defaults to the victim's predictions.
        epsilons : float or sequence of float, optional
            Defaults to ``epsilon``. ``None`` entries (unbounded) are accepted
            by minimization attacks.

        Returns
        -------
        ndarray of shape (len(epsilons), *X.shape)
            Every slice is within its epsilon ball (relative tolerance 1e-6) and in [0, 1].
        """
        self._validate_params()
        epsilons = check_epsilons(
            self.epsilon if epsilons is None else epsilons, "epsilons",
            allow_none=self.is_minimization,
        )
        X_in = np.asarray(X) if not hasattr(X, "dtype") else X
        out_dtype = X_in.dtype if np.issubdtype(X_in.dtype, np.floating) else np.float32
        X_img = check_images(X)
        check_unit_interval(X_img)
        victim_est = self._current_victim()
        victim = None
        if victim_est is not None:
            eot = 1 if self._eot_in_loss else int(getattr(self, "eot_samples", 1))
            victim = Victim(victim_est, self.surface, eot_samples=eot)
            if self.needs_gradient and not victim.differentiable:
                raise TypeError(
                    f"{type(self).__name__} needs gradients, but {type(victim_est).__name__} "
                    "has no attack_surfaces(); use a decision-based or score-based attack"
                )
        x_all = _as_victim_shape(X_img, victim)
        n = len(x_all)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (n,):
                raise ValueError(f"y must have shape ({n},), got {y.shape}")
            if victim is not None:
                labels_all = victim.encode(y)
            else:
                labels_all = np.zeros(n, dtype=np.int64)
        else:
            labels_all = None
        adv = np.empty((len(epsilons),) + x_all.shape, dtype=np.float32)
        batch_size = self._batch_size(victim, n)
        seed = seed_from(self.random_state)
        device = victim.device if victim is not None else torch.device("cpu")
        frozen = victim.frozen() if victim is not None else _nullcontext()
        with torch_seed(seed), frozen:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                xb = torch.from_numpy(x_all[start:stop]).to(device)
                if labels_all is not None:
                    lb = torch.from_numpy(labels_all[start:stop]).to(device)
                elif victim is not None:
                    lb = victim.predict_indices(xb)
                else:
                    lb = torch.zeros(stop - start, dtype=torch.int64, device=device)
                result = self._run(victim, xb, lb, epsilons)
                adv[:, start:stop] = result.detach().to("cpu", torch.float32).numpy()
        for k, eps in enumerate(epsilons):
            adv[k] = project_to_ball(x_all, adv[k], eps, self.norm)
            check_adversarial(x_all, adv[k], eps, self.norm)
        shape = (len(epsilons),) + tuple(np.shape(X_in))
        return adv.reshape(shape).astype(out_dtype, copy=False)

    def _batch_size(self, victim, n):
        """Images attacked at once: ``batch_size`` lowered to fit the memory budget, or, for
        None, the most the budget allows (at most ``n``)."""
        limit = max(int(n), 1) if self.batch_size is None else int(self.batch_size)
        per_sample = victim.bytes_per_sample() if victim is not None else None
        if per_sample is None:
            return limit if self.batch_size is not None else min(limit, UNMEASURED_BATCH_SIZE)
        nbytes = getattr(self, "memory_budget", None)
        if nbytes is None:
            nbytes = memory.memory_budget(victim.device)
        return memory.batch_size_for_budget(per_sample, nbytes, maximum=limit)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _as_victim_shape(X_img, victim):
    """Reshape (n, C, H, W) images to the victim's input shape (so squares are squares)."""
    if victim is None or not victim.input_shape:
        return X_img
    shape = victim.input_shape
    if int(np.prod(shape)) != int(np.prod(X_img.shape[1:])):
        raise ValueError(
            f"X has {int(np.prod(X_img.shape[1:]))} features per sample, but the victim "
            f"expects images of shape {shape}"
        )
    return np.ascontiguousarray(X_img.reshape((len(X_img),) + shape))


class FixedEpsilonAttack(BaseAttack):
    """An attack that searches for an adversarial example inside a ball of given radius.

    As Foolbox's ``FixedEpsilonAttack``: subclasses implement
    ``_run_epsilon(victim, x, labels, epsilon)`` for one radius; the loop over
    radii is written here once. Radii run in increasing order and the balls
    are nested, so an input already fooled in a smaller ball keeps that
    example at every larger radius instead of being attacked again: results
    never get worse as epsilon grows, and the examples already broken cost
    nothing more. This reuse needs the surface's forward pass to be the
    victim's real, deterministic prediction (``exact`` or ``bpda`` surfaces of
    a defense not tagged ``stochastic``); otherwise (transfer or EOT surfaces,
    stochastic defenses, model-free attacks) every radius is attacked afresh.
    """

    def _run_epsilon(self, victim, x, labels, epsilon):  # pragma: no cover - abstract
        """Attack one batch at one radius: a tensor of the shape of ``x``."""
        raise NotImplementedError

    def _is_adversarial(self, victim, x_adv, labels):
        """Whether each example meets the attack's goal (default: misclassified)."""
        return victim.predict_indices(x_adv) != labels

    def _reuses_smaller_radii(self, victim) -> bool:
        from ..tags import get_defense_tags

        if victim is None or victim.kind not in ("exact", "bpda"):
            return False
        return not get_defense_tags(victim.estimator).stochastic

    def _run(self, victim, x, labels, epsilons):
        order = sorted(range(len(epsilons)), key=lambda i: epsilons[i])
        outputs = [None] * len(epsilons)
        if not self._reuses_smaller_radii(victim):
            for i in order:
                outputs[i] = self._run_epsilon(victim, x, labels, epsilons[i])
            return torch.stack(outputs)
        adv = x.detach().clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for i in order:
            todo = (~found).nonzero()[:, 0]
            if len(todo):
                candidate = self._run_epsilon(victim, x[todo], labels[todo], epsilons[i])
                adv[todo] = candidate.detach().to(adv.dtype)
                found[todo] = self._is_adversarial(victim, candidate, labels[todo])
            outputs[i] = adv.clone()
        return torch.stack(outputs)


class MinimizationAttack(BaseAttack):
    """An attack that searches for the smallest adversarial perturbation.

    As Foolbox's ``MinimizationAttack``: subclasses implement
    ``_minimize(victim, x, labels, epsilons)``, which runs once whatever the
    radii (``epsilons`` only informs it: an attack may stop early for an
    example already within the only radius asked for, or bound its random
    restarts by the largest). The result at each radius is that one run projected onto the ball
    (by :meth:`BaseAttack.generate`, written once for every attack): an
    example whose minimal perturbation is larger than epsilon is projected
    back and is then usually no longer adversarial. ``epsilon=None`` returns
    the unbounded perturbation.
    """

    is_minimization = True

    def _minimize(self, victim, x, labels, epsilons):  # pragma: no cover - abstract
        """The adversarial examples found for one batch, unbounded (shape of ``x``)."""
        raise NotImplementedError

    def _run(self, victim, x, labels, epsilons):
        raw = self._minimize(victim, x, labels, list(epsilons))
        return raw.unsqueeze(0).expand(len(epsilons), *raw.shape)
