"""NEMON equilibrium networks: ``z* = ReLU(W z* + U x + b)``, logits ``W_out z* + b_out``.

Jafarpour, Davydov, Proskurnikov & Bullo, "Robust Implicit Networks via
Non-Euclidean Contractions", NeurIPS 2021 (arXiv 2106.03194).

Well-posedness by construction
------------------------------
The l-infinity log-norm (matrix measure) of a matrix is
``mu_inf(M) = max_i (M_ii + sum_{j != i} |M_ij|)``. With a slope-restricted
activation in [0, 1] (ReLU) and ``mu_inf(W) < 1`` the equilibrium exists, is
unique and is Lipschitz in ``x`` (the paper's Theorem on l-infinity
contractions). Both networks build ``W`` from free parameters so that the
log-norm weighted by ``D = diag(exp(d))`` stays below the margin ``mu``:

* dense: ``W = mu I + D^-1 A D - diag(|A| 1)``, so ``D W D^-1 = mu I + A -
  diag(|A| 1)`` has row measures ``mu + a_ii - |a_ii| <= mu`` (the authors'
  parametrisation, ``NEmon.py``);
* convolutional: ``W z = mu z + (D^-1 A D) (*) z - diag(S) z`` with a circular
  convolution ``(*)`` and ``S_o`` the *true* absolute row sum of channel
  ``o``'s rows of the assembled operator, ``sum_{c, k} |A[o, c, k]|``. (The
  authors shift by ``C_out max|A|``, which does not bound the log-norm of the
  assembled operator; the method card flags it.)

Lipschitz bound
---------------
In the coordinates ``w = D z`` the equilibrium is ``w = ReLU(W~ w + D U x +
D b)`` with ``W~ = D W D^-1``. At the sample ``i`` where ``|dw_i|`` is largest,
``dw_i = l_i (W~_ii dw_i + sum_j W~_ij dw_j + (D U dx)_i)`` with ``l_i`` in [0, 1]
gives ``(1 - mu_i) ||dw||_inf <= ||(D U)_i||_1 ||dx||_inf`` (``mu_i`` the row
measure), hence

    ||z*(x) - z*(x')||_{inf, D} <= max_i ||(D U)_i||_1 / (1 - mu_i) * ||x - x'||_inf,

the paper's ``||U||_inf / (1 - mu_inf(W))`` with the weights and row by row.
The logit difference ``f_c - f_j = (w_c - w_j)^T D^-1 (D z)`` then varies by at
most ``||(w_c - w_j) D^-1||_1`` times that (Tsuzuku et al.'s pairwise margin,
:func:`robustlearn.certification.margin_radius`). Every bound is in pixel space:
``U`` acts on normalised inputs, so its columns carry the ``1/std`` factor.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from robustlearn.fixed_point import (
    FixedPointWarning,
    fixed_point,
    relative_change,
    solve_fixed_point,
)
from robustlearn.networks import Normalize

#: Backward passes the equilibrium layer offers (see :func:`robustlearn.fixed_point.fixed_point`).
BACKWARDS = ("implicit", "unrolled", "one-step")

#: Forward solvers (see :meth:`NEMONNetwork.solve`).
METHODS = ("jacobi", "averaged")


def step_size(diagonal: torch.Tensor) -> float:
    """The averaged iteration's step ``alpha* = 1 / (1 - min_i W_ii)``, clipped to (0, 1].

    For ``alpha <= 1 / (1 - W_ii)`` every row of the averaged map
    ``(1 - alpha) z + alpha ReLU(W z + u)`` has a non-negative diagonal, so its
    weighted l-infinity Lipschitz constant is ``1 - alpha (1 - mu)`` with
    ``mu = max(mu_inf,D(W), 0)``: a contraction (Jafarpour et al. 2021, Sec. 4).
    Computed from the current ``W`` at every solve, so it never drifts.
    """
    low = float(diagonal.detach().min())
    return 1.0 if low >= 0 else 1.0 / (1.0 - low)


class NEMONNetwork(nn.Module):
    """Shared solver, certificate and regulariser of the dense and convolutional NEMONs.

    Subclasses define the input injection ``U x + b``, how ``W`` acts, its
    diagonal, the row measures and input row norms in the ``D`` coordinates,
    and the readout.

    Parameters
    ----------
    mu : float
        Bound on the weighted l-infinity log-norm of ``W`` (must be < 1).
    mean, std : sequence of float
        Per-channel input normalisation, applied inside the network.
    """

    def __init__(self, mu, mean, std):
        super().__init__()
        if not mu < 1:
            raise ValueError(f"mu must be < 1, got {mu!r}")
        self.mu = float(mu)
        self.normalize = Normalize(mean, std)
        self.solver = dict(method="jacobi", tol=1e-3, max_iter=300, backward="implicit",
                           backward_tol=1e-4, backward_max_iter=300, alpha="auto", warn=True)
        self.last_result = None
        self.last_info = None

    def __getstate__(self):
        # the last solve's record holds closures over the batch (the adjoint hook): it is a
        # diagnostic of one call, not part of the model, so it is not pickled
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["last_result"] = None
        state["last_info"] = None
        return state

    # ------------------------------------------------------------ subclass API
    def injection(self, x):  # pragma: no cover - abstract
        """``U normalise(x) + b`` as a state-shaped tensor."""
        raise NotImplementedError

    def operator(self):  # pragma: no cover - abstract
        """Whatever :meth:`apply_w` needs, built once per solve from the parameters."""
        raise NotImplementedError

    def apply_w(self, z, op):  # pragma: no cover - abstract
        """``W z`` for a batch of states."""
        raise NotImplementedError

    def apply_wt(self, g, op):  # pragma: no cover - abstract
        """``W^T g`` for a batch (the adjoint of :meth:`apply_w`)."""
        raise NotImplementedError

    def affine(self, z, op, u):
        """``W z + u``, the pre-activation of one iteration (a subclass may fuse it)."""
        return self.apply_w(z, op) + u

    def diagonal(self, op):  # pragma: no cover - abstract
        """The diagonal entries ``W_ii`` (one per unit, or per channel)."""
        raise NotImplementedError

    def jacobi_operator(self, op):  # pragma: no cover - abstract
        """``(op', inv)``: ``W' = diag(inv) (W - diag(W))`` and ``inv = 1 / (1 - W_ii)``.

        ``op'`` is of the same kind as ``op``; ``inv`` broadcasts against a state.
        """
        raise NotImplementedError

    def row_measures(self):  # pragma: no cover - abstract
        """Row measures ``mu_i`` of ``D W D^-1`` (each <= ``mu`` by construction)."""
        raise NotImplementedError

    def input_row_norms(self):  # pragma: no cover - abstract
        """``||(D U)_i||_1`` per unit (or channel), in pixel space (1/std included)."""
        raise NotImplementedError

    def readout(self, z):  # pragma: no cover - abstract
        """Logits from equilibrium states."""
        raise NotImplementedError

    def readout_weights(self):  # pragma: no cover - abstract
        """(k, features) matrix ``W_out`` times ``D^-1`` of the feature each column reads."""
        raise NotImplementedError

    # ------------------------------------------------------------------ solving
    def _alpha(self, op):
        alpha = self.solver.get("alpha", "auto")
        return step_size(self.diagonal(op)) if alpha == "auto" else float(alpha)

    def _iteration(self, op, u, method):
        """The map the forward solver iterates, and its settings.

        Returns ``(op', u', alpha, core_method, scale)``: the solver iterates
        ``ReLU(W' z + u')``; its relative change times ``scale`` bounds the
        fixed-point residual ``||ReLU(W z + u) - z|| / ||z||`` of the
        equilibrium itself, so the solver is given ``tol / scale``.
        """
        if method == "averaged":
            alpha = self._alpha(op)
            # the averaged step's change is alpha times the residual
            return op, u, alpha, "averaged", 1.0 / alpha
        op_j, inv = self.jacobi_operator(op)
        # |ReLU(Wz+u)_i - z_i| <= max(1, 1 - W_ii) |J(z)_i - z_i| for z >= 0, row by row
        scale = max(1.0, float(1.0 / inv.detach().min()))
        return op_j, u * inv, 1.0, "plain", scale

    def solve(self, x, *, backward=None, tol=None, max_iter=None, backward_tol=None,
              backward_max_iter=None, warn=None, method=None):
        """Equilibrium states of a batch and a record of the solve.

        Two forward solvers, both contractions in the ``D``-weighted
        l-infinity norm with factor at most ``(mu+ - W_min) / (1 - W_min)``
        (``W_min`` the smallest diagonal entry, ``mu+ = max(mu, 0)``):

        * ``"jacobi"`` (default): the nonlinear Jacobi iteration
          ``z_i <- ReLU(sum_{j != i} W_ij z_j + u_i) / (1 - W_ii)``, which
          solves each unit's own term exactly (for ``W_ii < 1`` the scalar
          equation ``z = ReLU(W_ii z + r)`` has the solution
          ``ReLU(r) / (1 - W_ii)``). Same fixed points as the equilibrium;
          row ``i`` contracts by ``sum_{j != i} |W~_ij| / (1 - W_ii) <=
          (mu_i - W_ii) / (1 - W_ii)``, so units with a small diagonal are no
          longer held back by the most negative one. 5 to 7 times fewer
          iterations than the averaged iteration on the trained MNIST models
          (``benchmarks/bench_nemon.py``).
        * ``"averaged"``: the paper's averaged (Krasnoselskii-Mann) iteration
          ``z <- (1 - alpha) z + alpha ReLU(W z + u)`` with the step
          :func:`step_size` recomputed from ``W`` at this call.

        Both start from ``z = 0``. A sample stops once its iteration's change
        guarantees a fixed-point residual ``||ReLU(W z + u) - z|| / ||z||``
        below ``tol``; the residual reported is then measured at the returned
        state (one more application of the map).

        Returns
        -------
        z : torch.Tensor
            States, differentiable by ``backward`` ("implicit": the adjoint
            fixed point of the iterated map with ``backward_tol``; "unrolled";
            "one-step").
        info : dict
            ``method``, ``alpha`` (1 for Jacobi), ``iterations`` and
            ``residual`` (true fixed-point residual at the returned state)
            per sample, ``result`` (the core
            :class:`~robustlearn.fixed_point.FixedPointResult`; its
            ``backward_result`` holds the adjoint solve after ``backward()``).
        """
        s = self.solver
        backward = s["backward"] if backward is None else backward
        tol = s["tol"] if tol is None else tol
        max_iter = s["max_iter"] if max_iter is None else max_iter
        backward_tol = s["backward_tol"] if backward_tol is None else backward_tol
        if backward_max_iter is None:
            backward_max_iter = s["backward_max_iter"]
        warn = s["warn"] if warn is None else warn
        method = s.get("method", "jacobi") if method is None else method
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        op = self.operator()
        u = self.injection(x)
        it_op, it_u, alpha, core_method, scale = self._iteration(op, u, method)

        def step(z):
            return F.relu(self.affine(z, it_op, it_u))

        def vjp(z_star):
            # J(z*)^T g = W'^T (1[W' z* + u' > 0] g), without an autograd call per iteration
            active = (self.affine(z_star, it_op, it_u.detach()) > 0).to(z_star.dtype)
            return lambda g: self.apply_wt(active * g, it_op)

        # the adjoint's own residual ||v + J^T g - g|| / ||g|| is its change over alpha
        z, result = fixed_point(
            step, torch.zeros_like(u), backward=backward, method=core_method, alpha=alpha,
            max_iter=int(max_iter), tol=float(tol) / scale,
            backward_tol=float(backward_tol) * alpha, backward_max_iter=int(backward_max_iter),
            warn=False, vjp=vjp,
        )
        with torch.no_grad():
            z_end = result.z.detach()
            residual = relative_change(F.relu(self.affine(z_end, op, u.detach())), z_end)
        if warn and bool(result.hit_max_iter.any()):
            warnings.warn(
                f"NEMON forward solve hit max_iter={max_iter} for "
                f"{int(result.hit_max_iter.sum())} of {len(residual)} samples (largest "
                f"fixed-point residual {float(residual.max()):.3g}, tol={tol}, "
                f"{method} iteration, alpha={alpha:.3g}); raise max_iter or tol",
                FixedPointWarning, stacklevel=2,
            )
        info = dict(method=method, alpha=alpha, iterations=result.iterations, residual=residual,
                    tol=float(tol), max_iter=int(max_iter), backward_tol=float(backward_tol),
                    result=result)
        self.last_result, self.last_info = result, info
        return z, info

    def iterate(self, x, k, method=None):
        """States after exactly ``k`` iterations of the forward solver from 0, differentiable."""
        method = self.solver.get("method", "jacobi") if method is None else method
        op = self.operator()
        u = self.injection(x)
        it_op, it_u, alpha, core_method, _ = self._iteration(op, u, method)
        result = solve_fixed_point(lambda z: F.relu(self.affine(z, it_op, it_u)),
                                   torch.zeros_like(u), method=core_method, alpha=alpha,
                                   max_iter=int(k), tol=0.0)
        return result.z

    def forward(self, x):
        """Logits at the equilibrium, with the solver settings in ``self.solver``."""
        z, _ = self.solve(x)
        return self.readout(z)

    # ------------------------------------------------------- certificate & reg
    def latent_lipschitz(self):
        """``max_i ||(D U)_i||_1 / (1 - mu_i)``: linf (pixel) to weighted-linf state bound."""
        return (self.input_row_norms() / (1.0 - self.row_measures())).max()

    def lipschitz_matrix(self):
        """Pairwise constants ``L_cj`` of ``f_c - f_j`` in pixel-space l-infinity, (k, k)."""
        R = self.readout_weights()
        pair = (R[:, None, :] - R[None, :, :]).abs().sum(dim=2)
        return pair * self.latent_lipschitz()

    def lipschitz_bound(self):
        """Per-logit bound ``max_c ||R_c||_1 * latent_lipschitz``."""
        return self.readout_weights().abs().sum(dim=1).max() * self.latent_lipschitz()

    def lipschitz_regularizer(self):
        """``(a^2 + c^2) / 2`` with ``a`` the latent bound and ``c = max_c ||R_c||_1``.

        The AM-GM upper bound of the per-logit Lipschitz bound ``a c`` that the
        authors' code penalises, ``(||U||^2 + ||W_out||^2) / (2 (1 - mu))``,
        here with the weighted norms, the row-wise contraction and pixel scale.
        It is invariant to rescaling ``z``, unlike the product's gradient
        balance.
        """
        a = self.latent_lipschitz()
        c = self.readout_weights().abs().sum(dim=1).max()
        return 0.5 * (a * a + c * c)


class DenseNEMON(NEMONNetwork):
    """Fully connected NEMON on flattened inputs.

    Parameters
    ----------
    n_inputs : int
    width : int
        Units of the equilibrium state.
    n_classes : int
    mu : float
        Log-norm bound (the paper's experiments: 0).
    mean, std : sequence of float
        Per-channel normalisation; ``channels`` inputs share each value
        over their ``n_inputs / channels`` pixels.
    """

    def __init__(self, n_inputs, width, n_classes, mu=0.0, mean=(0.0,), std=(1.0,)):
        super().__init__(mu, mean, std)
        self.U = nn.Linear(n_inputs, width)
        # small A keeps diag(|A| 1) small, so the first solves take a step near 1
        self.A = nn.Parameter(torch.randn(width, width) / width)
        self.d = nn.Parameter(torch.zeros(width))
        self.out = nn.Linear(width, n_classes)

    def injection(self, x):
        return self.U(self.normalize(x).flatten(1))

    def operator(self):
        absrow = self.A.abs().sum(dim=1)
        scale = torch.exp(self.d)
        W = self.A * (scale[None, :] / scale[:, None])
        return W + torch.diag(self.mu - absrow)

    def apply_w(self, z, op):
        return z @ op.T

    def apply_wt(self, g, op):
        return g @ op

    def affine(self, z, op, u):
        # one BLAS call for W z + u: the matrix product is most of an iteration's cost
        return torch.addmm(u, z, op.T)

    def diagonal(self, op):
        return op.diagonal()

    def jacobi_operator(self, op):
        diag = op.diagonal()
        inv = 1.0 / (1.0 - diag)
        return (op - torch.diag(diag)) * inv[:, None], inv

    def row_measures(self):
        a = self.A.diagonal()
        return self.mu + a - a.abs()

    def _pixel_U(self):
        n = self.U.weight.shape[1]
        std = self.normalize.std.flatten()
        per_pixel = std.repeat_interleave(n // std.numel())
        return self.U.weight / per_pixel[None, :]

    def input_row_norms(self):
        return torch.exp(self.d) * self._pixel_U().abs().sum(dim=1)

    def readout(self, z):
        return self.out(z)

    def readout_weights(self):
        return self.out.weight * torch.exp(-self.d)[None, :]

    def weighted_log_norm(self):
        """``mu_inf(D W D^-1)`` of the assembled matrix (for checks)."""
        W = self.operator().detach()
        s = torch.exp(self.d.detach())
        Wt = W * (s[:, None] / s[None, :])
        off = Wt.abs().sum(dim=1) - Wt.diagonal().abs()
        return float((Wt.diagonal() + off).max())


class ConvNEMON(NEMONNetwork):
    """Convolutional NEMON: ``U`` a strided 3x3 convolution, ``W`` a circular convolution.

    The input injection ``U`` is a 3x3 convolution with stride ``stride``
    (the authors use stride 1 on a 1-pixel zero-padded input; stride 2 makes
    the state four times smaller, which is what lets CIFAR-10 train on a CPU).
    ``W`` is a ``kernel_size`` circular convolution with the diagonal shift of
    the true absolute row sums (see the module docstring). The readout
    average-pools the state by ``pool`` and applies a linear layer.

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    channels : int
    n_classes : int
    kernel_size : int
    stride : int
    pool : int
    mu : float
    mean, std : sequence of float
    """

    def __init__(self, input_shape, channels, n_classes, kernel_size=5, stride=2, pool=4,
                 mu=0.0, mean=(0.0,), std=(1.0,)):
        super().__init__(mu, mean, std)
        c_in, h, w = input_shape
        self.U = nn.Conv2d(c_in, channels, 3, stride=stride, padding=1)
        self.kernel_size = int(kernel_size)
        fan = channels * kernel_size * kernel_size
        self.A = nn.Parameter(torch.randn(channels, channels, kernel_size, kernel_size) / fan)
        self.d = nn.Parameter(torch.zeros(channels))
        hs = (h - 1) // stride + 1
        ws = (w - 1) // stride + 1
        if min(hs, ws) <= kernel_size // 2:
            # a circular kernel that wraps onto its own pixel adds to the diagonal, which the
            # step size, the Jacobi split and the row measures all read from the centre tap
            raise ValueError(
                f"the state ({hs}x{ws}) must be larger than kernel_size // 2 = "
                f"{kernel_size // 2} in each direction; lower stride or kernel_size")
        self.pool = int(min(pool, hs, ws))
        self.state_hw = (hs, ws)
        n_features = channels * (hs // self.pool) * (ws // self.pool)
        self.out = nn.Linear(n_features, n_classes)

    def injection(self, x):
        return self.U(self.normalize(x))

    def operator(self):
        s = torch.exp(self.d)
        kernel = self.A * (s[None, :] / s[:, None])[:, :, None, None]
        shift = self.mu - self.A.abs().sum(dim=(1, 2, 3))
        return kernel, shift

    def apply_w(self, z, op):
        kernel, shift = op
        p = self.kernel_size // 2
        conv = F.conv2d(F.pad(z, (p, p, p, p), mode="circular"), kernel)
        return conv + shift[None, :, None, None] * z

    def apply_wt(self, g, op):
        # adjoint of a circular convolution: circular correlation with the transposed kernel
        kernel, shift = op
        p = self.kernel_size // 2
        flipped = kernel.flip(2, 3).transpose(0, 1)
        conv = F.conv2d(F.pad(g, (p, p, p, p), mode="circular"), flipped)
        return conv + shift[None, :, None, None] * g

    def diagonal(self, op):
        kernel, shift = op
        c = self.kernel_size // 2
        return kernel[:, :, c, c].diagonal() + shift

    def jacobi_operator(self, op):
        kernel, _ = op
        inv = 1.0 / (1.0 - self.diagonal(op))
        k = self.kernel_size
        # the unit's own weight: the centre tap of its channel's kernel onto itself
        own = torch.zeros(k, k, dtype=kernel.dtype, device=kernel.device)
        own[k // 2, k // 2] = 1.0
        mask = torch.eye(kernel.shape[0], dtype=kernel.dtype, device=kernel.device)
        off = kernel * (1.0 - mask[:, :, None, None] * own)
        return (off * inv[:, None, None, None], torch.zeros_like(inv)), inv[:, None, None]

    def row_measures(self):
        c = self.kernel_size // 2
        a = self.A[:, :, c, c].diagonal()
        return self.mu + a - a.abs()

    def input_row_norms(self):
        std = self.normalize.std.flatten()
        per_row = (self.U.weight.abs() / std[None, :, None, None]).sum(dim=(1, 2, 3))
        return torch.exp(self.d) * per_row

    def readout(self, z):
        return self.out(F.avg_pool2d(z, self.pool).flatten(1))

    def readout_weights(self):
        hs, ws = self.state_hw
        per_channel = (hs // self.pool) * (ws // self.pool)
        inv = torch.exp(-self.d).repeat_interleave(per_channel)
        return self.out.weight * inv[None, :]

    def assembled_operator(self, shape=None):
        """``W`` as a dense matrix on a (channels, h, w) state (small states only; for checks)."""
        c = self.A.shape[0]
        h, w = shape or self.state_hw
        eye = torch.eye(c * h * w).reshape(-1, c, h, w)
        with torch.no_grad():
            cols = self.apply_w(eye, self.operator()).reshape(c * h * w, -1)
        return cols.T

    def weighted_log_norm(self, shape=None):
        """``mu_inf(D W D^-1)`` of the assembled operator (for checks)."""
        W = self.assembled_operator(shape)
        h, w = shape or self.state_hw
        s = torch.exp(self.d.detach()).repeat_interleave(h * w)
        Wt = W * (s[:, None] / s[None, :])
        off = Wt.abs().sum(dim=1) - Wt.diagonal().abs()
        return float((Wt.diagonal() + off).max())

