"""Pixel-similarity regulariser ST_h (Attias, Pehlevan & Obeid, arXiv 2410.03952)."""

from .estimator import PixelSimilarityClassifier, similarity_loss, stretched
from .network import GaussianBlur, SimilarityResNet
from .selection import GaussianNoiseScorer, R0U0Refit, r0_u0_scoring
from .targets import pixel_similarity_matrix, threshold_targets

__all__ = [
    "GaussianBlur",
    "GaussianNoiseScorer",
    "PixelSimilarityClassifier",
    "R0U0Refit",
    "SimilarityResNet",
    "pixel_similarity_matrix",
    "r0_u0_scoring",
    "similarity_loss",
    "stretched",
    "threshold_targets",
]
