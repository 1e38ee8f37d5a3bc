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
            if norm == "linf":
                x_adv = x_adv + step_size * grad.sign()
            else:
                x_adv = x_adv + step_size * grad / _flat_norm(grad)
            x_adv = (x + project(x_adv - x, epsilon, norm)).clamp(0.0, 1.0)
    return x_adv.detach()
