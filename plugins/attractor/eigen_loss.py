"""L_eigen: penalties on the Jacobian spectrum that make training points attractors.

A training point x is an attracting fixed point of f = D o E when every
eigenvalue of J_f(x) has modulus below one (Alipour & SeyyedSalehi, arXiv
2406.10579, Theorem 1; the loss comes from Nouri & SeyyedSalehi, "Eigen value
based loss function for training attractors in iterated autoencoders", Neural
Networks 2023). The exact formula is not published; we use the hinge

    L_eigen = mean_i sum_k ReLU(|lambda_k(J_f(x_i))| - rho)^2

with a margin ``rho`` below one, and three ways of estimating the spectrum:

``exact``
    the eigenvalues themselves. J_f(x) = J_D(E(x)) J_E(x) has rank at most the
    code width c, and the nonzero eigenvalues of AB equal those of BA, so we
    decompose the c x c latent Jacobian J_E(x) J_D(E(x)) instead of the
    d x d input-space one (built by forward-mode differentiation, c JVPs).
``power``
    Jacobian-free: the spectral norm sigma_max(J_f(x)) by power iteration on
    J^T J with one JVP and one VJP per step. The spectral radius never exceeds
    it, so pushing it below ``rho`` is a stronger (sufficient) condition.
``stochastic``
    a contractive-autoencoder-style proxy (Rifai et al., ICML 2011): the root
    mean square of the c largest singular values, estimated by
    (d / c) E_v ||J v||^2 / ||v||^2 with Gaussian probes v. A variant, not the
    paper's loss.
"""

from __future__ import annotations

import torch
from torch.func import jacfwd, vmap

EIGEN_METHODS = ("exact", "power", "stochastic")


def latent_jacobian(network, x: torch.Tensor) -> torch.Tensor:
    """The c x c matrices J_E(x) J_D(E(x)) for flat inputs ``x`` of shape (n, d).

    The encoder evaluated at ``x + D(u) - D(E(x))`` has Jacobian
    J_E(x) J_D(E(x)) in ``u`` at ``u = E(x)``, so one forward-mode Jacobian
    (c JVPs, vectorised) builds the product without forming any d x d matrix.
    The result is differentiable with respect to the network's parameters.

    Returns
    -------
    torch.Tensor of shape (n, c, c)
    """
    code = network.encode(x)
    reconstruction = network.decode(code)

    def one(xi, zi, ri):
        return jacfwd(lambda u: network.encode(xi + network.decode(u) - ri))(zi)

    return vmap(one)(x, code, reconstruction)


