"""``robustlearn audit`` and ``robustlearn benchmark`` on tiny registered defenses."""

import json

import pytest

from robustlearn import registry
from robustlearn.cli import main
from robustlearn.plugins.baselines import MLPClassifier

from ..fake_plugins import plugin_module


class TinyMLP(MLPClassifier):
    """A fast MLP (its quick training configuration is a few epochs of 16 units)."""

    _test_params = dict(hidden_layer_sizes=(16,), max_epochs=8)


class BrokenDefense(MLPClassifier):
    """A third-party defense whose training crashes."""

    def fit(self, X, y):
        raise RuntimeError("cannot train")


@pytest.fixture
def tiny_plugins():
    def register_defenses(register):
        register("tiny-mlp", TinyMLP, description="tiny MLP for the benchmark tests")
        register("broken-defense", BrokenDefense, description="always fails")

    registry.register_plugin(plugin_module("audit-tests", register_defenses=register_defenses),
                             name="audit-tests")
    yield
    registry.unregister_plugin("audit-tests")


FAST = ["--checks", "A0,A1,C4", "--n", "40"]


def test_benchmark_writes_a_linked_leaderboard(tiny_plugins, tmp_path, capsys):
    out = tmp_path / "board"
    code = main(["benchmark", "--dataset", "digits", "--defense", "tiny-mlp",
                 "--defense", "broken-defense", "--out", str(out), *FAST])
    assert code == 1  # one defense failed; the board is still written
    board = (out / "leaderboard.md").read_text()
    assert "[" in board and "(tiny-mlp/audit.md)" in board
    assert "broken-defense" in board and "cannot train" in board
    assert (out / "tiny-mlp" / "audit.md").exists() and (out / "tiny-mlp" / "audit.png").exists()
    page = (out / "index.html").read_text()
    assert 'href="tiny-mlp/audit.md"' in page and 'src="tiny-mlp/audit.png"' in page
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert rows[0]["defense"] == "tiny-mlp" and rows[0]["clean"] > 0.5
    assert rows[0]["params"]["hidden_layer_sizes"] == "(16,)"
    # wall-clock and CPU seconds of training and audit, both in the table
    assert rows[0]["fit_cpu_seconds"] > 0 and rows[0]["audit_cpu_seconds"] > 0
    assert "fit CPU s | audit CPU s" in board
    assert "leaderboard.md" in capsys.readouterr().out


def test_audit_command_trains_audits_and_resumes(tiny_plugins, tmp_path, capsys):
    out = tmp_path / "audit"
    args = ["audit", "--defense", "tiny-mlp", "--train", "quick", "--out", str(out), *FAST]
    assert main(args) == 0
    assert {"audit.md", "audit.json", "audit.png", "model.joblib"} <= {
        p.name for p in out.iterdir()}
    stamp = (out / "checks" / "C4.json").stat().st_mtime_ns
    assert main(args) == 0  # the cached checks and the saved model are reused
    assert (out / "checks" / "C4.json").stat().st_mtime_ns == stamp
    assert "| C4 |" in capsys.readouterr().out


def test_audit_command_needs_one_model_source(tmp_path, capsys):
    assert main(["audit", "--out", str(tmp_path)]) == 2
    assert "--defense" in capsys.readouterr().err
