"""The documentation stays true: every hook is documented with its exact signature, and every
fenced ```python and ```bash block of README.md and docs/**/*.md runs as pasted.

Docs-test convention (see "Writing docs" in docs/user-guide.md): each block runs alone, twice
in a row, from a fresh temporary working folder in which the repository root is available
(every top-level entry of the repository is linked into it, and ``../shared`` is the
repository's ``../shared`` when that exists), so blocks may refer to files and data by their
paths from the repository root. A block immediately preceded by the line
``<!-- docs-test: skip (REASON) -->`` is not run. Blocks that read MNIST, Fashion-MNIST or
CIFAR-10 are skipped when that data is absent.
"""

import inspect
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from robustlearn import hookspecs, registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
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


# --------------------------------------------------------------- every block, as pasted
SKIP = re.compile(r"^<!-- docs-test: skip \((?P<reason>[^)]+)\) -->$")
BLOCK = re.compile(r"^```(?P<lang>python|bash)\n(?P<code>.*?)^```$", flags=re.S | re.M)
NEEDS_DATA = re.compile(r"mnist|fashion|cifar", flags=re.I)


def _all_blocks():
    """``(id, language, code, skip reason or None)`` for every runnable fenced block."""
    found = []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.match(before.strip())
            found.append((f"{path.relative_to(ROOT)}:{line}", match["lang"], match["code"],
                          skip["reason"] if skip else None))
    return found


BLOCKS = _all_blocks()


def _shared_data():
    data = ROOT.parent / "shared" / "data"
    return data if (data / "mnist").is_dir() else None


def _fresh_folder(tmp_path):
    """A working folder in which the paths from the repository root resolve."""
    work = tmp_path / "repo"
    work.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in ("build", "dist"):
            (work / entry.name).symlink_to(entry)
    if (ROOT.parent / "shared").exists():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    return work


def _run_python(code, name, work, monkeypatch):
    monkeypatch.chdir(work)
    extra = list(registry._extra_plugins)
    module = types.ModuleType("robustlearn_docs_block")  # classes defined in a block pickle
    monkeypatch.setitem(sys.modules, module.__name__, module)
    try:
        exec(compile(code, name, "exec"), module.__dict__)  # noqa: S102 - our own docs
    finally:
        if registry._extra_plugins != extra:
            registry._extra_plugins[:] = extra
            registry.reload()


def _run_bash(code, name, work):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("name, lang, code, skip", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_docs_block_runs_as_pasted_twice(name, lang, code, skip, tmp_path, monkeypatch):
    if skip:
        pytest.skip(f"docs-test: skip ({skip})")
    if NEEDS_DATA.search(code) and _shared_data() is None:
        pytest.skip("needs ../shared/data")
    work = _fresh_folder(tmp_path)
    for _ in range(2):  # a second run in the same folder finds the first run's files
        if lang == "python":
            _run_python(code, name, work, monkeypatch)
        else:
            _run_bash(code, name, work)


def test_skip_markers_give_a_reason():
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("<!--") and "docs-test" in line:
                assert SKIP.match(line.strip()), f"{path.name}: malformed marker {line!r}"
