"""Attacks: torch inner loops for training and scikit-learn attack transformers."""

from .gradient import projected_gradient_descent

__all__ = ["projected_gradient_descent"]
