"""Fake plugins and entry points for registry tests, and a fixture-friendly restore helper."""

from __future__ import annotations

import types
from importlib import metadata

import pytest

import robustlearn
from robustlearn import registry
from robustlearn.plugins.baselines import MLPClassifier

SWITCHES = (
    "ROBUSTLEARN_STRICT_PLUGINS",
    "ROBUSTLEARN_DISABLE_PLUGIN_AUTOLOAD",
    "ROBUSTLEARN_TRACE_PLUGINS",
)


class FakeEntryPoint:
    """Stands in for an ``importlib.metadata.EntryPoint`` of a fake distribution.

    ``target`` is what ``load()`` returns, or an exception it raises.
    """

    def __init__(self, name, target, dist="fake-dist", version="9.9"):
        self.name = name
        self.value = f"fake_{name}_module"
        self.group = registry.ENTRY_POINT_GROUP
        self.dist = types.SimpleNamespace(name=dist, version=version)
        self._target = target

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


def add_entry_points(monkeypatch, *fakes):
    """Make registry discovery see the installed entry points plus ``fakes``."""
    real = metadata.entry_points

    def entry_points(**selection):
        found = list(real(**selection))
        if selection.get("group") == registry.ENTRY_POINT_GROUP:
            found += list(fakes)
        return found

    monkeypatch.setattr(registry, "metadata", types.SimpleNamespace(entry_points=entry_points))


def reload_with_broken_plugin(monkeypatch):
    """Reload the registry with a plugin that fails to import, expecting its warning.

    The plugin is ``exploding`` (distribution ``exploding-dist`` 0.0.1); its
    error is "no module named zz".
    """
    add_entry_points(monkeypatch, FakeEntryPoint("exploding", ImportError("no module named zz"),
                                                 dist="exploding-dist", version="0.0.1"))
    with pytest.warns(registry.PluginWarning):
        registry.reload()


def plugin_module(name, **hooks):
    """A module-like plugin whose attributes are the given hook implementations."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, robustlearn.hookimpl(function))
    return module


def defenses_plugin(name, *defense_names, factory=MLPClassifier):
    """A plugin registering each of ``defense_names`` with ``factory``."""

    def register_defenses(register):
        for defense in defense_names:
            register(defense, factory, description=f"{defense} from {name}", paper="Test 2026",
                     capabilities=("has_detector",))

    return plugin_module(name, register_defenses=register_defenses)


def raising_plugin(name, hook="register_defenses"):
    """A plugin registering one defense and then raising ``RuntimeError`` in ``hook``."""

    def hook_function(register):
        register(f"{name}-partial", MLPClassifier)
        raise RuntimeError("hook exploded")

    return plugin_module(name, **{hook: hook_function})
