"""Registers the attractor defense and purifier through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .estimator import AttractorClassifier
from .purifier import AttractorPurifier

PAPER = (
    "Alipour & SeyyedSalehi, Robust Image Classification in the Presence of "
    "Out-of-Distribution and Adversarial Samples Using Attractors in Neural Networks, "
    "arXiv 2406.10579 (2024)"
)


@hookimpl
def register_defenses(register):
    register(
        "attractor", AttractorClassifier,
        description="Autoencoder trained with an eigenvalue loss so training points are "
        "attractors; classifies the fixed point, flags low input/attractor correlation.",
        paper=PAPER,
    )


@hookimpl
def register_purifiers(register):
    register(
        "attractor", AttractorPurifier,
        description="Iterates an attractor autoencoder on its input and returns the fixed point.",
        paper=PAPER,
        capabilities=("iterative",),
    )
