"""docs/reports.md stays true: its python blocks run, and its figure exists."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "reports.md"


def _python_blocks():
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks()
    assert len(blocks) == 2
    namespace = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"reports.md python block {number}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "report.json").exists() and (tmp_path / "robustness.png").exists()
    assert namespace["again"].n_batches_resumed == namespace["again"].n_batches


def test_figure_and_command_are_there():
    text = DOC.read_text()
    match = re.search(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert match and (DOC.parent / match.group(1)).stat().st_size > 10_000
    assert "robustlearn baselines --dataset digits" in text
