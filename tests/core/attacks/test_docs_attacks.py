"""The python examples of docs/attacks.md run, in order, in one namespace."""

import re
import sys
import types
from pathlib import Path

import pytest

from robustlearn import registry

PAGE = Path(__file__).resolve().parents[3] / "docs" / "attacks.md"


def _python_blocks():
    return re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)


def test_every_builtin_attack_is_in_the_table():
    text = PAGE.read_text()
    for name in registry.get_registry().names("attack"):
        if registry.get_registry().get("attack", name).plugin == "attacks":
            assert f"| `{name}` |" in text


@pytest.mark.slow
def test_attack_docs_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("robustlearn_attack_docs")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    blocks = _python_blocks()
    assert len(blocks) >= 5
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"attacks.md python block {number}", "exec"), module.__dict__)  # noqa: S102
    out = capsys.readouterr().out
    assert "robust accuracy" in out and "detector AUROC" in out
