"""Auto-PGD (APGD): step-size-free PGD with momentum, from Croce & Hein 2020.

Written from the paper (Croce, Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020,
arXiv 2003.01690, Sec. 3 and Algorithm 1), not from the reference code:

- step size ``eta^(0) = 2 * epsilon``; momentum ``alpha = 0.75``:
  ``z = P(x_k + eta * s(grad))``,
  ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1}))`` (Eq. 2),
  with ``s`` the sign (linf) or the l2-normalised gradient (l2);
- checkpoints ``w_j = ceil(p_j N)``, ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; at each, the step size
  is halved and the iterate restarted from the best point when fewer than
  ``rho = 0.75`` of the steps since the last checkpoint increased the loss
  (condition 1) or when neither the step size nor the best loss changed since
  it (condition 2);
- losses: cross-entropy, the Difference of Logits Ratio
  ``DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)`` (Eq. 6) and its targeted
  version ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (Eq. 7), with
  ``z_pi`` the logits sorted in decreasing order;
- the returned point is an iterate that is misclassified if one was found,
  otherwise the one with the highest loss.

Expectation over Transformation (Athalye, Carlini, Wagner, ICML 2018) averages
``eot_iter`` gradients per step, as AutoAttack's "rand" version does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..validation import check_bool, check_choice, check_float, check_int
from .base import NORMS, FixedEpsilonAttack
from .gradient import single_step

LOSSES = ("ce", "dlr", "dlr-targeted")


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size (Croce & Hein 2020, Sec. 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # rounding first keeps 0.41 * 100 from becoming 42
    marks = sorted({math.ceil(round(q * steps, 6)) for q in p[1:] if q < 1})
    return [m for m in marks if 0 < m < steps]


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None):
    """Per-sample (targeted) Difference of Logits Ratio loss (Croce & Hein 2020, Eq. 6 and 7)."""
    sorted_logits, order = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None])[:, 0]
    if target is not None:
        z_t = logits.gather(1, target[:, None])[:, 0]
        scale = sorted_logits[:, 0] - 0.5 * (sorted_logits[:, 2] + sorted_logits[:, 3])
        return -(z_y - z_t) / (scale + 1e-12)
    top_is_y = order[:, 0] == y
    z_other = torch.where(top_is_y, sorted_logits[:, 1], sorted_logits[:, 0])
    return -(z_y - z_other) / (sorted_logits[:, 0] - sorted_logits[:, 2] + 1e-12)


def _per_sample_loss(logits, y, loss, target):
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    return dlr_loss(logits, y, target if loss == "dlr-targeted" else None)


def _view(t, like):
    return t.view(-1, *([1] * (like.dim() - 1)))


def _project(x0, x, epsilon, norm):
    delta = x - x0
    if norm == "linf":
        delta = delta.clamp(-epsilon, epsilon)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * _view((epsilon / norms).clamp(max=1.0), x0)
    return (x0 + delta).clamp(0.0, 1.0)


def _direction(grad, norm):
    if norm == "linf":
        return grad.sign()
    return grad / _view(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)


def _random_start(x0, epsilon, norm):
    if norm == "linf":
        delta = torch.empty_like(x0).uniform_(-epsilon, epsilon)
    else:
        direction = torch.randn_like(x0)
        direction = direction / _view(direction.flatten(1).norm(dim=1).clamp_min(1e-12), x0)
        radius = torch.rand(x0.shape[0], device=x0.device) ** (1.0 / x0[0].numel())
        delta = direction * _view(epsilon * radius, x0)
    return (x0 + delta).clamp(0.0, 1.0)


def apgd(logits_fn, x0, y, *, epsilon, norm="linf", steps=100, loss="ce", target=None,
         eot_iter=1, rho=0.75, alpha=0.75, random_start=True):
    """Run APGD on one batch (Croce & Hein 2020, Algorithm 1).

    Parameters
    ----------
    logits_fn : callable
        Images in [0, 1] to logits (differentiable).
    x0 : torch.Tensor (n, ...)
        Clean images in [0, 1].
    y : torch.Tensor of int64 (n,)
        True class indices.
    epsilon : float
    norm : {"linf", "l2"}
    steps : int
        Iterations N (gradient evaluations after the start).
    loss : {"ce", "dlr", "dlr-targeted"}
    target : torch.Tensor of int64 (n,), optional
        Target classes for ``"dlr-targeted"``.
    eot_iter : int
        Gradients averaged per step (EOT).
    rho, alpha : float
        Checkpoint threshold and momentum.
    random_start : bool
        Start from a uniform random point of the ball instead of ``x0``.

    Returns
    -------
    torch.Tensor
        Adversarial images (detached).
    """
    if epsilon == 0:
        return x0.detach().clone()
    x0 = x0.detach()

    def loss_and_grad(x, rows=None):
        """Loss, gradient and logits at ``x``, computed only for ``rows`` (default all)."""
        ys = y if rows is None else y[rows]
        ts = target if rows is None or target is None else target[rows]
        xs = x if rows is None else x[rows]
        grad = torch.zeros_like(xs)
        total = torch.zeros(xs.shape[0], device=x.device)
        for _ in range(eot_iter):
            x_req = xs.clone().requires_grad_(True)
            logits = logits_fn(x_req)
            values = _per_sample_loss(logits, ys, loss, ts)
            (g,) = torch.autograd.grad(values.sum(), x_req)
            grad += g
            total += values.detach()
        return total / eot_iter, grad / eot_iter, logits.detach()

    x_k = _random_start(x0, epsilon, norm) if random_start else x0.clone()
    loss_k, grad, logits = loss_and_grad(x_k)
    fooled = logits.argmax(1) != y
    x_fooled = torch.where(_view(fooled, x0), x_k, x0)
    best_loss, x_best, grad_best = loss_k.clone(), x_k.clone(), grad.clone()
    step = torch.full((x0.shape[0],), 2.0 * epsilon, device=x0.device)
    x_prev = x_k.clone()
    marks = checkpoints(steps)
    last_mark, n_increase = 0, torch.zeros_like(loss_k)
    step_at_mark, best_at_mark = step.clone(), best_loss.clone()
    for k in range(steps):
        with torch.no_grad():
            z = _project(x0, x_k + _view(step, x0) * _direction(grad, norm), epsilon, norm)
            if k > 0:
                z = _project(x0, x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_prev),
                             epsilon, norm)
            x_prev, x_k = x_k, z
        # Images already fooled keep their first adversarial iterate (x_fooled), whatever
        # later steps do, so only the others are run through the model: the returned images
        # are the same, every image's own trajectory is unchanged, and the cost of a step
        # falls with the number of images still to fool. With EOT (a random model) later
        # iterates may fool more draws than the first lucky one, so every image keeps going.
        active = (~fooled).nonzero()[:, 0] if eot_iter == 1 else torch.arange(
            x0.shape[0], device=x0.device)
        if len(active) == 0:
            break
        every = len(active) == x0.shape[0]
        loss_a, grad_a, logits_a = loss_and_grad(x_k, None if every else active)
        with torch.no_grad():
            if every:
                loss_new, grad = loss_a, grad_a
                now_fooled = logits_a.argmax(1) != y
            else:
                loss_new, grad = loss_k.clone(), grad.clone()
                loss_new[active], grad[active] = loss_a, grad_a
                now_fooled = torch.zeros_like(fooled)
                now_fooled[active] = logits_a.argmax(1) != y[active]
            x_fooled = torch.where(_view(now_fooled, x0), x_k, x_fooled)
            fooled |= now_fooled
            n_increase += (loss_new > loss_k).float()
            loss_k = loss_new
            better = loss_new > best_loss
            best_loss = torch.where(better, loss_new, best_loss)
            x_best = torch.where(_view(better, x0), x_k, x_best)
            grad_best = torch.where(_view(better, x0), grad, grad_best)
            if k + 1 in marks:
                span = k + 1 - last_mark
                too_few = n_increase < rho * span
                stalled = (step_at_mark == step) & (best_at_mark == best_loss)
                halve = too_few | stalled
                step = torch.where(halve, step / 2, step)
                x_k = torch.where(_view(halve, x0), x_best, x_k)
                x_prev = torch.where(_view(halve, x0), x_best, x_prev)
                grad = torch.where(_view(halve, x0), grad_best, grad)
                loss_k = torch.where(halve, best_loss, loss_k)
                last_mark, n_increase = k + 1, torch.zeros_like(n_increase)
                step_at_mark, best_at_mark = step.clone(), best_loss.clone()
    return torch.where(_view(fooled, x0), x_fooled, x_best).detach()


def top_targets(logits_fn, x, y, rank):
    """The class with the ``rank``-th highest clean logit (rank 2 = runner-up), skipping ``y``."""
    with torch.no_grad():
        order = logits_fn(x).argsort(dim=1, descending=True)
    not_y = order[order != y[:, None]].view(x.shape[0], -1)
    return not_y[:, min(rank - 2, not_y.shape[1] - 1)]


def apgd_attack(logits_fn, x, y, *, epsilon, norm, steps, loss, restarts=1, n_target_classes=9,
                eot_iter=1, rho=0.75, random_start=True, predict_fn=None):
    """APGD with restarts (and one run per target class for ``"dlr-targeted"``).

    Each run attacks only the images no earlier run has fooled; the single-step
    (FGSM/FGM) point is tried first, so APGD is never weaker than one step.

    Returns
    -------
    torch.Tensor
        Adversarial images.
    """
    predict_fn = predict_fn or (lambda t: logits_fn(t).argmax(1))
    x_adv = x.detach().clone()
    with torch.no_grad():
        robust = predict_fn(x) == y
    idx = robust.nonzero()[:, 0]
    if len(idx):
        start = single_step(logits_fn, x[idx], y[idx], epsilon=epsilon, norm=norm)
        with torch.no_grad():
            fooled = predict_fn(start) != y[idx]
        x_adv[idx[fooled]] = start[fooled]
        robust[idx[fooled]] = False
    n_classes = None
    runs = []
    if loss == "dlr-targeted":
        with torch.no_grad():
            n_classes = logits_fn(x[:1]).shape[1]
        runs = [rank for rank in range(2, min(n_target_classes, n_classes - 1) + 2)]
    else:
        runs = [None]
    for rank in runs:
        for _ in range(restarts):
            idx = robust.nonzero()[:, 0]
            if len(idx) == 0:
                return x_adv
            target = top_targets(logits_fn, x[idx], y[idx], rank) if rank else None
            candidate = apgd(logits_fn, x[idx], y[idx], epsilon=epsilon, norm=norm, steps=steps,
                             loss=loss, target=target, eot_iter=eot_iter, rho=rho,
                             random_start=random_start)
            with torch.no_grad():
                fooled = predict_fn(candidate) != y[idx]
            x_adv[idx[fooled]] = candidate[fooled]
            robust[idx[fooled]] = False
    return x_adv


def check_loss_classes(loss, n_classes):
    """DLR needs 3 classes, targeted DLR 4 (Croce & Hein 2020, Eq. 6 and 7)."""
    need = {"ce": 2, "dlr": 3, "dlr-targeted": 4}[loss]
    if n_classes < need:
        raise ValueError(f"loss={loss!r} needs at least {need} classes, the victim has {n_classes}")


class APGD(FixedEpsilonAttack):
    """Auto-PGD (Croce & Hein 2020, Algorithm 1) with cross-entropy or DLR loss.

    Registered as ``apgd-ce`` (``loss="ce"``), ``apgd-dlr`` (``loss="dlr"``)
    and ``apgd-t`` (``loss="dlr-targeted"``: one run per each of the
    ``n_target_classes`` classes with the highest clean logits, as APGD-T in
    AutoAttack).

    Parameters
    ----------
    epsilon : float or list of float, default=None
    norm : {"linf", "l2"}, default="linf"
    loss : {"ce", "dlr", "dlr-targeted"}, default="ce"
    steps : int, default=100
    restarts : int, default=1
        Runs from fresh random starts on the images not fooled yet.
    n_target_classes : int, default=9
        Target classes tried by ``"dlr-targeted"``.
    rho : float, default=0.75
        Checkpoint threshold.
    random_start : bool, default=True
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    _eot_in_loss = True

    def __init__(self, epsilon=None, *, norm="linf", loss="ce", steps=100, restarts=1,
                 n_target_classes=9, rho=0.75, random_start=True, eot_samples=1,
                 estimator=None, surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.norm = norm
        self.loss = loss
        self.steps = steps
        self.restarts = restarts
        self.n_target_classes = n_target_classes
        self.rho = rho
        self.random_start = random_start
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.loss, "loss", LOSSES)
        check_int(self.steps, "steps", low=1)
        check_int(self.restarts, "restarts", low=1)
        check_int(self.n_target_classes, "n_target_classes", low=1)
        check_float(self.rho, "rho", low=0, high=1)
        check_bool(self.random_start, "random_start")

    def _run(self, victim, x, labels, epsilons):
        check_loss_classes(self.loss, len(victim.classes))  # before any work
        return super()._run(victim, x, labels, epsilons)

    def _run_epsilon(self, victim, x, labels, epsilon):
        return apgd_attack(victim.logits, x, labels, epsilon=epsilon, norm=self.norm,
                           steps=self.steps, loss=self.loss, restarts=self.restarts,
                           n_target_classes=self.n_target_classes, eot_iter=self.eot_samples,
                           rho=self.rho, random_start=self.random_start)
