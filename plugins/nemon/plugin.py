"""Registers the NEMON defense through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .estimator import NEMONClassifier

PAPER = (
    "Jafarpour, Davydov, Proskurnikov & Bullo, Robust Implicit Networks via Non-Euclidean "
    "Contractions, NeurIPS 2021 (arXiv 2106.03194)"
)


@hookimpl
def register_defenses(register):
    register(
        "nemon", NEMONClassifier,
        description="Implicit (equilibrium) network whose weight matrix has l-infinity "
        "log-norm below 1: unique fixed point, implicit gradients, linf Lipschitz certificate.",
        paper=PAPER,
    )
