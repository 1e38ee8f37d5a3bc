"""FAB, the Fast Adaptive Boundary attack, and its targeted version FAB-T.

Written from the paper (Croce, Hein, "Minimally distorted adversarial examples
with a fast adaptive boundary attack", ICML 2020, arXiv 1907.02044, Sec. 3 and
Algorithm 1), not from the reference code. FAB looks for the adversarial
example of smallest ``p``-norm (here ``p`` is ``linf`` or ``l2``) around the
clean image ``x_orig`` of class ``c``. At each iterate ``x^(i)``:

- the classifier is linearised: for a class ``l``, the decision hyperplane
  ``pi_l = {z : g_l + <w_l, z - x^(i)> = 0}`` with ``g_l = f_l(x^(i)) - f_c(x^(i))``
  and ``w_l`` its gradient. The untargeted version takes the class ``s`` whose
  hyperplane is closest, ``argmin_{l != c} |g_l| / ||w_l||_q`` (``q`` the dual
  norm, Eq. 5); the targeted version (FAB-T, Croce & Hein 2020, arXiv
  2003.01690, Sec. 5) always takes the target class;
- ``delta = proj_p(x^(i), pi_s, C) - x^(i)`` and
  ``delta_orig = proj_p(x_orig, pi_s, C) - x_orig``, with ``proj_p`` the
  minimal-``p``-norm projection onto the hyperplane intersected with the box
  ``C = [0, 1]^d`` (Sec. 3.1; :func:`project_onto_hyperplane`);
- the step biased towards the original image (Eq. 8-9):
  ``alpha = min(||delta|| / (||delta|| + ||delta_orig||), alpha_max)``,
  ``x^(i+1) = proj_C((1 - alpha)(x^(i) + eta delta) + alpha (x_orig + eta delta_orig))``
  with the extrapolation ``eta > 1``;
- when ``x^(i+1)`` is misclassified, it is kept if it is the closest one so
  far and the iterate moves back towards the original image,
  ``x^(i+1) = (1 - beta) x_orig + beta x^(i+1)`` (the backward step, Sec. 3.2).

The first run starts at ``x_orig``; each further restart starts at a random
point at distance ``min(u, epsilon) / 2`` from it, ``u`` the norm of the best
adversarial found so far (Sec. 3.3).

AutoAttack's standard version runs FAB-T with 9 target classes (the classes
with the highest clean logits after ``c``), 100 iterations and one restart,
``alpha_max = 0.1``, ``eta = 1.05``, ``beta = 0.9`` (arXiv 2003.01690, Sec. 5 and
its reference settings).
"""

from __future__ import annotations

import math

import torch

from ..validation import check_bool, check_choice, check_float, check_int
from .apgd import top_targets
from .base import NORMS, MinimizationAttack


def _view(t, like):
    return t.view(-1, *([1] * (like.dim() - 1)))


