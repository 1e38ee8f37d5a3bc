"""The attractor's defaults are the configuration its documentation reports."""

import re
from pathlib import Path

import pytest

import robustlearn
from robustlearn.plugins.attractor.params import DOCUMENTED_CONFIGURATION

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("make", [robustlearn.make_defense, robustlearn.make_purifier])
def test_defaults_are_the_documented_configuration(make):
    params = make("attractor").get_params()
    assert {k: params[k] for k in DOCUMENTED_CONFIGURATION} == DOCUMENTED_CONFIGURATION


def test_reproduction_script_defaults_come_from_the_same_constant():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "reproduce_attractor", ROOT / "benchmarks" / "reproduce_attractor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.build_parser().parse_args([])
    params = module.model_params(args, "power")
    assert {k: params[k] for k in DOCUMENTED_CONFIGURATION} == DOCUMENTED_CONFIGURATION


def test_the_docs_state_the_documented_configuration():
    text = (ROOT / "docs" / "defenses" / "attractor.md").read_text()
    setting = text[text.index("**Setting.**"):]
    assert "40 pre-training epochs and then 20" in setting
    assert re.search(r"`lambda_eig=1`, `eigen_margin=0.5`, `eigen_method=\"power\"`", setting)
    assert "**5 passes** (`max_iter=5`" in setting
    assert "batch 32" in setting and "lr 1e-3" in setting
