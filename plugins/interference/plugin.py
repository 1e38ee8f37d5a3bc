"""Registers the interference-network defense through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .estimator import InterferenceClassifier

PAPER = (
    "Xiong et al., Robust and Efficient Interference Neural Networks for Defending Against "
    "Adversarial Attacks in ImageNet, arXiv 2310.05947 (2023)"
)


@hookimpl
def register_defenses(register):
    register(
        "interference", InterferenceClassifier,
        description="Superposes labelled background images and noise, trains on joint "
        "(background, class) labels and votes over random backgrounds and checkpoints.",
        paper=PAPER,
    )
