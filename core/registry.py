"""Plugin discovery and the registry of defenses, attacks, purifiers and datasets.

Entry points of the ``robustlearn.plugins`` group are loaded one at a time: a
plugin that fails to import, whose hook raises, or that registers a name
already taken is skipped with one warning naming the plugin, its distribution
and the error, and is listed as broken. The built-in plugins load first, so a
name they register always stays theirs. Environment switches:

``ROBUSTLEARN_STRICT_PLUGINS=1``
    raise instead of warning (for plugin authors).
``ROBUSTLEARN_DISABLE_PLUGIN_AUTOLOAD=1``
    load no entry points (plugins can still be added with :func:`register_plugin`).
``ROBUSTLEARN_TRACE_PLUGINS=1``
    print every hook call and its result.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "robustlearn.plugins"
KINDS = ("defense", "attack", "purifier", "dataset")
_HOOK_OF_KIND = {
    "defense": "register_defenses",
    "attack": "register_attacks",
    "purifier": "register_purifiers",
    "dataset": "register_datasets",
}


class PluginError(RuntimeError):
    """A plugin failed to load or register (raised only in strict mode)."""


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to load or register."""


@dataclass(frozen=True)
class Registration:
    """One thing a plugin registered.

    Attributes
    ----------
    kind : {"defense", "attack", "purifier", "dataset"}
    name : str
        Unique name within its kind.
    factory : callable
        Called with keyword parameters to make the thing.
    description : str
        One line.
    paper : str
        Citation of the method, empty for none.
    capabilities : tuple of str
        Short tags such as ``"iterative"`` or ``"has_detector"``.
    plugin : str
        Name of the plugin that registered it.
    distribution : str
        Installed distribution providing the plugin (``"-"`` when unknown).
    version : str
        Version of that distribution (``"-"`` when unknown).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    paper: str = ""
    capabilities: tuple = ()
    plugin: str = "-"
    distribution: str = "-"
    version: str = "-"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that was skipped, with the reason."""

    plugin: str
    distribution: str
    version: str
    error: str


@dataclass
class Registry:
    """Registered things by kind and name, plus the plugins that failed."""

    entries: dict = field(default_factory=lambda: {kind: {} for kind in KINDS})
    broken: list = field(default_factory=list)
    plugin_manager: pluggy.PluginManager | None = None

    def get(self, kind: str, name: str) -> Registration:
        """Return the registration ``name`` of ``kind``; unknown names raise ``ValueError``."""
        _check_kind(kind)
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}")
        try:
            return self.entries[kind][name]
        except KeyError:
            raise ValueError(_unknown_name_message(kind, name, self.entries[kind])) from None

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        _check_kind(kind)
        return sorted(self.entries[kind])


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _unknown_name_message(kind, name, known):
    message = f"unknown {kind} {name!r}."
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    if close:
        message += f" Did you mean {close[0]!r}?"
    if known:
        message += f" Known {kind}s: {', '.join(sorted(known))}."
    else:
        message += f" No {kind} is registered."
    return message


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


_lock = threading.RLock()
_registry: Registry | None = None
_extra_plugins: list = []


def _new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if _env_flag("ROBUSTLEARN_TRACE_PLUGINS"):

        def before(hook_name, hook_impls, kwargs):
            names = [impl.plugin_name for impl in hook_impls]
            print(f"[robustlearn] calling {hook_name} on {names}", file=sys.stderr)

        def after(outcome, hook_name, hook_impls, kwargs):
            print(f"[robustlearn] {hook_name} returned {outcome.get_result()!r}", file=sys.stderr)

        pm.add_hookcall_monitoring(before, after)
    return pm


def _fail(registry: Registry, plugin: str, dist: str, version: str, error: str) -> None:
    registry.broken.append(BrokenPlugin(plugin, dist, version, error))
    message = f"robustlearn plugin {plugin!r} (distribution {dist!r}) was skipped: {error}"
    if _env_flag("ROBUSTLEARN_STRICT_PLUGINS"):
        raise PluginError(message)
    warnings.warn(message, PluginWarning, stacklevel=3)


def _tag_capabilities(factory) -> tuple:
    """Capabilities read from the tags of a defense built with its defaults (none if it can't be).

    Building an estimator only stores its parameters, so this is cheap; the tags
    are the one source of truth for what a defense can do, and the registry
    lists them so that ``robustlearn plugins`` and the benchmark see them.
    """
    try:
        getter = getattr(factory(), "__robustlearn_tags__", None)
        return getter().capabilities() if getter is not None else ()
    except Exception:  # noqa: BLE001 - a factory that needs arguments declares by hand
        return ()


