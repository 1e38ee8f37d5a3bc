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


def test_writing_a_defense_example_and_its_docs_page_agree_and_evaluate_adapts():
    import re

    source = (EXAMPLES / "noisy_equilibrium.py").read_text()
    page = (EXAMPLES.parent / "docs" / "writing-a-defense.md").read_text()
    block = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    defense = source.split("# --8<-- [start:defense]\n")[1].split("# --8<-- [end:defense]")[0]
    assert block.strip() == defense.strip()
    assert len(defense.strip().splitlines()) <= 60
    example = load_example("noisy_equilibrium")
    model, report = example.main(["--epochs", "8", "--n", "40", "--epsilons", "0,0.1"])
    assert report.clean["accuracy"] > 0.6
    chosen = [(a["name"], a["params"]) for a in report.attacks]
    assert ("apgd-ce", {"norm": "linf", "surface": "bpda-one-step"}) in chosen
    assert ("apgd-ce", {"norm": "linf", "surface": "noise-free"}) in chosen
    assert any(p.get("eot_samples", 1) > 1 for _, p in chosen)
    assert not report.warnings
    assert report.headline["linf"][-1] < report.clean["accuracy"]
