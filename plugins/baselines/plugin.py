"""Registers the baseline defenses through the ``robustlearn.plugins`` entry point.

The ``"baseline"`` capability puts a defense in ``robustlearn baselines`` (the
README's main job); its ``_baseline_params`` class attribute, if any, are the
settings that job trains it with.
"""

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
        capabilities=("baseline",),
    )
    register(
        "cnn", CNNClassifier,
        description="Small conv net (undefended reference).",
        paper="-",
        capabilities=("baseline",),
    )
    register(
        "adversarial-training", AdversarialTraining,
        description="PGD adversarial training over the MLP or the CNN.",
        paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, "
        "ICLR 2018",
        capabilities=("baseline",),
    )
