"""Fixed-point solvers and their backward passes, shared by every iterative defense.

A defense whose prediction iterates a map to a fixed point ``z* = f(z*)`` (the
attractor's autoencoder dynamics, an equilibrium layer such as NEMON's
``z = ReLU(W z + U x + b)``) needs three things, and gets all of them here:

* a forward solver: :func:`solve_fixed_point` with plain iteration, averaged
  (Krasnoselskii-Mann) iteration or Anderson acceleration, stopping each
  sample on its own, and reporting how it went (:class:`FixedPointResult`);
* a backward pass: :func:`fixed_point` differentiates the solution either
  through every iteration (``"unrolled"``), by the implicit-function theorem
  (``"implicit"``: the adjoint fixed point ``g = v + J_f(z*)^T g`` solved with
  its own tolerance, memory independent of the number of iterations), by one
  application of ``f`` at the solution (``"one-step"``), or as if the solution
  were its starting point (``"identity"``);
* the straight-through estimator BPDA builds on (:func:`straight_through`).

References
----------
Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018
(BPDA). Bai, Kolter & Koltun, "Deep Equilibrium Models", NeurIPS 2019 (implicit backward).
Walker & Ni, "Anderson Acceleration for Fixed-Point Iterations", SIAM J. Numer. Anal. 2011.
Fung et al., "JFB: Jacobian-Free Backpropagation for Implicit Networks", AAAI 2022 (one-step).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

#: Forward solvers of :func:`solve_fixed_point`.
METHODS = ("plain", "averaged", "anderson")

#: Backward passes of :func:`fixed_point`.
BACKWARDS = ("implicit", "unrolled", "one-step", "identity")


class FixedPointWarning(UserWarning):
    """A fixed-point solve stopped at ``max_iter`` with samples above the tolerance."""


@dataclass
class FixedPointResult:
    """Outcome of a fixed-point solve for a batch.

    Attributes
    ----------
    z : torch.Tensor of shape (n, ...)
        Final iterates.
    iterations : torch.Tensor of int64, shape (n,)
        Applications of the map each sample took (at most ``max_iter``).
    residual : torch.Tensor of shape (n,)
        Relative change ``||z_K - z_{K-1}|| / ||z_{K-1}||`` of the last iteration.
    tol : float
        The tolerance the solve ran with.
    max_iter : int
        The iteration budget.
    """

    z: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor
    tol: float
    max_iter: int
    _adjoint: object = field(default=None, repr=False, compare=False)

    @property
    def backward_result(self) -> FixedPointResult | None:
        """The implicit backward's adjoint solve, once ``backward()`` has run through it.

        ``None`` for the other backwards, or before the gradient is computed.
        Its ``iterations`` and ``residual`` are those of the adjoint fixed point
        ``g = v + J_f(z*)^T g`` (solved with ``backward_tol``).
        """
        return None if self._adjoint is None else self._adjoint.last

    @property
    def x(self) -> torch.Tensor:
        """Alias of ``z`` (the state is the input for dynamics on images)."""
        return self.z

    @property
    def converged(self) -> torch.Tensor:
        """Boolean per sample: the last iteration moved it by less than the tolerance."""
        return self.residual < self.tol

    @property
    def hit_max_iter(self) -> torch.Tensor:
        """Boolean per sample: it used the whole budget without converging."""
        return (~self.converged) & (self.iterations >= self.max_iter)

    def report(self) -> dict:
        """A convergence summary: iterations, residuals and how many samples hit ``max_iter``."""
        its = self.iterations.detach().float().cpu()
        res = self.residual.detach().float().cpu()
        return {
            "n": int(its.numel()),
            "iterations_mean": float(its.mean()) if its.numel() else 0.0,
            "iterations_max": int(its.max()) if its.numel() else 0,
            "residual_max": float(res.max()) if res.numel() else 0.0,
            "converged_fraction": float(self.converged.float().mean()) if its.numel() else 1.0,
            "hit_max_iter": int(self.hit_max_iter.sum()),
            "tol": float(self.tol),
            "max_iter": int(self.max_iter),
        }


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``||new - old|| / ||old||`` per sample (rows flattened; the denominator floored at 1e-12)."""
    new, old = new.flatten(1), old.flatten(1)
    return (new - old).norm(dim=1) / old.norm(dim=1).clamp_min(1e-12)


