"""Attractor-network defense (Alipour & SeyyedSalehi, arXiv 2406.10579).

Modules: :mod:`.network` (the autoencoder and its head), :mod:`.eigen_loss`
(L_eigen and the spectrum estimators), :mod:`.objective` (the loss and its
two-phase schedule), :mod:`.dynamics` (iteration to a fixed point, BPDA),
:mod:`.detector` (the correlation test), :mod:`.surfaces` (adaptive-attack
surfaces), :mod:`.estimator` (the classifier), :mod:`.purifier` (the
transformer) and :mod:`.plugin` (registration).
"""

from .estimator import AttractorClassifier
from .purifier import AttractorPurifier

__all__ = ["AttractorClassifier", "AttractorPurifier"]
