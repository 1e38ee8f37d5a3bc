"""Fixtures of the core tests: a registry that is restored after each test."""

import pytest

from robustlearn import registry

from .fake_plugins import SWITCHES


@pytest.fixture
def plugin_env(monkeypatch):
    """Isolate plugin discovery: clear the switches, restore hand-registered plugins, reload.

    Yields ``monkeypatch``; whatever a test patches is undone *before* the
    registry is reloaded, so later tests see the normal registry.
    """
    for variable in SWITCHES:
        monkeypatch.delenv(variable, raising=False)
    extra = list(registry._extra_plugins)
    yield monkeypatch
    monkeypatch.undo()
    registry._extra_plugins[:] = extra
    registry.reload()