def _check(method, max_iter, tol, alpha):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")


def solve_fixed_point(step, z0, *, method="plain", max_iter=50, tol=1e-3, alpha=0.5,
                      history=5, regularization=1e-4, warn=False) -> FixedPointResult:
    """Iterate ``z <- step(z)`` from ``z0`` until each sample settles.

    A sample stops once its relative change drops below ``tol``: later
    iterations leave it unchanged, so its trajectory does not depend on the
    rest of the batch. Gradients flow through every iteration taken when
    autograd is on (the ``"unrolled"`` backward); wrap the call in
    ``torch.no_grad()`` or use :func:`fixed_point` for the other backwards.

    Parameters
    ----------
    step : callable
        The map ``f``, batch to batch of the same shape.
    z0 : torch.Tensor of shape (n, ...)
        Initial states.
    method : {"plain", "averaged", "anderson"}, default="plain"
        ``plain``: ``z <- f(z)``; ``averaged``: ``z <- (1 - alpha) z + alpha f(z)``
        (Krasnoselskii-Mann, converges for non-expansive ``f``); ``anderson``:
        Anderson acceleration with ``history`` past iterates (Walker & Ni 2011).
    max_iter : int, default=50
    tol : float, default=1e-3
        Relative-change tolerance.
    alpha : float in (0, 1], default=0.5
        Averaging weight of ``averaged`` (unused by the other methods).
    history : int, default=5
        Anderson memory (at least 2 is used).
    regularization : float, default=1e-4
        Tikhonov term of Anderson's least-squares problem, relative to the
        mean squared residual.
    warn : bool, default=False
        Emit a :class:`FixedPointWarning` when samples end at ``max_iter`` unconverged.

    Returns
    -------
    FixedPointResult
    """
    _check(method, max_iter, tol, alpha)
    if method == "anderson":
        result = _anderson(step, z0, max_iter=max_iter, tol=tol, beta=1.0,
                           history=history, regularization=regularization)
    else:
        result = _iterate(step, z0, max_iter=max_iter, tol=tol,
                          alpha=1.0 if method == "plain" else alpha)
    if warn and bool(result.hit_max_iter.any()):
        warnings.warn(
            f"fixed-point solve hit max_iter={max_iter} for {int(result.hit_max_iter.sum())} "
            f"of {result.z.shape[0]} samples (largest residual "
            f"{float(result.residual.max()):.3g} > tol={tol}); raise max_iter or tol",
            FixedPointWarning, stacklevel=3,
        )
    return result


def _mask(active, z):
    return active.view(-1, *([1] * (z.dim() - 1)))


def _iterate(step, z, *, max_iter, tol, alpha):
    # The relative change of the averaged step is ``alpha ||f(z) - z|| / ||z||``, so the
    # difference serves both the update and the stopping test. While every sample is still
    # moving (most of a solve: a batch's samples settle within a few iterations of each other)
    # no sample needs freezing, and the per-sample masking below is skipped: the same
    # iterates, at half the elementwise operations per iteration, which is what a small map
    # (a 100x100 matrix product) costs on a CPU.
    n = z.shape[0]
    residual = torch.full((n,), float("inf"), device=z.device, dtype=z.dtype)
    active = None  # None: every sample still active, after `taken` iterations
    taken = 0
    iterations = None
    for _ in range(max_iter):
        f = step(z)
        diff = f - z
        new = f if alpha == 1.0 else torch.add(z, diff, alpha=alpha)
        change = torch.linalg.vector_norm(diff.detach().flatten(1), dim=1).mul_(alpha).div_(
            torch.linalg.vector_norm(z.detach().flatten(1), dim=1).clamp_min_(1e-12))
        if active is None:
            z, residual = new, change
            taken += 1
            moving = change >= tol
            if bool(moving.all()):
                continue
            iterations = torch.full((n,), taken, dtype=torch.int64, device=z.device)
            active = moving
        else:
            z = torch.where(_mask(active, z), new, z)
            residual = torch.where(active, change, residual)
            iterations += active
            active = active & (change >= tol)
        if not bool(active.any()):
            break
    if iterations is None:
        iterations = torch.full((n,), taken, dtype=torch.int64, device=z.device)
    return FixedPointResult(z, iterations, residual, tol=tol, max_iter=max_iter)


