"""The documentation stays true: every hook is documented with its exact signature, and the
python examples of the user guide run."""

import inspect
import re
import sys
import types
from pathlib import Path

import pytest

from robustlearn import hookspecs, registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
USER_GUIDE = DOCS / "user-guide.md"
HOOKS = [fn for _, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "robustlearn_spec")]


def _docs_text():
    return "\n".join(p.read_text() for p in sorted(DOCS.rglob("*.md")))


def _python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("hook", HOOKS, ids=lambda fn: fn.__name__)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    signature = f"{hook.__name__}{inspect.signature(hook)}"
    assert signature == f"{hook.__name__}(register)"
    assert f"`{signature}`" in _docs_text(), f"{signature} is not documented in docs/"


def test_register_callback_and_switches_are_documented():
    text = _docs_text()
    assert 'register(name, factory, description="", paper="", capabilities=())' in text
    for variable in ("ROBUSTLEARN_STRICT_PLUGINS", "ROBUSTLEARN_DISABLE_PLUGIN_AUTOLOAD",
                     "ROBUSTLEARN_TRACE_PLUGINS", "ROBUSTLEARN_DATA"):
        assert variable in text
    assert f'[project.entry-points."{registry.ENTRY_POINT_GROUP}"]' in text


def test_the_user_guide_has_examples():
    assert len(_python_blocks(USER_GUIDE)) >= 5


@pytest.mark.slow
def test_user_guide_python_blocks_run(tmp_path, monkeypatch, capsys):
    """Run the blocks in order in one namespace, as a reader would (digits data, a few epochs)."""
    monkeypatch.chdir(tmp_path)
    extra = list(registry._extra_plugins)
    # a real module, so that classes defined in the guide can be pickled by the estimator checks
    module = types.ModuleType("robustlearn_user_guide")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    try:
        for number, block in enumerate(_python_blocks(USER_GUIDE), start=1):
            code = compile(block, f"{USER_GUIDE.name} python block {number}", "exec")
            exec(code, namespace)  # noqa: S102 - running our own documentation
    finally:
        registry._extra_plugins[:] = extra
        registry.reload()
    out = capsys.readouterr().out
    assert "test accuracy" in out and "max_epochs must be >= 1, got -1" in out
    assert "checks passed" in out and "linear:" in out
