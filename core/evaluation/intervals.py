"""Wilson score confidence intervals for accuracies measured on a finite sample."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def wilson_interval(n_correct, n_total, confidence: float = 0.95):
    """Wilson score interval of a binomial proportion.

    With ``p = k / n`` and ``z`` the standard normal quantile of
    ``1 - (1 - confidence) / 2``, the interval is

    .. math::

        \\frac{p + z^2 / 2n}{1 + z^2 / n} \\pm
        \\frac{z}{1 + z^2 / n} \\sqrt{\\frac{p (1 - p)}{n} + \\frac{z^2}{4 n^2}}

    (Wilson, "Probable inference, the law of succession, and statistical
    inference", JASA 22, 1927). Unlike the normal-approximation interval it
    stays inside [0, 1] and keeps its coverage near 0 and 1, where robust
    accuracies often sit (Brown, Cai, DasGupta, "Interval Estimation for a
    Binomial Proportion", Statistical Science 16, 2001).

    Parameters
    ----------
    n_correct : int or array-like of int
        Successes ``k``.
    n_total : int or array-like of int
        Trials ``n`` (broadcast against ``n_correct``); ``n = 0`` gives [0, 1].
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    low, high : float or ndarray
        Bounds of the interval, the shape of the broadcast inputs.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    k = np.asarray(n_correct, dtype=np.float64)
    n = np.asarray(n_total, dtype=np.float64)
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("n_correct must lie in [0, n_total] and n_total must be >= 0")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        # at k = 0 and k = n the bounds are exactly 0 and 1; rounding would leave 1e-17
        low = np.where((n > 0) & (k > 0), np.clip(centre - half, 0.0, 1.0), 0.0)
        high = np.where((n > 0) & (k < n), np.clip(centre + half, 0.0, 1.0), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
