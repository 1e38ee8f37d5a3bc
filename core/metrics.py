"""Scorers that attack the estimator being scored: for ``scoring=`` in model selection.

:func:`robust_accuracy_scorer` and :func:`detection_auroc_scorer` return
picklable callables ``scorer(estimator, X, y) -> float`` that scikit-learn's
``GridSearchCV``, ``cross_validate`` and multi-metric scoring accept
(``scoring={"clean": "accuracy", "robust": robust_accuracy_scorer("linf-pgd", 0.1)}``,
``refit="robust"``). Each call attacks the fitted estimator it is given
white-box, through its ``attack_surfaces()``, so every candidate of a search
is scored against attacks on itself, not on another model.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from .attacks.base import BaseAttack, check_epsilons
from .validation import check_bool


def _attack_for(attack, estimator, epsilon, params):
    """A fresh attack transformer targeting ``estimator`` white-box."""
    if isinstance(attack, str):
        from .attacks import make_attack

        return make_attack(attack, epsilon=epsilon, estimator=estimator, **params)
    if isinstance(attack, BaseAttack):
        return clone(attack).set_params(epsilon=epsilon, estimator=estimator, surrogate=None,
                                        **params)
    raise TypeError(
        f"attack must be a registered attack name or a BaseAttack, got {type(attack).__name__}"
    )


def _check_scorer_args(attack, epsilon):
    if not isinstance(attack, (str, BaseAttack)):
        raise TypeError(
            f"attack must be a registered attack name or a BaseAttack, got {type(attack).__name__}"
        )
    if isinstance(attack, str):
        from .registry import get_registry

        get_registry().get("attack", attack)  # unknown names fail here, with a suggestion
    values = check_epsilons(epsilon, allow_none=True)
    if len(values) != 1:
        raise ValueError(f"a scorer takes one epsilon, got {epsilon!r}")


class _AttackScorer:
    def __init__(self, attack, epsilon, params):
        _check_scorer_args(attack, epsilon)
        self.attack = attack
        self.epsilon = epsilon
        self.params = dict(params)

    def _adversarial(self, estimator, X, y):
        attack = _attack_for(self.attack, estimator, self.epsilon, self.params)
        return attack.fit(X, y).transform(X, y)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.attack!r}, epsilon={self.epsilon!r}{extra})"


class RobustAccuracyScorer(_AttackScorer):
    """Accuracy on adversarial versions of ``X``; see :func:`robust_accuracy_scorer`."""

    def __call__(self, estimator, X, y, sample_weight=None):
        X_adv = self._adversarial(estimator, X, y)
        correct = np.asarray(estimator.predict(X_adv)) == np.asarray(y)
        return float(np.average(correct, weights=sample_weight))


class DetectionAurocScorer(_AttackScorer):
    """AUROC of clean against attacked ``detect_score``; see :func:`detection_auroc_scorer`."""

    def __init__(self, attack, epsilon, params, successful_only=False):
        super().__init__(attack, epsilon, params)
        self.successful_only = successful_only

    def __call__(self, estimator, X, y):
        if not hasattr(estimator, "detect_score"):
            raise TypeError(f"{type(estimator).__name__} has no detect_score; it has no detector")
        X_adv = self._adversarial(estimator, X, y)
        if self.successful_only:
            fooled = np.asarray(estimator.predict(X_adv)) != np.asarray(y)
            if not np.any(fooled):
                return float("nan")
            X_adv = X_adv[fooled]
        clean = np.asarray(estimator.detect_score(X), dtype=np.float64)
        attacked = np.asarray(estimator.detect_score(X_adv), dtype=np.float64)
        truth = np.r_[np.zeros(len(clean)), np.ones(len(attacked))]
        return float(roc_auc_score(truth, np.r_[clean, attacked]))


def robust_accuracy_scorer(attack, epsilon, **params):
    """A scorer: accuracy of the scored estimator under a white-box attack on itself.

    Parameters
    ----------
    attack : str or BaseAttack
        A registered attack name (``"linf-pgd"``) or an attack transformer
        (cloned for each call; its victim is replaced by the scored estimator).
    epsilon : float
        The threat model's radius (images in [0, 1]).
    **params
        Attack parameters (``steps=20``, ``random_state=0``, ...).

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float`` in [0, 1], higher is more robust.
        Labels attacked are the true ``y``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> import robustlearn
    >>> from robustlearn.metrics import robust_accuracy_scorer
    >>> search = GridSearchCV(
    ...     robustlearn.make_defense("mlp", max_epochs=5),
    ...     {"hidden_layer_sizes": [(64,), (128,)]},
    ...     scoring={"clean": "accuracy", "robust": robust_accuracy_scorer("fgsm", 0.1)},
    ...     refit="robust",
    ... )
    """
    return RobustAccuracyScorer(attack, epsilon, params)


def detection_auroc_scorer(attack, epsilon, successful_only=False, **params):
    """A scorer: how well the estimator's detector separates clean from attacked inputs.

    The scored estimator is attacked white-box (the attack targets its
    classifier, not its detector); the score is the area under the ROC curve
    of ``estimator.detect_score`` with attacked inputs as positives and the
    clean ``X`` as negatives (0.5 is chance, 1 a perfect detector).

    Parameters
    ----------
    attack : str or BaseAttack
    epsilon : float
    successful_only : bool, default=False
        Count only the adversarial examples that fool the classifier as
        positives (the score is NaN when none does).
    **params
        Attack parameters.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float`` in [0, 1].
    """
    check_bool(successful_only, "successful_only")
    return DetectionAurocScorer(attack, epsilon, params, successful_only=successful_only)


def robust_accuracy(estimator, X, y, attack, epsilon, **params):
    """Accuracy of a fitted ``estimator`` on ``X`` attacked white-box (the scorer, once)."""
    return robust_accuracy_scorer(attack, epsilon, **params)(estimator, X, y)


__all__ = [
    "DetectionAurocScorer",
    "RobustAccuracyScorer",
    "detection_auroc_scorer",
    "robust_accuracy",
    "robust_accuracy_scorer",
]
