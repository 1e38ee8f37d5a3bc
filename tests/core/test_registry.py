"""Plugin discovery: listing, making, unknown names, broken plugins and the environment switches."""

import warnings
from importlib import metadata

import pytest

import robustlearn
from robustlearn import registry
from robustlearn.plugins.baselines import AdversarialTraining, CNNClassifier, MLPClassifier

from .fake_plugins import (
    FakeEntryPoint,
    add_entry_points,
    defenses_plugin,
    plugin_module,
    raising_plugin,
)

BUILTIN_DEFENSES = {"mlp": MLPClassifier, "cnn": CNNClassifier,
                    "adversarial-training": AdversarialTraining}
BUILTIN_DATASETS = {"digits", "mnist", "fashion-mnist", "cifar10", "cifar10-gray"}


def _plugin_warnings(record):
    return [w for w in record if issubclass(w.category, registry.PluginWarning)]


def _reload_recording():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        reg = registry.reload()
    return reg, _plugin_warnings(record)


# -- listing and making ----------------------------------------------------------------

def test_builtin_defenses_and_datasets_are_listed():
    assert set(BUILTIN_DEFENSES) <= set(robustlearn.list_defenses())
    assert BUILTIN_DATASETS <= set(robustlearn.list_datasets())
    assert robustlearn.list_defenses() == sorted(robustlearn.list_defenses())
    for kind in registry.KINDS:
        assert isinstance(registry.get_registry().names(kind), list)


def test_builtins_come_from_the_entry_point_group():
    for name, cls in BUILTIN_DEFENSES.items():
        entry = registry.get_registry().get("defense", name)
        assert entry.factory is cls
        assert entry.kind == "defense" and entry.plugin == "baselines"
        assert entry.distribution == "robustlearn"
        assert entry.version == robustlearn.__version__
        assert entry.description and entry.paper
    assert registry.get_registry().get("dataset", "mnist").plugin == "datasets"
    assert registry.get_registry().broken == []


def test_make_defense_passes_parameters():
    est = robustlearn.make_defense("mlp", hidden_layer_sizes=(7,), max_epochs=3)
    assert isinstance(est, MLPClassifier)
    assert est.hidden_layer_sizes == (7,) and est.max_epochs == 3
    assert registry.make("defense", "cnn", hidden=5).hidden == 5


def test_get_registry_is_cached_and_reload_rebuilds():
    first = registry.get_registry()
    assert registry.get_registry() is first
    again = registry.reload()
    assert again is not first and again.names("defense") == first.names("defense")


# -- unknown names -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "kind, typo, suggestion",
    [("defense", "mpl", "mlp"), ("defense", "adversarial_training", "adversarial-training"),
     ("dataset", "fashion_mnist", "fashion-mnist"), ("dataset", "cifar", "cifar10")],
)
def test_unknown_name_suggests_the_closest(kind, typo, suggestion):
    with pytest.raises(ValueError, match=rf"unknown {kind} '{typo}'\. Did you mean '{suggestion}'"):
        registry.make(kind, typo)