def eigenvalues(matrices: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues of square matrices, differentiable with respect to them.

    The decomposition M = V diag(lambda) V^{-1} runs without autograd; the
    returned values are recomputed as lambda_k = (V^{-1} M V)_kk with V held
    constant, which equals lambda_k and has the first-order derivative of a
    simple eigenvalue, d lambda_k = u_k^H dM v_k / (u_k^H v_k) (Magnus, "On
    differentiating eigenvalues and eigenvectors", Econometric Theory 1985).
    This avoids the backward of ``torch.linalg.eigvals``, which is slower and
    fails on batched CPU input in some torch versions. Like any eigenvalue
    derivative it is ill-conditioned near repeated eigenvalues.

    Parameters
    ----------
    matrices : torch.Tensor of shape (..., c, c), real

    Returns
    -------
    torch.Tensor of shape (..., c), complex
    """
    with torch.no_grad():
        _, vectors = torch.linalg.eig(matrices.detach())
        inverse = torch.linalg.inv(vectors)
    left = inverse @ matrices.to(vectors.dtype)
    return (left * vectors.transpose(-1, -2)).sum(-1)


def spectral_radius(network, x: torch.Tensor) -> torch.Tensor:
    """Exact spectral radius of J_f at each flat input (no gradients), shape (n,)."""
    with torch.no_grad():
        matrices = latent_jacobian(network, x)
        return torch.linalg.eigvals(matrices).abs().amax(dim=-1)


def _jacobian_vector(output, inputs, vector, create_graph=False):
    """J v for ``output = g(inputs)`` by the double-backward trick (two VJPs).

    J^T u is linear in a dummy cotangent u, so differentiating <J^T u, v> in u
    gives J v; this reuses the recorded graph, which is cheaper on CPU than
    re-tracing the map for forward-mode differentiation at every step.
    """
    dummy = torch.zeros_like(output, requires_grad=True)
    (transposed,) = torch.autograd.grad(output, inputs, dummy, create_graph=True)
    (product,) = torch.autograd.grad(transposed, dummy, vector, create_graph=create_graph,
                                     retain_graph=True)
    return product


def spectral_norm(step, x: torch.Tensor, n_iterations: int = 10) -> torch.Tensor:
    """sigma_max of J_step(x) per sample by power iteration on J^T J, Jacobian-free.

    One pass of ``step`` is recorded; each power step is one JVP and one VJP on
    that graph with the iterate held constant, from a random unit vector. The
    final estimate ``||J v||`` is differentiable with respect to the
    parameters. ``step`` must act on each row independently.

    Parameters
    ----------
    step : callable
        Flat (n, d) -> (n, d) map.
    x : torch.Tensor of shape (n, d)
    n_iterations : int
        Power-iteration steps (JVP + VJP each).

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        output = step(inputs)
        v = torch.randn_like(inputs)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        for _ in range(n_iterations):
            jv = _jacobian_vector(output, inputs, v).detach()
            (w,) = torch.autograd.grad(output, inputs, jv, retain_graph=True)
            v = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).detach()
        jv = _jacobian_vector(output, inputs, v, create_graph=True)
    return jv.norm(dim=1)


def rms_singular_value(step, x: torch.Tensor, rank: int, n_probes: int = 4) -> torch.Tensor:
    """Stochastic estimate of sqrt(||J||_F^2 / rank) per sample.

    For probes v with an isotropic distribution, E[||J v||^2 / ||v||^2] =
    ||J||_F^2 / d; rescaling by d / rank gives the mean squared singular value
    over the (at most ``rank``) nonzero ones. Differentiable.

    Parameters
    ----------
    step : callable
        Flat (n, d) -> (n, d) map acting on each row independently.
    x : torch.Tensor of shape (n, d)
    rank : int
        Upper bound on the Jacobian's rank (the code width).
    n_probes : int
        Gaussian probes per sample.

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    n, d = x.shape
    inputs = x.detach().repeat_interleave(n_probes, dim=0).requires_grad_(True)
    with torch.enable_grad():
        output = step(inputs)
        v = torch.randn_like(inputs)
        jv = _jacobian_vector(output, inputs, v, create_graph=True)
    ratio = jv.pow(2).sum(1) / v.pow(2).sum(1)
    mean_square = ratio.view(n, n_probes).mean(1) * (d / rank)
    return mean_square.clamp_min(0).sqrt()


def hinge_penalty(magnitudes: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean_i sum_k ReLU(m_ik - margin)^2`` for magnitudes of shape (n,) or (n, k)."""
    excess = torch.relu(magnitudes - margin).pow(2)
    if excess.dim() > 1:
        excess = excess.sum(dim=-1)
    return excess.mean()


def eigen_loss(network, x: torch.Tensor, *, method: str = "exact", margin: float = 0.9,
               power_iterations: int = 10, n_probes: int = 4) -> torch.Tensor:
    """L_eigen on flat inputs ``x`` with the chosen spectrum estimate (see the module doc).

    Parameters
    ----------
    network : AttractorNetwork
    x : torch.Tensor of shape (n, d)
        Training points (usually a sub-batch).
    method : {"exact", "power", "stochastic"}
    margin : float
        rho: magnitudes above it are penalised.
    power_iterations : int
        For ``method="power"``.
    n_probes : int
        For ``method="stochastic"``.

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to the network's parameters.
    """
    if method == "exact":
        magnitudes = eigenvalues(latent_jacobian(network, x)).abs()
    elif method == "power":
        magnitudes = spectral_norm(network.step, x, power_iterations)
    elif method == "stochastic":
        magnitudes = rms_singular_value(network.step, x, network.code_width, n_probes)
    else:
        raise ValueError(f"method must be one of {EIGEN_METHODS}, got {method!r}")
    return hinge_penalty(magnitudes, margin)
