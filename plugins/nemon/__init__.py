"""NEMON implicit-network defense (Jafarpour et al., NeurIPS 2021, arXiv 2106.03194).

Modules: :mod:`.network` (the dense and convolutional equilibrium layers, their
parametrisation, solver, Lipschitz bound and regulariser), :mod:`.surfaces`
(audit surfaces: tight implicit, unrolled, intermediate iterates),
:mod:`.estimator` (the classifier) and :mod:`.plugin` (registration).
"""

from .estimator import NEMONClassifier
from .network import ConvNEMON, DenseNEMON

__all__ = ["ConvNEMON", "DenseNEMON", "NEMONClassifier"]
