"""robustlearn: adversarial-robustness defenses as scikit-learn estimators.

Defenses are scikit-learn classifiers (:class:`BaseDefense`), attacks are
scikit-learn transformers, and both come from plugins discovered through the
``robustlearn.plugins`` entry-point group (see :mod:`robustlearn.hookspecs`).
"""

from . import datasets, metrics
from .attacks import make_attack
from .audit import audit
from .defense import BaseDefense
from .evaluation import evaluate
from .hookspecs import hookimpl
from .registry import (
    list_attacks,
    list_datasets,
    list_defenses,
    list_purifiers,
    make_defense,
    make_purifier,
)
from .surfaces import Surface
from .tags import DefenseTags, get_defense_tags

__version__ = "0.1.0"


def load_dataset(name, split="train", n=None, data_dir=None, random_state=None, download=False):
    """Load a registered dataset; see :func:`robustlearn.datasets.load`."""
    from .datasets import load

    return load(name, split=split, n=n, data_dir=data_dir, random_state=random_state,
                download=download)


__all__ = [
    "BaseDefense",
    "DefenseTags",
    "Surface",
    "__version__",
    "audit",
    "datasets",
    "evaluate",
    "get_defense_tags",
    "hookimpl",
    "list_attacks",
    "list_datasets",
    "list_defenses",
    "list_purifiers",
    "load_dataset",
    "make_attack",
    "make_defense",
    "make_purifier",
    "metrics",
]
