"""The ``robustlearn`` command line: ``plugins`` and ``fit``."""

import shutil
import subprocess
import sys

import joblib
import pytest

import robustlearn
from robustlearn import cli
from robustlearn.datasets import load
from robustlearn.plugins.baselines import MLPClassifier

from .fake_plugins import reload_with_broken_plugin


def _console_script():
    """The installed ``robustlearn`` script, or ``python -m robustlearn.cli`` as a fallback."""
    found = shutil.which("robustlearn")
    return [found] if found else [sys.executable, "-m", "robustlearn.cli"]


def _run(*args, cwd):
    return subprocess.run(_console_script() + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_fit_command_trains_and_saves_a_loadable_model(tmp_path):
    result = _run("fit", "--defense", "mlp", "--dataset", "digits", "--set", "max_epochs=2",
                  "--out", "tmp/model.joblib", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mlp on digits: test accuracy" in result.stdout
    model = joblib.load(tmp_path / "tmp" / "model.joblib")
    assert isinstance(model, MLPClassifier)
    assert model.max_epochs == 2 and model.random_state == 0  # --seed defaults to 0
    X_test, y_test = load("digits", "test")
    accuracy = model.score(X_test, y_test)
    assert accuracy > 0.5
    assert f"{accuracy:.4f}" in result.stdout
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == ["model.joblib"]


def test_plugins_command_lists_every_registration(capsys):
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "kind", "distribution", "version", "status"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    for name, kind in [("mlp", "defense"), ("cnn", "defense"),
                       ("adversarial-training", "defense"), ("digits", "dataset"),
                       ("cifar10-gray", "dataset")]:
        assert rows[name][1:5] == [kind, "robustlearn", robustlearn.__version__, "ok"]
    assert "Plain ReLU multilayer perceptron" in out


def test_plugins_command_shows_broken_plugins(plugin_env, capsys):
    reload_with_broken_plugin(plugin_env)
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    broken = [line for line in out.splitlines() if line.startswith("exploding")]
    assert len(broken) == 1
    assert broken[0].split()[1:5] == ["plugin", "exploding-dist", "0.0.1", "broken"]
    assert "no module named zz" in broken[0]


def test_fit_parses_set_values_as_literals(tmp_path, capsys):
    out = tmp_path / "m.joblib"
    code = cli.main(["fit", "--defense", "mlp", "--dataset", "digits", "--train-n", "200",
                     "--set", "hidden_layer_sizes=(16,)", "--set", "optimizer=sgd",
                     "--set", "max_epochs=1", "--set", "lr=0.05", "--seed", "3",
                     "--out", str(out)])
    assert code == 0
    model = joblib.load(out)
    assert model.hidden_layer_sizes == (16,) and model.optimizer == "sgd"
    assert model.lr == 0.05 and model.random_state == 3
    assert "200 training samples" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--defense", "mpl"], "Did you mean 'mlp'"),
    (["--defense", "mlp", "--set", "max_epochs=-1"], "max_epochs must be >= 1"),
    (["--defense", "mlp", "--set", "lr=fast"], "lr must be a real number"),
    (["--defense", "mlp", "--set", "max_epochs"], "--set expects key=value"),
    (["--defense", "mlp", "--set", "no_such_param=1"], "no_such_param"),
    (["--defense", "mlp", "--dataset", "digts"], "Did you mean 'digits'"),
    (["--defense", "mlp", "--dataset", "mnist", "--data-dir", "{tmp}"], "Looked for"),
])
def test_fit_errors_are_reported_before_training(tmp_path, capsys, monkeypatch, args, message):
    def never(*a, **k):
        pytest.fail("trained despite bad arguments")

    monkeypatch.setattr(MLPClassifier, "_build_module", never)
    out = tmp_path / "model.joblib"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert cli.main(["fit", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustlearn fit: error:") and message in err
    assert not out.exists()


def test_missing_required_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", "--dataset", "digits"])
    assert info.value.code == 2
    assert "--defense" in capsys.readouterr().err


def test_parse_assignments():
    assert cli.parse_assignments(["a=1", "b=(2, 3)", "c=adam", "d=None", "e=0.5"]) == {
        "a": 1, "b": (2, 3), "c": "adam", "d": None, "e": 0.5}
    assert cli.parse_assignments(None) == {}
    with pytest.raises(ValueError, match="key=value"):
        cli.parse_assignments(["=3"])


def test_help_comes_from_docstrings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert cli.cmd_fit.__doc__.split("\n")[0].rstrip(".")[:40] in " ".join(out.split())
