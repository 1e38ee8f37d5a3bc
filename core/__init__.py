"""robustlearn: adversarial-robustness defenses as scikit-learn estimators.

Defenses are scikit-learn classifiers (:class:`BaseDefense`), attacks are
scikit-learn transformers, and both come from plugins discovered through the
``robustlearn.plugins`` entry-point group (see :mod:`robustlearn.hookspecs`).

The public names below are imported on first use (PEP 562), so that
``import robustlearn`` and ``robustlearn --help`` do not pay for torch,
scikit-learn and Foolbox until something needs them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> (module, attribute or None for the module itself)
_LAZY = {
    "datasets": (".datasets", None),
    "metrics": (".metrics", None),
    "make_attack": (".attacks", "make_attack"),
    "BaseDefense": (".defense", "BaseDefense"),
    "evaluate": (".evaluation", "evaluate"),
    "hookimpl": (".hookspecs", "hookimpl"),
    "list_attacks": (".registry", "list_attacks"),
    "list_datasets": (".registry", "list_datasets"),
    "list_defenses": (".registry", "list_defenses"),
    "list_purifiers": (".registry", "list_purifiers"),
    "make_defense": (".registry", "make_defense"),
    "make_purifier": (".registry", "make_purifier"),
    "DefenseTags": (".tags", "DefenseTags"),
    "get_defense_tags": (".tags", "get_defense_tags"),
    "Surface": (".surfaces", "Surface"),
    "audit": (".auditing", "audit"),
    "save": (".model_file", "save"),
    "load": (".model_file", "load"),
    "TorchClassifier": (".torch_classifier", "TorchClassifier"),
    "load_pretrained": (".torch_classifier", "load_pretrained"),
    "wrap": (".torch_classifier", "wrap"),
}


def __getattr__(name):
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'robustlearn' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def load_dataset(name, split="train", n=None, data_dir=None, random_state=None, download=False):
    """Load a registered dataset; see :func:`robustlearn.datasets.load`."""
    from .datasets import load

    return load(name, split=split, n=n, data_dir=data_dir, random_state=random_state,
                download=download)


__all__ = [
    "BaseDefense",
    "DefenseTags",
    "Surface",
    "TorchClassifier",
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
    "load",
    "load_dataset",
    "load_pretrained",
    "make_attack",
    "make_defense",
    "make_purifier",
    "metrics",
    "save",
    "wrap",
]