def test_unknown_name_without_a_close_match_lists_known_names():
    with pytest.raises(ValueError, match="Known defenses: .*mlp") as info:
        robustlearn.make_defense("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_bad_kind_and_name_types():
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.make("model", "mlp")
    with pytest.raises(TypeError, match="defense name must be a str"):
        registry.get_registry().get("defense", 3)


# -- broken plugins ------------------------------------------------------------------

def test_plugin_that_raises_on_import_is_skipped_with_one_warning(plugin_env):
    add_entry_points(plugin_env, FakeEntryPoint("exploding", ImportError("no module named x"),
                                                dist="exploding-dist", version="1.2"))
    reg, caught = _reload_recording()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'exploding'" in message and "'exploding-dist'" in message
    assert "no module named x" in message
    assert [(b.plugin, b.distribution, b.version) for b in reg.broken] == [
        ("exploding", "exploding-dist", "1.2")]
    assert "import failed" in reg.broken[0].error
    assert set(BUILTIN_DEFENSES) <= set(reg.names("defense"))  # the platform still works


def test_real_entry_point_whose_module_raises_at_import(plugin_env, tmp_path):
    (tmp_path / "rl_explodes_on_import.py").write_text("raise RuntimeError('kaboom at import')\n")
    plugin_env.syspath_prepend(str(tmp_path))
    entry_point = metadata.EntryPoint(name="explodes", value="rl_explodes_on_import",
                                      group=registry.ENTRY_POINT_GROUP)
    add_entry_points(plugin_env, entry_point)
    reg, caught = _reload_recording()
    assert len(caught) == 1 and "kaboom at import" in str(caught[0].message)
    assert [(b.plugin, b.distribution) for b in reg.broken] == [("explodes", "-")]
    assert set(BUILTIN_DEFENSES) <= set(reg.names("defense"))


def test_plugin_whose_hook_raises_registers_nothing(plugin_env):
    add_entry_points(plugin_env, FakeEntryPoint("faulty", raising_plugin("faulty")))
    reg, caught = _reload_recording()
    assert len(caught) == 1 and "register_defenses raised" in str(caught[0].message)
    assert "hook exploded" in reg.broken[0].error
    # what it registered before raising is dropped too
    assert "faulty-partial" not in reg.names("defense")
    assert "faulty" not in dict(reg.plugin_manager.list_name_plugin())
    assert set(BUILTIN_DEFENSES) <= set(reg.names("defense"))


def test_plugin_registering_a_bad_name_is_broken(plugin_env):
    def register_datasets(register):
        register("", lambda split, data_dir, download: None)

    add_entry_points(plugin_env,
                     FakeEntryPoint("badname", plugin_module("badname",
                                                             register_datasets=register_datasets)))
    reg, caught = _reload_recording()
    assert len(caught) == 1 and "non-empty str" in reg.broken[0].error


def test_duplicate_name_skips_the_whole_later_plugin(plugin_env):
    add_entry_points(plugin_env, FakeEntryPoint("zz-dupe", defenses_plugin("zz-dupe", "fresh",
                                                                           "mlp")))
    reg, caught = _reload_recording()
    assert len(caught) == 1
    assert "defense name 'mlp' is already registered by plugin 'baselines'" in str(
        caught[0].message)
    assert reg.get("defense", "mlp").factory is MLPClassifier
    assert "fresh" not in reg.names("defense")  # all or nothing
    assert reg.broken[0].plugin == "zz-dupe"


def test_builtins_win_over_a_plugin_whose_name_sorts_first(plugin_env):
    """A third-party entry point named to load before the built-ins cannot take ``mlp``."""
    add_entry_points(plugin_env, FakeEntryPoint("aaa-first", defenses_plugin("aaa-first", "mlp"),
                                                dist="aaa-dist"))
    reg, caught = _reload_recording()
    assert reg.get("defense", "mlp").factory is MLPClassifier
    assert {"cnn", "adversarial-training"} <= set(reg.names("defense"))
    assert [b.plugin for b in reg.broken] == ["aaa-first"]  # the newcomer, not "baselines"
    assert len(caught) == 1 and "'aaa-first'" in str(caught[0].message)
    assert "already registered by plugin 'baselines'" in str(caught[0].message)


def test_good_fake_entry_point_is_discovered_with_its_distribution(plugin_env):
    add_entry_points(plugin_env, FakeEntryPoint("extra", defenses_plugin("extra", "extra-mlp"),
                                                dist="extra-dist", version="0.3"))
    reg, caught = _reload_recording()
    assert caught == []
    entry = reg.get("defense", "extra-mlp")
    assert (entry.plugin, entry.distribution, entry.version) == ("extra", "extra-dist", "0.3")
    assert entry.capabilities[0] == "has_detector" and entry.paper == "Test 2026"


def test_register_plugin_by_hand_and_unregister(plugin_env):
    registry.register_plugin(defenses_plugin("by_hand", "hand-made"), name="by_hand")
    entry = registry.get_registry().get("defense", "hand-made")
    assert (entry.plugin, entry.distribution) == ("by_hand", "-")
    assert isinstance(robustlearn.make_defense("hand-made"), MLPClassifier)
    registry.unregister_plugin("by_hand")
    assert "hand-made" not in robustlearn.list_defenses()


def test_hand_registered_duplicate_is_broken(plugin_env):
    with pytest.warns(registry.PluginWarning, match="'cnn' is already registered"):
        registry.register_plugin(defenses_plugin("copycat", "cnn"), name="copycat")
    assert registry.get_registry().get("defense", "cnn").factory is CNNClassifier


# -- switches ------------------------------------------------------------------------

def test_strict_mode_raises_plugin_error_on_import_failure(plugin_env):
    plugin_env.setenv("ROBUSTLEARN_STRICT_PLUGINS", "1")
    add_entry_points(plugin_env, FakeEntryPoint("exploding", ImportError("boom")))
    with pytest.raises(registry.PluginError, match="'exploding'.*boom"):
        registry.reload()


def test_strict_mode_raises_on_duplicate_and_raising_hook(plugin_env):
    plugin_env.setenv("ROBUSTLEARN_STRICT_PLUGINS", "1")
    add_entry_points(plugin_env, FakeEntryPoint("zz-dupe", defenses_plugin("zz-dupe", "mlp")))
    with pytest.raises(registry.PluginError, match="already registered"):
        registry.reload()
    add_entry_points(plugin_env, FakeEntryPoint("faulty", raising_plugin("faulty")))
    with pytest.raises(registry.PluginError, match="hook exploded"):
        registry.reload()


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_strict_mode_off_values_only_warn(plugin_env, value):
    plugin_env.setenv("ROBUSTLEARN_STRICT_PLUGINS", value)
    add_entry_points(plugin_env, FakeEntryPoint("exploding", ImportError("boom")))
    _, caught = _reload_recording()
    assert len(caught) == 1


def test_disable_autoload_loads_no_entry_points(plugin_env):
    plugin_env.setenv("ROBUSTLEARN_DISABLE_PLUGIN_AUTOLOAD", "1")
    add_entry_points(plugin_env, FakeEntryPoint("exploding", ImportError("boom")))
    reg, caught = _reload_recording()
    assert caught == [] and reg.broken == []
    assert all(reg.names(kind) == [] for kind in registry.KINDS)
    assert reg.plugin_manager.get_plugins() == set()
    with pytest.raises(ValueError, match="No defense is registered"):
        robustlearn.make_defense("mlp")
    # plugins added by hand still load
    registry.register_plugin(defenses_plugin("by_hand", "hand-made"), name="by_hand")
    assert robustlearn.list_defenses() == ["hand-made"]


def test_trace_prints_hook_calls(plugin_env, capsys):
    plugin_env.setenv("ROBUSTLEARN_TRACE_PLUGINS", "1")
    registry.reload()
    err = capsys.readouterr().err
    for hook in ("register_defenses", "register_datasets", "register_attacks"):
        assert f"[robustlearn] calling {hook} on [" in err
    assert "calling register_defenses on ['baselines']" in err
    assert "register_defenses returned" in err


def test_no_trace_by_default(plugin_env, capsys):
    registry.reload()
    assert "[robustlearn]" not in capsys.readouterr().err


def test_plugin_with_a_misspelt_hook_is_broken_not_silent(plugin_env):
    import types
    import warnings

    from robustlearn import hookimpl, registry

    @hookimpl
    def register_model(register):  # typo of register_defenses
        register("never", object)

    plugin = types.SimpleNamespace(register_model=register_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.register_plugin(plugin, name="typo-plugin")
    broken = {b.plugin: b.error for b in registry.get_registry().broken}
    assert "typo-plugin" in broken and "register_model" in broken["typo-plugin"]
    assert any("typo-plugin" in str(w.message) for w in caught)
    registry.unregister_plugin("typo-plugin")
