"""The paper's hyperparameter rule as a grid-search recipe.

Attias, Pehlevan & Obeid (arXiv 2410.03952, Sec. 4) keep a regularised
configuration only if its clean accuracy ``R0`` is at least 0.9 times the
clean accuracy ``U0`` of the unregularised model, and among those prefer the
most robust one. With scikit-learn this is a :class:`~sklearn.model_selection.GridSearchCV`
whose grid includes ``alpha=0`` (the unregularised model, giving ``U0``),
scored on clean accuracy and on a robustness score, with :class:`R0U0Refit`
as ``refit``::

    search = GridSearchCV(
        PixelSimilarityClassifier(),
        {"alpha": [0, 4, 10], "threshold": [0.2, 0.8]},
        scoring=r0_u0_scoring(sigma=0.1),
        refit=R0U0Refit(ratio=0.9),
    )
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score

from robustlearn.validation import check_float, check_int


class GaussianNoiseScorer:
    """Accuracy on images with added Gaussian noise (pixels in [0, 1], clipped).

    The paper's first black-box attack; cheap enough to score every grid point.

    Parameters
    ----------
    sigma : float, default=0.1
        Per-pixel standard deviation.
    n_draws : int, default=1
        Noise draws averaged.
    random_state : int, default=0
        Seed of the noise (the same draws for every candidate).
    """

    def __init__(self, sigma=0.1, n_draws=1, random_state=0):
        self.sigma = check_float(sigma, "sigma", low=0)
        self.n_draws = check_int(n_draws, "n_draws", low=1)
        self.random_state = random_state

    def __call__(self, estimator, X, y):
        X = np.asarray(X, dtype=np.float32)
        if X.dtype == np.uint8:  # pragma: no cover - handled by the asarray above
            X = X / 255.0
        rng = np.random.default_rng(self.random_state)
        scores = []
        for _ in range(self.n_draws):
            noisy = np.clip(X + self.sigma * rng.standard_normal(X.shape, dtype=np.float32), 0, 1)
            scores.append(accuracy_score(y, estimator.predict(noisy)))
        return float(np.mean(scores))


def r0_u0_scoring(sigma=0.1, n_draws=1, random_state=0):
    """Multi-metric scoring for :class:`R0U0Refit`: clean ``accuracy`` and ``robustness``.

    Parameters
    ----------
    sigma, n_draws, random_state
        Of the :class:`GaussianNoiseScorer` used as the robustness score.

    Returns
    -------
    dict
        ``{"accuracy": "accuracy", "robustness": GaussianNoiseScorer(...)}``.
    """
    return {"accuracy": "accuracy",
            "robustness": GaussianNoiseScorer(sigma, n_draws, random_state)}


class R0U0Refit:
    """``refit`` callable: the most robust candidate whose ``R0 >= ratio * U0``.

    ``U0`` is the best mean clean accuracy among the candidates with
    ``alpha == 0`` (the unregularised models in the grid), ``R0`` a
    candidate's mean clean accuracy. Among candidates with ``alpha > 0``
    passing the rule, the one with the highest mean robustness score wins
    (ties: higher accuracy). When none passes, the best unregularised
    candidate is returned.

    Parameters
    ----------
    ratio : float, default=0.9
        The paper's acceptance ratio.
    accuracy : str, default="accuracy"
        Name of the clean-accuracy scorer in ``scoring``.
    robustness : str, default="robustness"
        Name of the robustness scorer in ``scoring``.
    param : str, default="alpha"
        The grid parameter whose value 0 marks the unregularised model
        (``"estimator__alpha"`` inside a pipeline).

    Raises
    ------
    ValueError
        At selection time, when the grid has no ``alpha == 0`` candidate.
    """

    def __init__(self, ratio=0.9, accuracy="accuracy", robustness="robustness", param="alpha"):
        self.ratio = check_float(ratio, "ratio", low=0, high=1)
        self.accuracy = accuracy
        self.robustness = robustness
        self.param = param

    def ratios(self, cv_results) -> np.ndarray:
        """``R0 / U0`` of every candidate."""
        acc = np.asarray(cv_results[f"mean_test_{self.accuracy}"], dtype=float)
        return acc / self._u0(cv_results, acc)

    def _u0(self, cv_results, acc):
        key = f"param_{self.param}"
        if key not in cv_results:
            raise ValueError(f"the grid must search {self.param!r} including 0 (no {key!r})")
        alphas = np.asarray([float(a) for a in cv_results[key]])
        base = alphas == 0
        if not base.any():
            raise ValueError(f"the grid must include {self.param}=0 to measure U0")
        return float(acc[base].max())

    def __call__(self, cv_results) -> int:
        acc = np.asarray(cv_results[f"mean_test_{self.accuracy}"], dtype=float)
        rob = np.asarray(cv_results[f"mean_test_{self.robustness}"], dtype=float)
        alphas = np.asarray([float(a) for a in cv_results[f"param_{self.param}"]])
        u0 = self._u0(cv_results, acc)
        ok = (alphas > 0) & (acc >= self.ratio * u0)
        if not ok.any():
            base = np.flatnonzero(alphas == 0)
            return int(base[np.argmax(acc[base])])
        idx = np.flatnonzero(ok)
        order = np.lexsort((-acc[idx], -rob[idx]))
        return int(idx[order[0]])
