"""The example third-party plugin, installed into this environment like any other package.

The session fixture pip-installs ``examples/third_party_plugin`` (a separate
distribution, ``robustlearn-example-plugin``) and uninstalls it at the end.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn import registry
from robustlearn.estimator_checks import check_defense, fast_instance

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_plugin"
DISTRIBUTION = "robustlearn-example-plugin"
NAME = "nearest-prototype"


def _pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300)


def _installed() -> bool:
    try:
        metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory):
    """Install the example plugin (unless it already is), reload the registry, clean up after."""
    was_installed = _installed()
    if not was_installed:
        # build from a copy so that no build/ or egg-info/ lands in the checkout
        source = tmp_path_factory.mktemp("example") / "third_party_plugin"
        shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        result = _pip("install", "--no-deps", "--no-build-isolation", "--quiet", str(source))
        assert result.returncode == 0, result.stdout + result.stderr
    importlib.invalidate_caches()
    registry.reload()
    yield importlib.import_module("robustlearn_example_plugin")
    if not was_installed:
        result = _pip("uninstall", "--yes", DISTRIBUTION)
        assert result.returncode == 0, result.stdout + result.stderr
        for module in [m for m in sys.modules if m.startswith("robustlearn_example_plugin")]:
            del sys.modules[module]
        importlib.invalidate_caches()
    registry.reload()


def test_discovered_through_the_entry_point(example_plugin):
    assert NAME in robustlearn.list_defenses()
    entry = registry.get_registry().get("defense", NAME)
    assert entry.factory is example_plugin.NearestPrototypeClassifier
    assert (entry.plugin, entry.distribution, entry.version) == ("example", DISTRIBUTION,
                                                                "0.1.0")
    assert "Prototypical Networks" in entry.paper
    assert registry.get_registry().broken == []


def test_listed_by_the_cli(example_plugin):
    script = shutil.which("robustlearn")
    command = [script] if script else [sys.executable, "-m", "robustlearn.cli"]
    result = subprocess.run([*command, "plugins"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith(NAME))
    assert row.split()[1:5] == ["defense", DISTRIBUTION, "0.1.0", "ok"]


def test_made_by_name_and_cloned(example_plugin):
    est = robustlearn.make_defense(NAME, temperature=2.0, max_epochs=3)
    assert isinstance(est, robustlearn.BaseDefense)
    assert isinstance(est, example_plugin.NearestPrototypeClassifier)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    assert copy.temperature == 2.0


def test_learns_digits(example_plugin, digits):
    X, y, X_test, y_test = digits
    est = robustlearn.make_defense(NAME, random_state=0, device="cpu").fit(X, y)
    assert est.score(X_test, y_test) > 0.9
    assert est.detect(X_test).mean() < 0.25


def test_passes_the_estimator_check_helper(example_plugin):
    results = check_defense(fast_instance(example_plugin.NearestPrototypeClassifier))
    assert len(results) > 40
    # scikit-learn itself skips its array-API check when array-api-compat is not installed
    not_passed = [(r["check_name"], r["status"]) for r in results if r["status"] != "passed"]
    assert set(not_passed) <= {("check_array_api_input", "skipped")}, not_passed


def test_grid_searched(example_plugin, digits):
    X, y, _, _ = digits
    search = GridSearchCV(
        robustlearn.make_defense(NAME, max_epochs=10, random_state=0, device="cpu"),
        {"temperature": [1.0, 1e4]}, cv=2, n_jobs=2,
    ).fit(X[:400], y[:400])
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    # at an enormous temperature the logits barely move with the input: learning stalls
    assert search.best_params_ == {"temperature": 1.0}
    assert search.best_estimator_.temperature == 1.0
