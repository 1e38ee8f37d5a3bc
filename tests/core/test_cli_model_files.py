"""The command line with safe model files and ``robustlearn doctor``."""

import json

import joblib
import numpy as np

import robustlearn
from robustlearn import cli
from robustlearn.datasets import load

from .fake_plugins import reload_with_broken_plugin


def test_fit_writes_a_safe_model_file_that_evaluate_reads(tmp_path, capsys):
    model_path = tmp_path / "mlp.safetensors"
    assert cli.main(["fit", "--defense", "mlp", "--set", "hidden_layer_sizes=(16,)",
                     "--set", "max_epochs=5", "--out", str(model_path)]) == 0
    assert robustlearn.model_file.read_header(model_path)["name"] == "mlp"
    model = robustlearn.load(model_path)
    X_test, y_test = load("digits", "test")
    assert model.score(X_test, y_test) > 0.5
    assert cli.main(["evaluate", "--model", str(model_path), "--test-n", "30", "--attack", "fgsm",
                     "--epsilons", "0,0.1", "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["metadata"]["model"] == str(model_path)
    assert report["n_examples"] == 30
    capsys.readouterr()


def test_pickle_suffixes_keep_pickle(tmp_path):
    path = tmp_path / "mlp.joblib"
    assert cli.main(["fit", "--defense", "mlp", "--train-n", "200", "--set", "max_epochs=1",
                     "--out", str(path)]) == 0
    assert isinstance(joblib.load(path), robustlearn.plugins.baselines.MLPClassifier)
    np.testing.assert_array_equal(cli._load_model(path).classes_, np.arange(10))


def test_evaluate_refuses_a_pickle_under_a_safe_name(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    joblib.dump({"not": "a model"}, path)
    assert cli.main(["evaluate", "--model", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "not a robustlearn model file" in capsys.readouterr().err


def test_doctor_prints_versions_devices_threads_and_broken_plugins(plugin_env, capsys):
    reload_with_broken_plugin(plugin_env)
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in ("versions", "devices", "threads", "plugins"):
        assert f"\n{section}\n" in f"\n{out}"
    assert f"robustlearn: {robustlearn.__version__}" in out and "torch:" in out
    assert "cpu:" in out and "torch intra-op:" in out
    assert "baselines (robustlearn" in out and "defense mlp" in out
    assert "exploding (exploding-dist 0.0.1): BROKEN" in out and "no module named zz" in out