def _anderson(step, z0, *, max_iter, tol, beta, history, regularization):
    shape = z0.shape
    n = shape[0]
    flat = z0.reshape(n, -1)
    d = flat.shape[1]
    m = max(int(history), 2)
    X = flat.new_zeros(n, m, d)  # past iterates
    F = flat.new_zeros(n, m, d)  # their images f(x)
    X[:, 0] = flat
    F[:, 0] = step(z0).reshape(n, -1)
    iterations = torch.ones(n, dtype=torch.int64, device=flat.device)
    residual = relative_change(F[:, 0].detach(), flat.detach())
    active = residual >= tol
    z = torch.where(active[:, None], F[:, 0], flat)
    if max_iter > 1 and bool(active.any()):
        X[:, 1] = z
        F[:, 1 % m] = step(z.reshape(shape)).reshape(n, -1)
        iterations = iterations + active.long()
        change = relative_change(F[:, 1 % m].detach(), z.detach())
        residual = torch.where(active, change, residual)
        active = active & (change >= tol)
    for k in range(2, max_iter):
        if not bool(active.any()):
            break
        size = min(k, m)
        G = (F[:, :size] - X[:, :size]).detach()
        # min ||sum_i a_i g_i|| s.t. sum a_i = 1, solved as a bordered linear system
        H = torch.zeros(n, size + 1, size + 1, dtype=flat.dtype, device=flat.device)
        H[:, 0, 1:] = 1
        H[:, 1:, 0] = 1
        gram = G @ G.transpose(1, 2)
        # the ridge is relative to the residuals' scale, so it neither vanishes nor dominates
        scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-30)
        H[:, 1:, 1:] = gram + regularization * scale[:, None, None] * torch.eye(
            size, dtype=flat.dtype, device=flat.device)
        rhs = torch.zeros(n, size + 1, 1, dtype=flat.dtype, device=flat.device)
        rhs[:, 0] = 1
        coef = torch.linalg.solve(H, rhs)[:, 1:, 0]
        new = (beta * (coef[:, None] @ F[:, :size])[:, 0]
               + (1 - beta) * (coef[:, None] @ X[:, :size])[:, 0])
        new = torch.where(active[:, None], new, z)
        slot = k % m
        X = X.clone()
        F = F.clone()
        X[:, slot] = new
        F[:, slot] = step(new.reshape(shape)).reshape(n, -1)
        change = relative_change(F[:, slot].detach(), new.detach())
        z = new
        residual = torch.where(active, change, residual)
        iterations = iterations + active.long()
        active = active & (change >= tol)
    return FixedPointResult(z.reshape(shape), iterations, residual, tol=tol, max_iter=max_iter)


def straight_through(forward_value: torch.Tensor, backward_path: torch.Tensor) -> torch.Tensor:
    """Value of ``forward_value`` with the gradient of ``backward_path`` (BPDA).

    Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner,
    ICML 2018): the forward pass runs the real (iterated, quantised, ...) map,
    the backward pass differentiates a surrogate, e.g. the identity or a
    single pass.
    """
    return backward_path + (forward_value - backward_path).detach()


