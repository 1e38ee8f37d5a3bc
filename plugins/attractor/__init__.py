"""Attractor-network defense (arXiv 2406.10579)."""
