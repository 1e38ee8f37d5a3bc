"""Self-Consistent Activation defense (Shah & Raj, arXiv 2308.03956).

Modules: :mod:`.layer` (the SCA layer and its energy), :mod:`.network` (the
classifier network), :mod:`.surfaces` (adaptive-attack surfaces),
:mod:`.estimator` (the scikit-learn classifier) and :mod:`.plugin` (registration).
"""

from .estimator import SCAClassifier
from .layer import SCALayer, sca_macs
from .network import SCANetwork

__all__ = ["SCAClassifier", "SCALayer", "SCANetwork", "sca_macs"]
