"""Detectors: the default maximum-softmax-probability score and threshold calibration."""

from __future__ import annotations

import numpy as np
import torch


def max_softmax_score(logits: torch.Tensor) -> torch.Tensor:
    """Suspicion score ``1 - max softmax probability`` (Hendrycks & Gimpel, ICLR 2017).

    Hendrycks, D. and Gimpel, K. "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples in Neural Networks", ICLR 2017.
    """
    return 1.0 - torch.softmax(logits, dim=1).max(dim=1).values


def calibrate_threshold(scores, tpr: float) -> float:
    """Threshold such that a fraction ``tpr`` of in-distribution ``scores`` are not flagged.

    A sample is flagged when its score is strictly above the threshold, so the
    threshold is the ``tpr`` quantile of the calibration scores (higher =
    more suspicious).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("cannot calibrate a detector threshold on zero samples")
    return float(np.quantile(scores, tpr, method="higher"))