def _collect(registry: Registry, pm, plugin, plugin_name, dist, version) -> None:
    """Call each hook of one plugin in isolation and record what it registers."""
    staged = []
    others = [p for p in pm.get_plugins() if p is not plugin]
    for kind, hook_name in _HOOK_OF_KIND.items():

        def register(name, factory, description="", paper="", capabilities=(), _kind=kind):
            if not isinstance(name, str) or not name:
                raise TypeError(f"registered {_kind} name must be a non-empty str, got {name!r}")
            if not callable(factory):
                raise TypeError(f"factory of {_kind} {name!r} must be callable")
            capabilities = tuple(capabilities)
            if _kind == "defense":
                capabilities += tuple(c for c in _tag_capabilities(factory)
                                      if c not in capabilities)
            staged.append(
                Registration(
                    _kind, name, factory, description, paper, capabilities,
                    plugin_name, dist, version,
                )
            )

        caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            caller(register=register)
        except Exception as exc:  # noqa: BLE001 - any plugin bug must be isolated
            pm.unregister(plugin)
            _fail(registry, plugin_name, dist, version, f"{hook_name} raised {exc!r}")
            return
    for reg in staged:
        taken = registry.entries[reg.kind].get(reg.name)
        if taken is not None:
            pm.unregister(plugin)
            _fail(
                registry, plugin_name, dist, version,
                f"{reg.kind} name {reg.name!r} is already registered by plugin {taken.plugin!r}",
            )
            return
    for reg in staged:
        registry.entries[reg.kind][reg.name] = reg


def _register_checked(registry: Registry, pm, plugin, name, dist, version) -> bool:
    """Register ``plugin`` with pluggy; a misspelt hook name makes it broken, not silent."""
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001
        _fail(registry, name, dist, version, f"registration failed: {exc!r}")
        return False
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        _fail(registry, name, dist, version, f"unknown hook: {exc}")
        return False
    return True


def _is_builtin(ep) -> bool:
    """Whether an entry point is one of robustlearn's own plugins."""
    dist = getattr(getattr(ep, "dist", None), "name", None)
    return dist in (None, "robustlearn") and ep.value.startswith("robustlearn.")


def _load(registry: Registry) -> None:
    pm = registry.plugin_manager
    if not _env_flag("ROBUSTLEARN_DISABLE_PLUGIN_AUTOLOAD"):
        # Built-ins load first, so a third-party plugin can never take a built-in's name:
        # the newcomer is the one reported broken, whatever its entry-point name sorts as.
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (not _is_builtin(e), e.name))
        seen = set()
        for ep in eps:
            dist = getattr(ep.dist, "name", None) or "-"
            version = getattr(ep.dist, "version", None) or "-"
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001
                _fail(registry, ep.name, dist, version, f"import failed: {exc!r}")
                continue
            if not _register_checked(registry, pm, plugin, ep.name, dist, version):
                continue
            _collect(registry, pm, plugin, ep.name, dist, version)
    for plugin, name in _extra_plugins:
        if not _register_checked(registry, pm, plugin, name, "-", "-"):
            continue
        _collect(registry, pm, plugin, name, "-", "-")


def get_registry() -> Registry:
    """Return the process-wide registry, discovering plugins on first use."""
    global _registry
    with _lock:
        if _registry is None:
            registry = Registry(plugin_manager=_new_plugin_manager())
            _load(registry)
            _registry = registry
        return _registry


def reload() -> Registry:
    """Forget the registry and discover plugins again (after installing one, or in tests)."""
    global _registry
    with _lock:
        _registry = None
        return get_registry()


def register_plugin(plugin, name: str | None = None) -> None:
    """Register a plugin object (a module or class with hook implementations) by hand.

    Parameters
    ----------
    plugin : module or object
        Holds functions decorated with :data:`robustlearn.hookimpl`.
    name : str, optional
        Plugin name; defaults to the object's ``__name__``.
    """
    name = name or getattr(plugin, "__name__", None) or repr(plugin)
    with _lock:
        _extra_plugins.append((plugin, name))
        reload()


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with :func:`register_plugin`."""
    with _lock:
        _extra_plugins[:] = [(p, n) for p, n in _extra_plugins if n != name]
        reload()


def list_registrations(kind: str) -> list[Registration]:
    """All registrations of ``kind``, sorted by name."""
    registry = get_registry()
    return [registry.entries[kind][n] for n in registry.names(kind)]


def make(kind: str, name: str, **params):
    """Make the thing registered as ``name`` of ``kind`` with ``params``."""
    return get_registry().get(kind, name).factory(**params)


def list_defenses() -> list[str]:
    """Names of the registered defenses."""
    return get_registry().names("defense")


def list_attacks() -> list[str]:
    """Names of the registered attacks."""
    return get_registry().names("attack")


def list_purifiers() -> list[str]:
    """Names of the registered purifiers."""
    return get_registry().names("purifier")


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return get_registry().names("dataset")


def make_defense(name: str, **params):
    """Make the defense registered as ``name``, e.g. ``make_defense("mlp", max_epochs=5)``."""
    return make("defense", name, **params)


def make_purifier(name: str, **params):
    """Make the purifier transformer registered as ``name``."""
    return make("purifier", name, **params)
