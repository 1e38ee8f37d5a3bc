"""Reference models every defense is compared to: a plain MLP, a small CNN and
PGD adversarial training over either."""

from .adversarial_training import AdversarialTraining
from .cnn import CNNClassifier
from .mlp import MLPClassifier

__all__ = ["AdversarialTraining", "CNNClassifier", "MLPClassifier"]
