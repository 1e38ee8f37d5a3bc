"""Square Attack (linf): score-based random search with square-shaped updates.

Written from the paper (Andriushchenko, Croce, Flammarion, Hein, "Square
Attack: a query-efficient black-box adversarial attack via random search",
ECCV 2020, arXiv 1912.00049, Algorithms 1 and 2):

- initialisation with vertical stripes of width one, each ``+-epsilon``;
- at iteration ``i`` a square of side ``s = round(sqrt(p_i * h * w))`` at a
  uniformly random position gets, per channel, a fresh ``+-epsilon``
  perturbation; the proposal is kept when it lowers the margin loss
  ``z_y - max_{i != y} z_i``;
- ``p`` starts at ``p_init = 0.8`` and is halved at iterations
  10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10000-query run,
  rescaled here to the query budget (the reference code calls this
  ``resc_schedule``; AutoAttack's reference run leaves it off, so with 5000
  queries it halves ``p`` later than this implementation does);
- only images that are not yet misclassified are queried.

It needs only the victim's scores, so it tests whether a defense merely masks
gradients (AutoAttack's flag "Square beats white-box").
"""

from __future__ import annotations

import math

import torch

from ..validation import check_choice, check_float, check_int
from .base import FixedEpsilonAttack

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init: float, i: int, n_queries: int) -> float:
    """Fraction ``p`` of pixels changed at iteration ``i`` (halving schedule rescaled to 10000)."""
    i_scaled = int(i / n_queries * 10000)
    return p_init / 2 ** sum(i_scaled > h for h in _HALVINGS)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{i != y} z_i``: negative exactly when the image is misclassified."""
    z_y = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.max(dim=1).values


def square_linf(logits_fn, x0, y, *, epsilon, n_queries=5000, p_init=0.8):
    """Run the linf Square Attack on one batch.

    Parameters
    ----------
    logits_fn : callable
        Images in [0, 1] to logits (only values are used).
    x0 : torch.Tensor (n, C, H, W)
    y : torch.Tensor of int64
    epsilon : float
    n_queries : int
        Queries per image, the initial one included.
    p_init : float

    Returns
    -------
    torch.Tensor
        Adversarial images.
    """
    if epsilon == 0 or len(x0) == 0:
        return x0.clone()
    n, c, h, w = x0.shape
    dev = x0.device
    signs = torch.randint(0, 2, (n, c, 1, w), device=dev).float() * 2 - 1
    x_best = (x0 + epsilon * signs).clamp(0.0, 1.0)
    with torch.no_grad():
        m_best = margin(logits_fn(x_best), y)
        rows = torch.arange(h, device=dev)
        cols = torch.arange(w, device=dev)
        for i in range(1, n_queries):
            idx = (m_best > 0).nonzero()[:, 0]
            if len(idx) == 0:
                break
            p = square_fraction(p_init, i, n_queries)
            side = max(int(round(math.sqrt(p * h * w))), 1)
            sh, sw = min(side, h), min(side, w)
            top = torch.randint(0, h - sh + 1, (len(idx),), device=dev)
            left = torch.randint(0, w - sw + 1, (len(idx),), device=dev)
            in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + sh)
            in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + sw)
            window = in_rows[:, None, :, None] & in_cols[:, None, None, :]
            new_sign = torch.randint(0, 2, (len(idx), c, 1, 1), device=dev).float() * 2 - 1
            xs, xb = x0[idx], x_best[idx]
            candidate = torch.where(window, (xs + epsilon * new_sign).clamp(0.0, 1.0), xb)
            m_new = margin(logits_fn(candidate), y[idx])
            better = m_new < m_best[idx]
            x_best[idx[better]] = candidate[better]
            m_best[idx[better]] = m_new[better]
    return x_best


class Square(FixedEpsilonAttack):
    """Square Attack in the linf norm (Andriushchenko et al., ECCV 2020): score-based, no gradients.

    Parameters
    ----------
    epsilon : float or list of float, default=None
    n_queries : int, default=5000
        Queries per image (AutoAttack's budget).
    p_init : float, default=0.8
        Initial fraction of pixels in a square.
    restarts : int, default=1
        Runs on the images not fooled yet.
    norm : {"linf"}, default="linf"
        Only the linf version is implemented.
    eot_samples : int, default=1
        Expectation over Transformation: gradients averaged over this many draws of a
        stochastic defense (see :class:`robustlearn.attacks.BaseAttack`).
    estimator, surrogate, surface, batch_size, memory_budget, random_state
        See :class:`robustlearn.attacks.BaseAttack`.
    """

    needs_gradient = False

    def __init__(self, epsilon=None, *, n_queries=5000, p_init=0.8, restarts=1, norm="linf",
                 eot_samples=1, estimator=None, surrogate=None, surface="default", batch_size=256,
                 memory_budget=None, random_state=None):
        self.n_queries = n_queries
        self.p_init = p_init
        self.restarts = restarts
        self.norm = norm
        super().__init__(epsilon, estimator=estimator, surrogate=surrogate, surface=surface,
                         batch_size=batch_size,
                         memory_budget=memory_budget, random_state=random_state,
                         eot_samples=eot_samples)

    def _validate_params(self):
        super()._validate_params()
        check_int(self.n_queries, "n_queries", low=1)
        check_float(self.p_init, "p_init", low=0, high=1, low_open=True)
        check_int(self.restarts, "restarts", low=1)
        check_choice(self.norm, "norm", ("linf",))

    def _run_epsilon(self, victim, x, labels, epsilon):
        return square_attack(victim.logits, x, labels, epsilon=epsilon, n_queries=self.n_queries,
                             p_init=self.p_init, restarts=self.restarts)


def square_attack(logits_fn, x, y, *, epsilon, n_queries=5000, p_init=0.8, restarts=1):
    """:func:`square_linf` with restarts on the images still classified correctly."""
    x_adv = x.clone()
    with torch.no_grad():
        robust = logits_fn(x).argmax(1) == y
    for _ in range(restarts):
        idx = robust.nonzero()[:, 0]
        if len(idx) == 0:
            break
        candidate = square_linf(logits_fn, x[idx], y[idx], epsilon=epsilon, n_queries=n_queries,
                                p_init=p_init)
        with torch.no_grad():
            fooled = logits_fn(candidate).argmax(1) != y[idx]
        x_adv[idx[fooled]] = candidate[fooled]
        robust[idx[fooled]] = False
    return x_adv
