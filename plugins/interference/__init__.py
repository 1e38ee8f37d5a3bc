"""Interference neural networks (Xiong et al., arXiv 2310.05947).

Modules: :mod:`.pipeline` (noise, superposition, squash, joint labels, votes),
:mod:`.backgrounds` (the labelled background images), :mod:`.network` (the
backbone), :mod:`.checkpoints` (snapshots voted over), :mod:`.draws` (the
reproducible random draws of prediction), :mod:`.estimator` (the classifier)
and :mod:`.plugin` (registration).
"""

from .estimator import InterferenceClassifier

__all__ = ["InterferenceClassifier"]
