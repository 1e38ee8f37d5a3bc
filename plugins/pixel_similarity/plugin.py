"""Registers the pixel-similarity defense through the ``robustlearn.plugins`` entry point."""

from robustlearn import hookimpl

from .estimator import PixelSimilarityClassifier

PAPER = (
    "Attias, Pehlevan & Obeid, A Brain-Inspired Regularizer for Adversarial Robustness "
    "(v3: Pixel-Based Similarities as an Alternative to Neural Data for Improving "
    "Convolutional Neural Network Adversarial Robustness), arXiv 2410.03952 (2024)"
)


@hookimpl
def register_defenses(register):
    register(
        "pixel-similarity", PixelSimilarityClassifier,
        description="ResNet regularised so its representational similarities of image pairs "
        "match their thresholded pixel similarities (ST_h); evaluated black-box in the paper.",
        paper=PAPER,
    )
