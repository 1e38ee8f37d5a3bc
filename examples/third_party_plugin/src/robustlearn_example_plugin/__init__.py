"""An example third-party robustlearn plugin: the ``nearest-prototype`` defense."""

from .defense import NearestPrototypeClassifier

__all__ = ["NearestPrototypeClassifier"]
__version__ = "0.1.0"
