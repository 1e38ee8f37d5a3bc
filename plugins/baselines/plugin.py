"""Registers the baseline defenses through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .adversarial_training import AdversarialTraining
from .cnn import CNNClassifier
from .mlp import MLPClassifier


@hookimpl
def register_defenses(register):
    register(
        "mlp", MLPClassifier,
        description="Plain ReLU multilayer perceptron (undefended reference).",
        paper="-",
        capabilities=("has_detector",),
    )
    register(
        "cnn", CNNClassifier,
        description="Small conv net (undefended reference).",
        paper="-",
        capabilities=("has_detector",),
    )
    register(
        "adversarial-training", AdversarialTraining,
        description="PGD adversarial training over the MLP or the CNN.",
        paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, "
        "ICLR 2018",
        capabilities=("has_detector", "adversarially_trained"),
    )
