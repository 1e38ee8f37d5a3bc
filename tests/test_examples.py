"""The runnable examples under ``examples/`` run and show what they claim (small settings)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from robustlearn.datasets import load

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attractor_digits_example(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    example = load_example("attractor_digits")
    plot = tmp_path / "robustness.png"
    models, reports = example.main(["--epochs", "30", "--finetune-epochs", "10",
                                    "--n-attack", "100", "--steps", "10", "--queries", "100",
                                    "--out", str(plot)])
    plain, eigen = models["no L_eigen"], models["L_eigen"]
    assert plain.attractor_fraction_ < 0.2 < 0.8 < eigen.attractor_fraction_
    assert np.median(eigen.train_spectral_radius_) < 1 < np.median(plain.train_spectral_radius_)
    worst = {name: report.headline["linf"] for name, report in reports.items()}
    assert worst["L_eigen"][0] > 0.8 and worst["no L_eigen"][0] > 0.8   # clean, eps 0
    assert worst["L_eigen"][2] > worst["no L_eigen"][2] + 0.2            # eps 0.1
    X_test, _ = load("digits", "test")
    scrambled = example.scramble_pixels(X_test, seed=0)
    assert eigen.detect(scrambled).mean() > eigen.detect(X_test).mean() + 0.5
    assert "[purifier + mlp] clean accuracy" in capsys.readouterr().out
    assert plot.stat().st_size > 10_000
