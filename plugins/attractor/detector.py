"""The out-of-distribution test: Pearson correlation between an input and its attractor.

An in-distribution input converges to an attractor that resembles it, an
out-of-distribution one does not (Alipour & SeyyedSalehi, arXiv 2406.10579):
the suspicion score is ``1 - r(x_0, x_K)``, with r the Pearson correlation of
the flattened input and final reconstruction.
"""

from __future__ import annotations

import torch


def pearson_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between matching rows of two (n, d) tensors, shape (n,).

    A constant row has zero variance; its correlation is taken as 0 (the
    denominator is floored at 1e-12), which the detector reads as "unlike".
    """
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return (a * b).sum(dim=1) / denominator


def correlation_score(inputs: torch.Tensor, attractors: torch.Tensor) -> torch.Tensor:
    """Suspicion ``1 - r`` in [0, 2] per row (higher = more likely out of distribution)."""
    return 1.0 - pearson_correlation(inputs, attractors)
