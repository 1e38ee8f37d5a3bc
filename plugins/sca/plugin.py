"""Registers the SCA defense through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .estimator import SCAClassifier

PAPER = (
    "Shah & Raj, Fixed Inter-Neuron Covariability Induces Adversarial Robustness, "
    "arXiv 2308.03956 (2023)"
)


@hookimpl
def register_defenses(register):
    register(
        "sca", SCAClassifier,
        description="Self-Consistent Activation layers: T clipped gradient steps on an energy "
        "that pulls activity towards a learned, then fixed, inter-neuron covariability.",
        paper=PAPER,
    )
