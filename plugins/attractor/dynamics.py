"""Attractor dynamics: iterating x_{k+1} = f(x_k) to a fixed point.

A fixed point x* = f(x*) is an attractor when every eigenvalue of the Jacobian
J_f(x*) has modulus below one (linearisation of a discrete map; Theorem 1 of
Alipour & SeyyedSalehi, arXiv 2406.10579). Inference feeds the autoencoder's
output back to its input until the relative change falls below a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FixedPointResult:
    """Outcome of :func:`iterate_to_fixed_point` for a batch.

    Attributes
    ----------
    x : torch.Tensor of shape (n, d)
        Final iterates (differentiable when the call was).
    iterations : torch.Tensor of int64, shape (n,)
        Passes of f each sample took (at most ``max_iter``).
    residual : torch.Tensor of shape (n,)
        Relative change ``||x_K - x_{K-1}|| / ||x_{K-1}||`` of the last pass.
    tol : float
        The tolerance the iteration ran with.
    """

    x: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor
    tol: float

    @property
    def converged(self) -> torch.Tensor:
        """Boolean per sample: the last pass moved it by less than the tolerance."""
        return self.residual < self.tol


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``||new - old|| / ||old||`` per row (the denominator floored at 1e-12)."""
    return (new - old).norm(dim=1) / old.norm(dim=1).clamp_min(1e-12)


def iterate_to_fixed_point(step, x, *, max_iter: int, tol: float) -> FixedPointResult:
    """Run ``x_k = step(x_{k-1})`` from ``x_0 = x`` until it settles.

    A sample stops once its relative change drops below ``tol`` (later passes
    leave it unchanged), so its trajectory does not depend on the rest of the
    batch; the loop ends when every sample has stopped or after ``max_iter``
    passes. Gradients flow through every pass that was taken when autograd is on.

    Parameters
    ----------
    step : callable
        One pass of the dynamics on flat inputs (n, d) -> (n, d).
    x : torch.Tensor of shape (n, d)
        Initial states (the inputs).
    max_iter : int
        At least 1: the final iterate is always a reconstruction.
    tol : float
        Relative-change tolerance.

    Returns
    -------
    FixedPointResult
    """
    n = x.shape[0]
    iterations = torch.zeros(n, dtype=torch.int64, device=x.device)
    residual = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    for _ in range(max_iter):
        new = step(x)
        change = relative_change(new.detach(), x.detach())
        x = torch.where(active[:, None], new, x)
        residual = torch.where(active, change, residual)
        iterations = iterations + active.long()
        active = active & (change >= tol)
        if not bool(active.any()):
            break
    return FixedPointResult(x, iterations, residual, tol=tol)


def straight_through(forward_value: torch.Tensor, backward_path: torch.Tensor) -> torch.Tensor:
    """Value of ``forward_value`` with the gradient of ``backward_path`` (BPDA).

    Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner,
    "Obfuscated Gradients Give a False Sense of Security", ICML 2018): the
    forward pass runs the real (here: iterated) map, the backward pass
    differentiates a surrogate, e.g. the identity or a single pass.
    """
    return backward_path + (forward_value - backward_path).detach()
