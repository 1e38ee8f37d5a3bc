"""The hook specifications: one ``register_*`` callback each, documented, and each one works."""

import inspect

import pytest
from sklearn.preprocessing import FunctionTransformer

import robustlearn
from robustlearn import hookspecs, registry
from robustlearn.plugins.baselines import MLPClassifier

from .fake_plugins import plugin_module

HOOKS = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "robustlearn_spec")
)

# A factory per kind, and how to check what make() returns for it.
FACTORIES = {
    "defense": (MLPClassifier, lambda made: isinstance(made, MLPClassifier)),
    "attack": (FunctionTransformer, lambda made: hasattr(made, "transform")),
    "purifier": (FunctionTransformer, lambda made: hasattr(made, "transform")),
    "dataset": (lambda split, data_dir, download: ("X", "y"),
                lambda made: made == ("X", "y")),
}


def test_hooks_are_the_four_register_callbacks():
    assert HOOKS == ["register_attacks", "register_datasets", "register_defenses",
                     "register_purifiers"]
    assert sorted(registry._HOOK_OF_KIND.values()) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_takes_register_and_has_a_one_line_docstring(hook):
    fn = getattr(hookspecs, hook)
    assert list(inspect.signature(fn).parameters) == ["register"]
    doc = inspect.getdoc(fn)
    assert doc and "\n" not in doc.strip()


def test_hookimpl_is_reexported_at_the_top_level():
    assert robustlearn.hookimpl is hookspecs.hookimpl
    assert hookspecs.PROJECT_NAME == "robustlearn" == registry.ENTRY_POINT_GROUP.split(".")[0]


@pytest.mark.parametrize("kind, hook", sorted(registry._HOOK_OF_KIND.items()))
def test_each_hook_registers_a_makeable_thing(plugin_env, kind, hook):
    factory, looks_right = FACTORIES[kind]

    def implementation(register):
        register(f"hooktest-{kind}", factory, description=f"a {kind}", paper="Doe 2026",
                 capabilities=("tested",))

    registry.register_plugin(plugin_module(f"hooktest_{kind}", **{hook: implementation}),
                             name=f"hooktest_{kind}")
    entry = registry.get_registry().get(kind, f"hooktest-{kind}")
    assert (entry.kind, entry.description, entry.paper, entry.capabilities[:1]) == (
        kind, f"a {kind}", "Doe 2026", ("tested",))
    if kind == "defense":  # a defense's tags add their capabilities after the declared ones
        tags = robustlearn.get_defense_tags(entry.factory()).capabilities()
        assert entry.capabilities[1:] == tuple(c for c in tags if c != "tested")
    made = registry.make(kind, f"hooktest-{kind}") if kind != "dataset" else entry.factory(
        "train", None, False)
    assert looks_right(made)
    others = set(registry.KINDS) - {kind}
    assert all(f"hooktest-{kind}" not in registry.get_registry().names(k) for k in others)

