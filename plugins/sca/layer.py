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

import collections
import math

import torch
from torch import nn

from robustlearn.fixed_point import straight_through
from robustlearn.validation import check_int

#: Nonlinear predictors phi of g_C(h) = phi(C h + c), each with its derivative
#: written from the predictor's output p = phi(z) and input z.
PREDICTORS = {
    "relu": (torch.relu, lambda z, p: (z > 0).to(z.dtype)),
    "linear": (lambda z: z, lambda z, p: torch.ones_like(z)),
    "tanh": (torch.tanh, lambda z, p: 1 - p * p),
    "sigmoid": (torch.sigmoid, lambda z, p: p * (1 - p)),
}

#: Ways of computing dE/dh inside the loop; all are exact and agree to float rounding.
#: "auto" takes whichever of the two closed forms needs fewer multiply-accumulates.
INNER_GRADIENTS = ("auto", "closed-form", "gram", "autograd")


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
    inner_gradient : {"auto", "closed-form", "gram", "autograd"}, default="auto"
        How dE/dh is computed; every choice gives the same values up to float
        rounding. ``"closed-form"`` is the hand-derived formula, ``"gram"`` the
        same formula with ``B^T B`` formed once per call (3 n^2 instead of
        2 n^2 + 2 n d multiply-accumulates per step, cheaper when n < 2 d and
        the batch amortises the n^2 d of forming it), ``"autograd"``
        differentiates :meth:`energy`. ``"auto"`` (default) picks the closed form
        with the fewer multiply-accumulates for each call
        (:func:`inner_gradient_for`); see ``benchmarks/bench_sca.py``.

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
                 inner_gradient="auto"):
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
        method : {"auto", "closed-form", "gram", "autograd"}, optional
            Defaults to ``inner_gradient``. Every method keeps the graph to h and
            the weights when gradients are being recorded.
        """
        method = self._method(method, len(h), 1)
        return self._gradient(h, x, method, self._loop_context(x, method))

    def _method(self, method, batch, T):
        method = method or self.inner_gradient
        if method == "auto":
            return inner_gradient_for(self.in_features, self.width, T, batch)
        return method

    def _loop_context(self, x, method):
        """What a call's steps share: for "gram", the masked C, the fused
        ``[C^T | lambda B^T B]`` (shape (n, 2 n)) and the constant
        ``lambda B^T (x - b_B)``; else nothing."""
        if method != "gram":
            return None
        lateral, weight = self.lateral_matrix, self.backprojection.weight
        fused = torch.cat([lateral.t(), self.lambda_ * (weight.t() @ weight)], 1)
        drive = self.lambda_ * (x - self.backprojection.bias) @ weight
        return lateral, fused, drive

    def _gradient(self, h, x, method, context):
        if method == "autograd":
            return self._autograd_gradient(h, x)
        derivative = PREDICTORS[self.g][1]
        if method == "gram":
            # -lambda B^T (x - B h - b_B) = lambda B^T B h - lambda B^T (x - b_B)
            lateral, fused, drive = context
            both = h @ fused
            z = both[:, :self.width] + self.lateral_bias
            prediction = PREDICTORS[self.g][0](z)
            residual = h - prediction
            return (residual - (derivative(z, prediction) * residual) @ lateral
                    + both[:, self.width:] - drive)
        z, prediction, residual, reconstruction_error = self._terms(h, x)
        return (residual - (derivative(z, prediction) * residual) @ self.lateral_matrix
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
        method = self._method(None, len(s), 1)
        return self._step(s, x, method, self._loop_context(x, method))

    def _step(self, s, x, method, context):
        h = torch.relu(s)
        grad = self._gradient(h, x, method, context)
        with torch.no_grad():
            # the paper's clipping; its scale is a constant for backpropagation
            scale = (self.clip / grad.abs().amax(1, keepdim=True).clamp_min(1e-12)).clamp(max=1)
        return h - self.eta * scale * grad

    def _steps(self, x, T):
        """s_0, then each s_t of T steps, computing what the steps share once."""
        s = self.initial_state(x)
        yield s
        if T:
            method = self._method(None, len(x), T)
            context = self._loop_context(x, method)
            for _ in range(T):
                s = self._step(s, x, method, context)
                yield s

    def trajectory(self, x, T=None):
        """States h_0 = ReLU(s_0), ..., h_T = ReLU(s_T), as a list of T + 1 tensors."""
        return [torch.relu(s) for s in self._steps(x, self.T if T is None else int(T))]

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
            (s_T,) = collections.deque(self._steps(x, T), maxlen=1)
            return torch.relu(s_T)
        with torch.no_grad():
            value = self.forward(x, T)
        return straight_through(value, self.forward(x, T_backward))


def sca_macs(in_features, width, T, inner_gradient="closed-form", batch=1):
    """Multiply-accumulates per sample of one SCA layer's forward pass.

    Parameters
    ----------
    in_features, width, T : int
        d, n and the inner steps.
    inner_gradient : {"closed-form", "gram", "auto"}, default="closed-form"
        ``"closed-form"``: ``n d`` for W_f plus, per step, ``2 n^2`` for C h and
        C^T(.) and ``2 n d`` for B h and B^T(.): ``n d + T (2 n^2 + 2 n d)``
        (the method card's rounder ``T (n^2 + 2 n d)`` counts C once).
        ``"gram"``: ``n^2 d / batch`` to form B^T B, ``2 n d`` for W_f x and
        B^T x, and ``3 n^2`` per step (C h and lambda B^T B h in one product,
        then C^T(.)). ``"auto"``: the smaller of the two.
    batch : int, default=1
        Samples sharing one call (over which forming B^T B is amortised).

    Returns
    -------
    float
    """
    n, d, T = int(width), int(in_features), int(T)
    batch = check_int(batch, "batch", low=1)
    closed = n * d + T * (2 * n * n + 2 * n * d)
    gram = (n * n * d / batch + 2 * n * d + T * 3 * n * n) if T else closed
    costs = {"closed-form": closed, "gram": gram, "auto": min(closed, gram)}
    if inner_gradient not in costs:
        raise ValueError(f"inner_gradient must be one of {sorted(costs)}, got "
                         f"{inner_gradient!r}")
    return costs[inner_gradient]


def inner_gradient_for(in_features, width, T, batch):
    """The closed form with fewer multiply-accumulates for one call: "gram" or "closed-form"."""
    closed = sca_macs(in_features, width, T, "closed-form", batch)
    return "gram" if sca_macs(in_features, width, T, "gram", batch) < closed else "closed-form"