def _norms(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def _dual_norms(w, norm):
    """Dual norms (l1 for linf, l2 for l2) over the last axis."""
    return w.abs().sum(dim=-1) if norm == "linf" else w.norm(dim=-1)


def project_onto_hyperplane(p, w, r, norm):
    """Smallest ``delta`` (in ``norm``) with ``<w, delta> = r`` and ``p + delta`` in [0, 1].

    The minimal-norm projection of ``p`` onto the hyperplane ``<w, z - p> = r``
    intersected with the box ``[0, 1]^d`` (Croce & Hein, ICML 2020, Sec. 3.1).
    With the sign of ``r`` folded into ``w`` (so ``r >= 0``), the KKT
    conditions give ``delta_i = u_i min(tau, tau_i)`` for one scalar ``tau >= 0``:
    ``u = sign(w)`` and ``tau_i`` the room of coordinate ``i`` towards its
    bound for ``linf``; ``u = w`` and ``tau_i = room_i / |w_i|`` for ``l2``.
    ``<w, delta(tau)>`` is piecewise linear and non-decreasing in ``tau``, so the
    breakpoints are sorted and ``tau`` is solved for exactly on its segment.
    When the hyperplane does not meet the box, every coordinate goes to its
    bound: the box point closest to the hyperplane.

    Parameters
    ----------
    p : torch.Tensor (n, ...)
        Points in [0, 1].
    w : torch.Tensor, same shape as ``p``
        Normals of the hyperplanes.
    r : torch.Tensor (n,)
        Required values of ``<w, delta>``.
    norm : {"linf", "l2"}

    Returns
    -------
    torch.Tensor
        ``delta``, same shape and dtype as ``p``.
    """
    dtype = p.dtype
    # float64: cumulative sums over thousands of coordinates lose the constraint in float32
    pf = p.flatten(1).double()
    sign = torch.where(r < 0, -1.0, 1.0).double()
    wf = w.flatten(1).double() * sign[:, None]
    r = r.double().abs()
    room = torch.where(wf > 0, 1.0 - pf, pf)
    a = wf.abs()
    if norm == "linf":
        tau_i, weight, direction = room, a, wf.sign()
    else:
        tau_i, weight, direction = room / a.clamp_min(1e-300), wf * wf, wf
    tau_i = torch.where(a > 0, tau_i, torch.zeros_like(tau_i))
    ts, order = tau_i.sort(dim=1)
    cs = weight.gather(1, order)
    saturated = torch.cumsum(cs * ts, dim=1) - cs * ts
    remaining = cs.flip(1).cumsum(dim=1).flip(1)
    reached = saturated + ts * remaining >= r[:, None]
    feasible = reached.any(dim=1)
    k = torch.where(feasible, reached.int().argmax(dim=1), torch.zeros_like(r, dtype=torch.long))
    sat_k = saturated.gather(1, k[:, None])[:, 0]
    rem_k = remaining.gather(1, k[:, None])[:, 0]
    tau = torch.where(feasible, (r - sat_k) / rem_k.clamp_min(1e-300), ts[:, -1])
    delta = direction * torch.minimum(tau[:, None], tau_i)
    return delta.to(dtype).view_as(p)


def _random_start(x0, radius, norm):
    if norm == "linf":
        delta = torch.empty_like(x0).uniform_(-1.0, 1.0)
        delta = delta / _view(delta.flatten(1).abs().amax(dim=1).clamp_min(1e-12), x0)
    else:
        delta = torch.randn_like(x0)
        delta = delta / _view(delta.flatten(1).norm(dim=1).clamp_min(1e-12), x0)
    return (x0 + delta * _view(radius, x0)).clamp(0.0, 1.0)


def _hyperplane(logits_fn, x, y, target):
    """``g = f_s - f_y`` and its gradient ``w`` at ``x`` for the chosen class ``s``.

    ``s`` is ``target`` when given, otherwise the class whose linearised decision
    boundary is closest (FAB's Eq. 5): this needs the gradient of every logit.
    """
    x_req = x.clone().requires_grad_(True)
    logits = logits_fn(x_req)
    z_y = logits.gather(1, y[:, None])[:, 0]
    if target is not None:
        g = logits.gather(1, target[:, None])[:, 0] - z_y
        (w,) = torch.autograd.grad(g.sum(), x_req)
        return g.detach(), w, logits.detach()
    n_classes = logits.shape[1]
    grads = []
    for k in range(n_classes):
        (grad_k,) = torch.autograd.grad(logits[:, k].sum(), x_req, retain_graph=k < n_classes - 1)
        grads.append(grad_k)
    jac = torch.stack(grads, dim=1)
    logits = logits.detach()
    rows = torch.arange(len(x), device=x.device)
    g_all = logits - z_y.detach()[:, None]
    w_all = jac - jac[rows, y][:, None]
    return g_all, w_all, logits


def fab(logits_fn, x0, y, *, norm="linf", target=None, steps=100, alpha_max=0.1, eta=1.05,
        beta=0.9, x_start=None, stop_at=None):
    """One run of FAB (Croce & Hein, ICML 2020, Algorithm 1) on one batch.

    Parameters
    ----------
    logits_fn : callable
        Images in [0, 1] to logits (differentiable).
    x0 : torch.Tensor (n, ...)
        Clean images in [0, 1].
    y : torch.Tensor of int64 (n,)
        True class indices.
    norm : {"linf", "l2"}
    target : torch.Tensor of int64 (n,), optional
        Target classes (FAB-T); None is the untargeted version.
    steps : int
        Iterations.
    alpha_max, eta, beta : float
        Largest bias towards the original image, extrapolation, backward step.
    x_start : torch.Tensor, optional
        Starting point (default ``x0``).
    stop_at : float, optional
        Stop iterating on an image once an adversarial within this distance is
        found (AutoAttack's use: only success within epsilon counts, so further
        steps, which only look for a closer one, cannot change the result).
        The other images' trajectories are unchanged.

    Returns
    -------
    x_best : torch.Tensor
        The closest misclassified iterate, ``x0`` where none was found.
    dist : torch.Tensor (n,)
        Its distance to ``x0`` in ``norm`` (``inf`` where none was found).
    """
    x0 = x0.detach()
    x = x0.clone() if x_start is None else x_start.detach().clone()
    x_best = x0.clone()
    dist = torch.full((len(x0),), math.inf, device=x0.device)
    active = torch.arange(len(x0), device=x0.device)
    for _ in range(steps):
        if stop_at is not None:
            going = dist[active] > stop_at
            if not bool(going.all()):
                active = active[going]
                if len(active) == 0:
                    break
        every = len(active) == len(x0)
        # the images still iterating (all of them, without copies, until one stops)
        xa, x0a, ya = (x, x0, y) if every else (x[active], x0[active], y[active])
        ta = target if every or target is None else target[active]
        g, w, _ = _hyperplane(logits_fn, xa, ya, ta)
        with torch.no_grad():
            rows = torch.arange(len(xa), device=x.device)
            if ta is None:
                distance = g.abs() / (_dual_norms(w.flatten(2), norm) + 1e-12)
                distance[rows, ya] = math.inf
                s = distance.argmin(dim=1)
                g, w = g[rows, s], w[rows, s]
            inner = (w * (x0a - xa)).flatten(1).sum(dim=1)
            delta = project_onto_hyperplane(xa, w, -g, norm)
            delta_orig = project_onto_hyperplane(x0a, w, -(g + inner), norm)
            n_cur, n_orig = _norms(delta, norm), _norms(delta_orig, norm)
            alpha = (n_cur / (n_cur + n_orig).clamp_min(1e-12)).clamp(max=alpha_max)
            alpha = _view(alpha, x0a)
            xa = ((1 - alpha) * (xa + eta * delta) + alpha * (x0a + eta * delta_orig)).clamp(0, 1)
            fooled = logits_fn(xa).argmax(dim=1) != ya
            d = _norms(xa - x0a, norm)
            closer = fooled & (d < dist[active])
            x_best[active[closer]] = xa[closer]
            dist[active[closer]] = d[closer]
            xa = torch.where(_view(fooled, x0a), (1 - beta) * x0a + beta * xa, xa)
            if every:
                x = xa
            else:
                x[active] = xa
    return x_best, dist


def fab_attack(logits_fn, x, y, *, norm="linf", targeted=True, n_target_classes=9, restarts=1,
               steps=100, alpha_max=0.1, eta=1.05, beta=0.9, epsilon=None, early_stop=False):
    """FAB with restarts and, for FAB-T, one run per target class; the closest result wins.

    Parameters
    ----------
    logits_fn : callable
    x : torch.Tensor (n, ...)
    y : torch.Tensor of int64 (n,)
    norm : {"linf", "l2"}
    targeted : bool
        FAB-T: one run per each of the ``n_target_classes`` classes with the
        highest clean logits (after ``y``).
    n_target_classes, restarts, steps, alpha_max, eta, beta
        See :func:`fab`.
    epsilon : float, optional
        Bounds the radius of the random restarts (``min(u, epsilon) / 2``).
    early_stop : bool
        Skip the images already fooled within ``epsilon`` (AutoAttack's use,
        where only success within the ball counts); otherwise every run
        attacks every image, for the smallest perturbation.

    Returns
    -------
    x_adv : torch.Tensor
        The closest adversarial found, ``x`` where none was.
    dist : torch.Tensor (n,)
        Its distance to ``x``: ``inf`` where none was found, 0 where ``x`` is
        already misclassified (those images are not attacked).
    """
    x = x.detach()
    x_adv = x.clone()
    dist = torch.full((len(x),), math.inf, device=x.device)
    with torch.no_grad():
        logits = logits_fn(x)
    n_classes = logits.shape[1]
    attackable = logits.argmax(dim=1) == y
    dist[~attackable] = 0.0
    ranks = list(range(2, min(n_target_classes, n_classes - 1) + 2)) if targeted else [None]
    bound = math.inf if epsilon is None else epsilon
    if early_stop and bound == 0:
        ranks = []
    for rank in ranks:
        for restart in range(restarts):
            todo = attackable & (dist > bound) if early_stop else attackable
            if restart > 0:
                radius = torch.minimum(dist, torch.full_like(dist, bound)) / 2
                todo = todo & torch.isfinite(radius) & (radius > 0)
            idx = todo.nonzero()[:, 0]
            if len(idx) == 0:
                continue
            start = None
            if restart > 0:
                start = _random_start(x[idx], radius[idx], norm)
            target = top_targets(logits_fn, x[idx], y[idx], rank) if rank else None
            cand, d = fab(logits_fn, x[idx], y[idx], norm=norm, target=target, steps=steps,
                          alpha_max=alpha_max, eta=eta, beta=beta, x_start=start,
                          stop_at=bound if early_stop and math.isfinite(bound) else None)
            closer = d < dist[idx]
            x_adv[idx[closer]] = cand[closer]
            dist[idx[closer]] = d[closer]
    return x_adv, dist


class FAB(MinimizationAttack):
    """FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020): minimal perturbations.

    Registered as ``fab`` (untargeted: the closest linearised boundary at every
    step, one gradient per class) and ``fab-t`` (``targeted=True``: one run per
    each of the ``n_target_classes`` classes with the highest clean logits, as
    in AutoAttack). A minimization attack: it returns the closest adversarial
    found, and its result at each epsilon is that one run projected onto the
    epsilon ball (``epsilon=None``: unbounded). Images it cannot fool come back
    unchanged.

    Parameters
    ----------
    epsilon : float, list of float or None, default=None
        Also bounds the radius of the random restarts (the largest finite one).
    norm : {"linf", "l2"}, default="linf"
    targeted : bool, default=False
    n_target_classes : int, default=9
    steps : int, default=100
    restarts : int, default=1
        Runs per target; the first starts at the clean image, later ones at a
        random point at distance ``min(u, epsilon) / 2``.
    alpha_max : float, default=0.1
        Largest bias of the step towards the original image.
    eta : float, default=1.05
        Extrapolation beyond the linearised boundary.
    beta : float, default=0.9
        Backward step towards the original image after a success.
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """


    def __init__(self, epsilon=None, *, norm="linf", targeted=False, n_target_classes=9,
                 steps=100, restarts=1, alpha_max=0.1, eta=1.05, beta=0.9,
                 eot_samples=1, estimator=None,
                 surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.norm = norm
        self.targeted = targeted
        self.n_target_classes = n_target_classes
        self.steps = steps
        self.restarts = restarts
        self.alpha_max = alpha_max
        self.eta = eta
        self.beta = beta
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.norm, "norm", NORMS)
        check_bool(self.targeted, "targeted")
        check_int(self.n_target_classes, "n_target_classes", low=1)
        check_int(self.steps, "steps", low=1)
        check_int(self.restarts, "restarts", low=1)
        check_float(self.alpha_max, "alpha_max", low=0, high=1)
        check_float(self.eta, "eta", low=1)
        check_float(self.beta, "beta", low=0, high=1)

    def _minimize(self, victim, x, labels, epsilons):
        finite = [e for e in epsilons if e is not None]
        x_adv, _ = fab_attack(victim.logits, x, labels, norm=self.norm, targeted=self.targeted,
                              n_target_classes=self.n_target_classes, restarts=self.restarts,
                              steps=self.steps, alpha_max=self.alpha_max, eta=self.eta,
                              beta=self.beta, epsilon=max(finite) if finite else None)
        return x_adv
