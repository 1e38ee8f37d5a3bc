"""CI runs the README's first command in a fresh venv, then the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks():
    return re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_ci_runs_the_readme_first_command_in_a_fresh_venv_then_the_tests():
    script = (ROOT / ".ci" / "run").read_text()
    first, test = _bash_blocks()[:2]
    # the README's first command is a one-liner that installs without extras
    assert first.strip() == ("pip install torch==2.13.0 && pip install . && "
                             "robustlearn baselines --dataset digits")
    # .ci/run extracts it from the README (the first line of the first bash block) and runs
    # it in a venv without system site packages, before the test command
    assert "awk '/^```bash$/{getline; print; exit}' README.md" in script
    assert "python -m venv" in script and "system-site-packages" not in script
    command = test.strip().split(" && ", 1)[1]
    assert script.index('eval "$FIRST"') < script.index(command)
