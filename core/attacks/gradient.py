"""Projected gradient attacks written directly in torch.

These are the fast inner loops adversarial training needs every batch; the
user-facing attacks are the scikit-learn transformers of this package.

References
----------
Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015 (FGSM).
Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018 (PGD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORMS = ("linf", "l2")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """Project perturbations onto the ``norm`` ball of radius ``epsilon``."""
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    factor = (epsilon / _flat_norm(delta)).clamp(max=1.0)
    return delta * factor


def random_start(x: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    """A uniform random point of the ``norm`` ball around ``x``, clipped to [0, 1]."""
    if norm == "linf":
        delta = torch.empty_like(x).uniform_(-epsilon, epsilon)
    else:
        direction = torch.randn_like(x)
        direction = direction / _flat_norm(direction)
        radius = torch.rand(x.shape[0], device=x.device) ** (1.0 / x[0].numel())
        delta = direction * (epsilon * radius).view(-1, *([1] * (x.dim() - 1)))
    return (x + delta).clamp(0.0, 1.0)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ``max_{j != y} z_j - z_y`` (Carlini & Wagner's margin; > 0 when misclassified)."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.clone()
    others.scatter_(1, y[:, None], float("-inf"))
    return others.max(dim=1).values - true


LOSSES = {
    "ce": lambda logits, y: F.cross_entropy(logits, y, reduction="none"),
    "margin": margin_loss,
}


def ascent_step(x0, x, grad, step_size, epsilon, norm):
    """One projected steepest-ascent step from ``x``: sign (linf) or l2-normalised gradient,
    then projection onto the ``norm`` ball around ``x0`` and clipping to [0, 1]."""
    direction = grad.sign() if norm == "linf" else grad / _flat_norm(grad)
    return (x0 + project(x + step_size * direction - x0, epsilon, norm)).clamp(0.0, 1.0)


def single_step(logits_fn, x, y, *, epsilon, norm="linf"):
    """The single-step point: FGSM (linf) or FGM (l2) from ``x``, clipped to [0, 1].

    Iterative attacks seed their best point with it, so that they are never
    weaker than one step of size epsilon (the check "iterative attacks beat
    single-step ones" of Carlini et al., arXiv 1902.06705, holds by
    construction rather than by luck of the step size).
    """
    x = x.detach()
    if epsilon == 0:
        return x.clone()
    x_req = x.clone().requires_grad_(True)
    loss = F.cross_entropy(logits_fn(x_req), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_req)
    return ascent_step(x, x, grad, epsilon, epsilon, norm).detach()


def best_of_pgd(logits_fn, x, y, *, epsilon, steps, step_size=None, norm="linf",
                random_init=True, restarts=1, loss="ce"):
    """PGD that keeps, per example, the best point found over every step and restart.

    A point that is misclassified is kept as soon as it is found (later
    iterates can wander back across the boundary, and returning the last one
    would undercount the attack's success); among points that never fool, the
    one with the highest loss is kept. The single-step point
    (:func:`single_step`) is a candidate too, so PGD is never weaker than FGSM.
    Restarts after the first start from fresh random points of the ball, and
    only for the examples not fooled yet.

    Parameters
    ----------
    logits_fn : callable
        Images to logits (differentiable).
    x : torch.Tensor
        Clean images in [0, 1].
    y : torch.Tensor of int64
        True labels.
    epsilon : float
    steps : int
    step_size : float, optional
        Defaults to ``2.5 * epsilon / steps`` (Madry et al. 2018).
    norm : {"linf", "l2"}
    random_init : bool
        Random start for the first run (later restarts always start at random).
    restarts : int, default=1
    loss : {"ce", "margin"}, default="ce"

    Returns
    -------
    torch.Tensor
        Adversarial images, detached, in [0, 1] and within the ball.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    x = x.detach()
    if epsilon == 0:
        return x.clone()
    loss_fn = LOSSES[loss]
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    best = x.clone()
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    everyone = torch.arange(len(x), device=x.device)

    def record(index, x_cand, logits):
        nonlocal best, best_loss, fooled
        with torch.no_grad():
            values = loss_fn(logits, y[index]).detach()
            wrong = logits.argmax(1) != y[index]
            take = (~fooled[index]) & (wrong | (values > best_loss[index]))
            rows = index[take]
            best[rows] = x_cand[take].detach()
            best_loss[rows] = torch.maximum(best_loss[rows], values[take])
            fooled[rows] = fooled[rows] | wrong[take]

    start = single_step(logits_fn, x, y, epsilon=epsilon, norm=norm)
    with torch.no_grad():
        record(everyone, start, logits_fn(start))
    for restart in range(restarts):
        index = (~fooled).nonzero()[:, 0]
        if len(index) == 0:
            break
        x0, yi = x[index], y[index]
        x_adv = random_start(x0, epsilon, norm) if (random_init or restart > 0) else x0.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = logits_fn(x_adv)
            record(index, x_adv, logits.detach())
            (grad,) = torch.autograd.grad(loss_fn(logits, yi).sum(), x_adv)
            with torch.no_grad():
                x_adv = ascent_step(x0, x_adv, grad, step_size, epsilon, norm)
        with torch.no_grad():
            record(index, x_adv, logits_fn(x_adv))
    return best.detach()


def projected_gradient_descent(
    logits_fn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_init: bool = True,
) -> torch.Tensor:
    """Untargeted PGD maximising cross-entropy within an ``epsilon`` ball, inside [0, 1].

    Parameters
    ----------
    logits_fn : callable
        Maps a batch of images to logits.
    x : torch.Tensor
        Clean images in [0, 1].
    y : torch.Tensor of int64
        True labels.
    epsilon : float
        Radius of the ball.
    steps : int
        Gradient steps; ``steps=1`` without random start and ``step_size=epsilon``
        is FGSM (linf) or FGM (l2).
    step_size : float, optional
        Defaults to ``2.5 * epsilon / steps`` (Madry et al.).
    norm : {"linf", "l2"}
    random_init : bool
        Start from a uniform random point of the ball.

    Returns
    -------
    torch.Tensor
        Adversarial images, detached, in [0, 1] and within the ball.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if epsilon == 0:
        return x.detach().clone()
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    x = x.detach()
    x_adv = random_start(x, epsilon, norm) if random_init else x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(logits_fn(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = ascent_step(x, x_adv, grad, step_size, epsilon, norm)
    return x_adv.detach()
