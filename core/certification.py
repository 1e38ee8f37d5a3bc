"""Certified robustness from Lipschitz bounds: the contract and the shared arithmetic.

A defense that can certify sets the ``certified`` tag to the norm of its
certificate (``DefenseTags(certified="linf")``) and implements
``_certified_radius(x) -> radii`` on a tensor batch; :class:`BaseDefense`
then offers ``certified_radius(X)`` and ``certify(X, y, epsilon)``.

A radius ``r`` at ``x`` is a *lower bound*: no perturbation of norm below
``r`` changes the prediction. If every logit difference ``f_c - f_j`` is
``L_cj``-Lipschitz in the threat model's norm, the prediction ``c`` cannot
change within ``min_j (f_c(x) - f_j(x)) / L_cj`` (Tsuzuku, Sato & Sugiyama,
"Lipschitz-Margin Training", NeurIPS 2018, Prop. 1); with a single constant
``L`` for each logit, ``L_cj <= 2 L``.
"""

from __future__ import annotations

import torch


def margin_radius(logits: torch.Tensor, lipschitz) -> torch.Tensor:
    """Certified radius per sample from the logit margins and Lipschitz constants.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, k)
    lipschitz : float, torch.Tensor of shape (k, k)
        A float ``L`` bounds each logit's Lipschitz constant (so every
        difference is ``2 L``-Lipschitz); a (k, k) matrix gives ``L_cj`` for
        the difference ``f_c - f_j`` directly (its diagonal is ignored).

    Returns
    -------
    torch.Tensor of shape (n,)
        ``min_{j != c} (f_c - f_j) / L_cj`` with ``c`` the predicted class (0
        where the constant is not finite).
    """
    logits = logits.detach()
    n, k = logits.shape
    pred = logits.argmax(dim=1)
    top = logits.gather(1, pred[:, None])
    gaps = top - logits  # (n, k), >= 0
    if isinstance(lipschitz, torch.Tensor) and lipschitz.dim() == 2:
        pair = lipschitz.to(logits)[pred]  # (n, k): L_{c j}
    else:
        pair = torch.full_like(logits, 2.0 * float(lipschitz))
    ratio = gaps / pair.clamp_min(1e-12)
    ratio = torch.where(torch.isfinite(pair), ratio, torch.zeros_like(ratio))
    ratio.scatter_(1, pred[:, None], float("inf"))
    if k == 1:
        return torch.full((n,), float("inf"), device=logits.device)
    return ratio.min(dim=1).values


def linf_operator_norm(weight: torch.Tensor) -> torch.Tensor:
    """``||W||_{inf -> inf}``: the largest absolute row sum of a (out, in) matrix."""
    return weight.detach().abs().sum(dim=1).max()


def sequential_linf_lipschitz(linear_layers) -> torch.Tensor:
    """Pairwise linf Lipschitz constants ``L_cj`` of a ReLU network of linear layers.

    For ``f = W_K relu(... relu(W_1 x))`` with 1-Lipschitz, element-wise
    activations, ``|h_k(x) - h_k(x')|_inf <= prod_{i<K} ||W_i||_inf |x - x'|_inf``
    and the last layer's rows give ``L_cj = ||w_c - w_j||_1 prod_{i<K} ||W_i||_inf``.
    Loose (it ignores which units are active) but a real bound.

    Parameters
    ----------
    linear_layers : sequence of torch.nn.Linear
        In forward order; the last maps to the logits.

    Returns
    -------
    torch.Tensor of shape (k, k)
    """
    layers = list(linear_layers)
    if not layers:
        raise ValueError("linear_layers must hold at least the output layer")
    scale = torch.ones((), dtype=layers[-1].weight.dtype, device=layers[-1].weight.device)
    for layer in layers[:-1]:
        scale = scale * linf_operator_norm(layer.weight)
    out = layers[-1].weight.detach()
    pairwise = (out[:, None, :] - out[None, :, :]).abs().sum(dim=2)
    return pairwise * scale