class _ImplicitBackward:
    """Backward hook solving ``g = v + J_f(z*)^T g`` by fixed-point iteration."""

    def __init__(self, step, z_star, *, tol, max_iter, alpha, vjp=None):
        self.step = step
        self.z_star = z_star.detach()
        self.tol = tol
        self.max_iter = max_iter
        self.alpha = alpha
        self.vjp = vjp
        self.last = None

    def __call__(self, v):
        if self.vjp is not None:
            with torch.no_grad():
                jt = self.vjp(self.z_star)

            def adjoint_step(g):
                with torch.no_grad():
                    return v + jt(g)
        else:
            with torch.enable_grad():
                z_star = self.z_star.clone().requires_grad_(True)
                f_star = self.step(z_star)

            def adjoint_step(g):
                (jtg,) = torch.autograd.grad(f_star, z_star, g, retain_graph=True)
                return v + jtg

        result = _iterate(adjoint_step, v.detach(), max_iter=self.max_iter, tol=self.tol,
                          alpha=self.alpha)
        self.last = result
        return result.z.detach()


def fixed_point(step, z0, *, backward="implicit", method="plain", max_iter=50, tol=1e-3,
                alpha=0.5, backward_tol=None, backward_max_iter=None, history=5, warn=True,
                vjp=None):
    """Solve ``z* = step(z*)`` and return it with the chosen gradient.

    Parameters
    ----------
    step : callable
        The map; it may close over the input ``x`` and the defense's
        parameters, which then receive gradients (except with ``"identity"``,
        where the gradient reaches ``z0`` only).
    z0 : torch.Tensor
        Initial state (for dynamics on images, the input itself).
    backward : {"implicit", "unrolled", "one-step", "identity"}, default="implicit"
        ``implicit``: the exact gradient at a converged fixed point, from the
        adjoint fixed point ``g = v + J_f(z*)^T g`` (solved by averaged
        iteration with ``backward_tol``); memory does not grow with
        ``max_iter``. ``unrolled``: autograd through every forward iteration.
        ``one-step``: the gradient of one application ``f(z*)`` with ``z*``
        held constant (Jacobian-free backprop; a BPDA surrogate).
        ``identity``: ``dz*/dz0 = I`` (BPDA through the whole loop).
    method, max_iter, tol, alpha, history
        Forward solver, see :func:`solve_fixed_point`. ``alpha`` also damps
        the implicit backward's iteration when ``method="averaged"``.
    backward_tol : float, optional
        Tolerance of the implicit backward solve (defaults to ``tol``).
    backward_max_iter : int, optional
        Iteration budget of the implicit backward solve (defaults to ``max_iter``).
    warn : bool, default=True
        Warn when the forward solve hits ``max_iter``.
    vjp : callable, optional
        ``vjp(z_star)`` returning a function ``g -> J_f(z_star)^T g``, for maps
        whose Jacobian has a known form (``ReLU(W z + u)``: ``W^T (1[W z + u > 0] g)``);
        the implicit backward then iterates it instead of calling autograd at
        every adjoint iteration. It must equal autograd's vector-Jacobian product.

    Returns
    -------
    z : torch.Tensor
        The fixed point, differentiable as chosen.
    result : FixedPointResult
        The forward solve's convergence record.
    """
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    if backward == "unrolled":
        result = solve_fixed_point(step, z0, method=method, max_iter=max_iter, tol=tol,
                                   alpha=alpha, history=history, warn=warn)
        return result.z, result
    with torch.no_grad():
        result = solve_fixed_point(step, z0.detach(), method=method, max_iter=max_iter, tol=tol,
                                   alpha=alpha, history=history, warn=warn)
    z_star = result.z.detach()
    if backward == "identity":
        return straight_through(z_star, z0), result
    if backward == "one-step" or not torch.is_grad_enabled():
        return straight_through(z_star, step(z_star)), result
    # implicit: z = f(z*) carries the graph to x and the parameters; the hook replaces the
    # incoming gradient v by the adjoint solution g, so autograd then returns g^T df/d(x, theta)
    z = step(z_star)
    if z.requires_grad:
        hook = _ImplicitBackward(
            step, z_star,
            tol=tol if backward_tol is None else backward_tol,
            max_iter=max_iter if backward_max_iter is None else backward_max_iter,
            alpha=alpha if method == "averaged" else 1.0,
            vjp=vjp,
        )
        z.register_hook(hook)
        result._adjoint = hook
    return straight_through(z_star, z), result
