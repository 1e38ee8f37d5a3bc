"""The training objective and its two-phase schedule.

L = L_rec + lambda_cls * L_cls + lambda_eig * L_eigen (Alipour & SeyyedSalehi,
arXiv 2406.10579): L_rec is the one-pass reconstruction error, L_cls the
cross-entropy of the head on the code, L_eigen the spectral penalty of
:mod:`.eigen_loss`. L_rec is the squared error summed over the pixels of an
image and averaged over the batch: a per-pixel mean is a few hundredths on
MNIST and is swamped by the cross-entropy, which leaves reconstructions too
poor for the training points to be fixed points. Following Nouri & SeyyedSalehi
(Neural Networks 2023), the network is first trained without L_eigen and then
fine-tuned with it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from .eigen_loss import eigen_loss


@dataclass
class AttractorObjective:
    """Weights and spectrum-estimator settings of the attractor loss.

    Attributes
    ----------
    lambda_cls, lambda_eig : float
        Weights of the classification and eigenvalue terms.
    eigen_method : {"exact", "power", "stochastic"}
    eigen_margin : float
        rho of the hinge.
    eigen_batch_size : int
        L_eigen is computed on the first ``eigen_batch_size`` points of each
        (shuffled) mini-batch, since it costs far more than the other terms.
    power_iterations, n_probes : int
        Settings of the ``power`` and ``stochastic`` estimators.
    eigen_active : bool
        False during pre-training, True during fine-tuning.
    """

    lambda_cls: float = 1.0
    lambda_eig: float = 0.1
    eigen_method: str = "exact"
    eigen_margin: float = 0.9
    eigen_batch_size: int = 16
    power_iterations: int = 10
    n_probes: int = 4
    eigen_active: bool = False

    @classmethod
    def from_estimator(cls, estimator, *, lambda_cls):
        """The objective configured by an attractor classifier's or purifier's parameters.

        Reads the L_eigen parameters of ``estimator`` (``lambda_eig``, ``eigen_method``,
        ``eigen_margin``, ``eigen_batch_size``, ``power_iterations``, ``n_probes``);
        ``lambda_cls`` weighs the classification term (0 for a purifier, which has no head).
        """
        return cls(
            lambda_cls=float(lambda_cls), lambda_eig=float(estimator.lambda_eig),
            eigen_method=estimator.eigen_method, eigen_margin=float(estimator.eigen_margin),
            eigen_batch_size=int(estimator.eigen_batch_size),
            power_iterations=int(estimator.power_iterations), n_probes=int(estimator.n_probes),
        )

    def __call__(self, network, X, y=None):
        """``(loss, logits)`` on one mini-batch of images; ``y=None`` drops the classifier term."""
        flat = X.flatten(1)
        code = network.encode(flat)
        reconstruction = network.decode(code)
        logits = network.head(code)
        loss = (reconstruction - flat).pow(2).sum(dim=1).mean()
        if y is not None and self.lambda_cls > 0:
            loss = loss + self.lambda_cls * F.cross_entropy(logits, y)
        if self.eigen_active and self.lambda_eig > 0:
            sub = flat[: self.eigen_batch_size]
            loss = loss + self.lambda_eig * eigen_loss(
                network, sub, method=self.eigen_method, margin=self.eigen_margin,
                power_iterations=self.power_iterations, n_probes=self.n_probes,
            )
        return loss, logits


def train_in_phases(net, objective: AttractorObjective, X, y, finetune_epochs: int) -> None:
    """Pre-train ``net`` for its ``max_epochs`` without L_eigen, then fine-tune with it.

    The fine-tuning phase runs ``finetune_epochs`` more epochs whatever
    ``lambda_eig`` is, so a model with ``lambda_eig=0`` is the same schedule
    without the eigenvalue term (the paper's baseline).
    """
    objective.eigen_active = False
    net.fit(X, y)
    if finetune_epochs > 0:
        objective.eigen_active = True
        try:
            net.partial_fit(X, y, epochs=finetune_epochs)
        finally:
            objective.eigen_active = False
        if objective.lambda_eig > 0:
            stride = max(1, len(X) // COLLAPSE_CHECK_SIZE)  # spread over classes if X is sorted
            warn_if_collapsed(net.module_, X[::stride][:COLLAPSE_CHECK_SIZE], objective)


#: Training points on which :func:`warn_if_collapsed` compares outputs with inputs.
COLLAPSE_CHECK_SIZE = 256


def warn_if_collapsed(network, X, objective: AttractorObjective, min_spread=0.05) -> None:
    """Warn when the autoencoder's outputs barely vary across its training inputs.

    A constant map has a zero Jacobian, so it is the trivial minimiser of
    L_eigen; an overweighted eigenvalue term finds it (on 1000 MNIST digits,
    200 pre-training epochs and ``lambda_eig=1`` did). The spread is the total
    per-pixel variance of f(x) over that of x.
    """
    if len(X) < 2:
        return
    network.eval()
    flat = X.flatten(1).to(next(network.parameters()).device)
    with torch.no_grad():
        spread = float(network.step(flat).var(dim=0).sum() / flat.var(dim=0).sum().clamp_min(1e-12))
    if spread < min_spread:
        warnings.warn(
            f"fine-tuning with L_eigen collapsed the autoencoder to a near-constant map "
            f"(its outputs vary {spread:.1%} as much as its training inputs); lower "
            f"lambda_eig (now {objective.lambda_eig}) or raise eigen_margin "
            f"(now {objective.eigen_margin}), or pre-train for fewer epochs",
            ConvergenceWarning, stacklevel=2,
        )
