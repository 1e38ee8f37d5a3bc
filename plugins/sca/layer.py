"""The Self-Consistent Activation (SCA) layer: T gradient steps on a self-consistency energy.

Shah & Raj, "Fixed Inter-Neuron Covariability Induces Adversarial Robustness",
arXiv 2308.03956 (2023). The equations follow the authors' released layer
(``ConsistentActivationLayer``, repository ahmedshah1494/biologically_inspired_robustness,
folder ``src/ICASSP23``) as summarised in the project's method card
(``shared/methods/sca.md``, section 2):

- initial state ``s_0 = W_f x + b_f``;
- for t = 1..T, with ``h = ReLU(s_{t-1})``, one gradient step on the per-sample energy

  ``E(h) = 1/2 ||h - g_C(h)||^2 + lambda/2 ||x - (B h + b_B)||^2``,
  ``g_C(h) = phi(C h + c)``, ``C`` with a zero diagonal,

  clipped per sample to an l_inf norm of at most ``clip`` (the scale is not
  differentiated): ``s_t = h - eta * grad * min(1, clip / ||grad||_inf)``;
- output ``a = ReLU(s_T)``.

The lateral weights ``C, c`` are the learned inter-neuron covariability: trained
with the rest of the network through the T unrolled steps, then fixed, so at
prediction time every input's activity is pulled towards the same learned
pattern. The reconstruction term (weight ``lambda``) rules out the trivial
self-consistent state h = 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robustlearn.fixed_point import straight_through

#: Nonlinear predictors phi of g_C(h) = phi(C h + c), each with its derivative
#: written from the predictor's output p = phi(z) and input z.
PREDICTORS = {
    "relu": (torch.relu, lambda z, p: (z > 0).to(z.dtype)),
    "linear": (lambda z: z, lambda z, p: torch.ones_like(z)),
    "tanh": (torch.tanh, lambda z, p: 1 - p * p),
    "sigmoid": (torch.sigmoid, lambda z, p: p * (1 - p)),
}

#: Ways of computing dE/dh inside the loop; both are exact and agree to float rounding.
INNER_GRADIENTS = ("closed-form", "autograd")


class SCALayer(nn.Module):
    """One Self-Consistent Activation layer (Shah & Raj, arXiv 2308.03956).

    Maps ``x`` of shape (n, in_features) to ``a = ReLU(s_T)`` of shape
    (n, width) by T clipped gradient steps on the energy ``E(h)`` of the
    module docstring. Every step is differentiable, so the layer trains by
    backpropagation through the unrolled loop and can sit anywhere in a torch
    model (stack several, each reconstructing its own input).

    Parameters
    ----------
    in_features : int
        Size d of the input x.
    width : int
        Units n.
    T : int, default=16
        Inner steps (0 gives the plain feed-forward layer ReLU(W_f x + b_f)).
    eta : float, default=0.25
        Step size of the inner gradient steps.
    lambda_ : float, default=0.3
        Weight of the input-reconstruction term.
    g : {"relu", "linear", "tanh", "sigmoid"}, default="relu"
        Nonlinearity phi of the lateral predictor g_C(h) = phi(C h + c).
    clip : float, default=10.0
        Largest l_inf norm of a step's gradient, per sample.
    inner_gradient : {"closed-form", "autograd"}, default="closed-form"
        How dE/dh is computed: the hand-derived formula (faster, see
        ``benchmarks/bench_sca.py``) or automatic differentiation of ``energy``.

    Attributes
    ----------
    feedforward : nn.Linear
        W_f and b_f.
    lateral : nn.Parameter of shape (width, width)
        C before masking; :attr:`lateral_matrix` is the masked C used.
    lateral_bias : nn.Parameter of shape (width,)
        c.
    backprojection : nn.Linear
        B (weight of shape (in_features, width)) and b_B.
    """

    def __init__(self, in_features, width, T=16, eta=0.25, lambda_=0.3, g="relu", clip=10.0,
                 inner_gradient="closed-form"):
        super().__init__()
        if g not in PREDICTORS:
            raise ValueError(f"g must be one of {sorted(PREDICTORS)}, got {g!r}")
        if inner_gradient not in INNER_GRADIENTS:
            raise ValueError(f"inner_gradient must be one of {INNER_GRADIENTS}, got "
                             f"{inner_gradient!r}")
        self.in_features = int(in_features)
        self.width = int(width)
        self.T = int(T)
        self.eta = float(eta)
        self.lambda_ = float(lambda_)
        self.g = g
        self.clip = float(clip)
        self.inner_gradient = inner_gradient
        self.feedforward = nn.Linear(self.in_features, self.width)
        bound = 1.0 / math.sqrt(self.width)
        # the same uniform initialisation nn.Linear gives an n -> n map
        self.lateral = nn.Parameter(torch.empty(self.width, self.width).uniform_(-bound, bound))
        self.lateral_bias = nn.Parameter(torch.empty(self.width).uniform_(-bound, bound))
        self.backprojection = nn.Linear(self.width, self.in_features)
        # zero diagonal: a unit is predicted from the others, never from itself
        self.register_buffer("off_diagonal", 1.0 - torch.eye(self.width))

    @property
    def lateral_matrix(self) -> torch.Tensor:
        """The lateral matrix C with its diagonal forced to zero."""
        return self.lateral * self.off_diagonal

    def extra_repr(self):
        return (f"in_features={self.in_features}, width={self.width}, T={self.T}, "
                f"eta={self.eta}, lambda_={self.lambda_}, g={self.g!r}, clip={self.clip}, "
                f"inner_gradient={self.inner_gradient!r}")

    # ------------------------------------------------------------- energy
    def _terms(self, h, x):
        z = nn.functional.linear(h, self.lateral_matrix, self.lateral_bias)
        prediction = PREDICTORS[self.g][0](z)
        residual = h - prediction
        reconstruction_error = x - self.backprojection(h)
        return z, prediction, residual, reconstruction_error

    def energy(self, h, x):
        """Per-sample energy E(h), shape (n,).

        ``1/2 ||h - g_C(h)||^2 + lambda/2 ||x - (B h + b_B)||^2``.
        """
        _, _, residual, reconstruction_error = self._terms(h, x)
        return (0.5 * residual.pow(2).sum(1)
                + 0.5 * self.lambda_ * reconstruction_error.pow(2).sum(1))

    def energy_gradient(self, h, x, method=None):
        """dE/dh per sample, shape like ``h``.

        Closed form: ``(h - g) - C^T [phi'(C h + c) * (h - g)] - lambda B^T (x - B h - b_B)``.

        Parameters
        ----------
        h, x : torch.Tensor
        method : {"closed-form", "autograd"}, optional
            Defaults to ``inner_gradient``. Both keep the graph to h and the
            weights when gradients are being recorded.
        """
        method = method or self.inner_gradient
        if method == "autograd":
            return self._autograd_gradient(h, x)
        z, prediction, residual, reconstruction_error = self._terms(h, x)
        slope = PREDICTORS[self.g][1](z, prediction)
        return (residual - (slope * residual) @ self.lateral_matrix
                - self.lambda_ * reconstruction_error @ self.backprojection.weight)

    def _autograd_gradient(self, h, x):
        record = torch.is_grad_enabled() and (h.requires_grad or x.requires_grad)
        with torch.enable_grad():
            h_in = h if h.requires_grad else h.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(h_in, x).sum(), h_in, create_graph=record)
        return grad if record else grad.detach()

    # ------------------------------------------------------------ dynamics
    def initial_state(self, x):
        """s_0 = W_f x + b_f."""
        return self.feedforward(x)

    def step(self, s, x):
        """One clipped gradient step: s_t from s_{t-1}."""
        h = torch.relu(s)
        grad = self.energy_gradient(h, x)
        with torch.no_grad():
            # the paper's clipping; its scale is a constant for backpropagation
            scale = (self.clip / grad.abs().amax(1, keepdim=True).clamp_min(1e-12)).clamp(max=1)
        return h - self.eta * scale * grad

    def trajectory(self, x, T=None):
        """States h_0 = ReLU(s_0), ..., h_T = ReLU(s_T), as a list of T + 1 tensors."""
        s = self.initial_state(x)
        states = [torch.relu(s)]
        for _ in range(self.T if T is None else int(T)):
            s = self.step(s, x)
            states.append(torch.relu(s))
        return states

    def forward(self, x, T=None, T_backward=None):
        """Activity ``a = ReLU(s_T)`` of shape (n, width).

        Parameters
        ----------
        x : torch.Tensor of shape (n, in_features)
        T : int, optional
            Inner steps for this call (defaults to the layer's ``T``).
        T_backward : int, optional
            If given, the value is the T-step activity but the gradient is that
            of the ``T_backward``-step activity (BPDA, Athalye et al. 2018;
            ``T_backward=0`` treats the loop as the identity map).
        """
        T = self.T if T is None else int(T)
        if T_backward is None:
            s = self.initial_state(x)
            for _ in range(T):
                s = self.step(s, x)
            return torch.relu(s)
        with torch.no_grad():
            value = self.forward(x, T)
        return straight_through(value, self.forward(x, T_backward))


def sca_macs(in_features, width, T):
    """Multiply-accumulates per sample of one SCA layer's forward pass.

    ``n d`` for W_f plus, per step, ``2 n^2`` for C h and C^T(.) and ``2 n d`` for
    B h and B^T(.): ``n d + T (2 n^2 + 2 n d)``. The method card's rounder
    ``T (n^2 + 2 n d)`` counts C once.
    """
    n, d = int(width), int(in_features)
    return n * d + int(T) * (2 * n * n + 2 * n * d)
