"""Hook specifications of robustlearn's plugin system.

A plugin is any module (or object) with functions decorated by
:data:`robustlearn.hookimpl` whose names match the hooks below. Each hook
receives a ``register`` callable; the plugin calls it once per thing it
provides::

    register(name, factory, description="...", paper="...", capabilities=(...))

``name`` is the short, unique name users pass to ``make_*``; ``factory`` is a
callable (usually a class) whose keyword arguments are the thing's parameters;
``description`` is one line; ``paper`` cites where the method comes from;
``capabilities`` is a tuple of short strings (for example ``"iterative"`` or
``"has_detector"``) shown by ``robustlearn plugins``.

Plugins are discovered through the ``robustlearn.plugins`` entry-point group,
the same group every built-in plugin uses.
"""

import pluggy

PROJECT_NAME = "robustlearn"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_defenses(register):
    """Register defense estimators: scikit-learn classifiers deriving from ``BaseDefense``."""


@hookspec
def register_attacks(register):
    """Register attacks: factories returning scikit-learn transformers that perturb ``X``."""


@hookspec
def register_purifiers(register):
    """Register purifiers: scikit-learn transformers that clean inputs before a classifier."""


@hookspec
def register_datasets(register):
    """Register datasets: loaders ``loader(split, data_dir, download) -> (X, y)``."""
