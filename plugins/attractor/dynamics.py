"""Attractor dynamics: iterating x_{k+1} = f(x_k) to a fixed point.

A fixed point x* = f(x*) is an attractor when every eigenvalue of the Jacobian
J_f(x*) has modulus below one (linearisation of a discrete map; Theorem 1 of
Alipour & SeyyedSalehi, arXiv 2406.10579). Inference feeds the autoencoder's
output back to its input until the relative change falls below a tolerance:
plain iteration of :func:`robustlearn.fixed_point.solve_fixed_point`, whose
state is the image itself.
"""

from __future__ import annotations

from robustlearn.fixed_point import (
    FixedPointResult,
    relative_change,
    solve_fixed_point,
    straight_through,
)

__all__ = ["FixedPointResult", "iterate_to_fixed_point", "relative_change", "straight_through"]


def iterate_to_fixed_point(step, x, *, max_iter: int, tol: float) -> FixedPointResult:
    """Plain iteration ``x_k = step(x_{k-1})`` from the input, each sample stopping on its own.

    Gradients flow through every pass taken when autograd is on (the unrolled
    gradient, the attractor's ``"default"`` surface).
    """
    return solve_fixed_point(step, x, method="plain", max_iter=int(max_iter), tol=float(tol))
