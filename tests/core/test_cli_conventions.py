"""The command line as a new user meets it: every bad input is one line, before any training."""

import json
import subprocess
import sys

import pytest

import robustlearn
from robustlearn import cli, registry
from robustlearn.defense import BaseDefense

from .fake_plugins import FakeEntryPoint, add_entry_points


@pytest.fixture
def never_trains(monkeypatch):
    def fail(*args, **kwargs):
        pytest.fail("trained despite a bad argument")

    monkeypatch.setattr(BaseDefense, "fit", fail)


def _one_line_error(capsys, command):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"robustlearn {command}: error: ") and "Traceback" not in err
    return lines[0]


def _a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


CASES = [
    (["baselines", "--attack", "linf-pgd:steps=0"], "steps must be >= 1"),
    (["baselines", "--attack", "linf-pgd:stepz=3"],
     "has no parameter 'stepz'; did you mean 'steps'"),
    (["baselines", "--attack", "fgsm:epsilon=0.1"], "epsilon is set by evaluate"),
    (["baselines", "--attack", "fsgm"], "Did you mean 'fgsm'"),
    (["baselines", "--test-n", "0"], "--test-n must be a positive integer"),
    (["baselines", "--train-n", "-5"], "--train-n must be a positive integer"),
    (["baselines", "--set", "epsilon=-0.1"], "epsilon"),
    (["baselines", "--set", "no_such=1"], "no_such"),
    (["baselines", "--set", "cnn.epsilon=0.1"], "defense 'cnn' has no parameter 'epsilon'"),
    (["baselines", "--epsilons", "0,-0.1"], "--epsilons must be finite and >= 0"),
    (["baselines", "--out", "{file}/sub"], "is a file, not a folder"),
    (["baselines", "--device", "tpu"], "--device"),
    (["baselines", "--threads", "0"], "--threads must be a positive integer"),
    (["fit", "--defense", "mlp", "--out", "{file}/model.joblib"], "is a file, not a folder"),
    (["fit", "--defense", "mlp", "--train-n", "0", "--out", "{tmp}/m.joblib"], "--train-n"),
    (["fit", "--defense", "mlp", "--out", "{tmp}"], "is a folder, not a file"),
    (["evaluate", "--defense", "mlp", "--attack", "linf-pgd:steps=0", "--out", "{tmp}/e"],
     "steps must be >= 1"),
    (["evaluate", "--defense", "mlp", "--test-n", "0", "--out", "{tmp}/e"], "--test-n"),
    (["evaluate", "--model", "{file}", "--out", "{tmp}/e"], "is not a model saved by"),
    (["evaluate", "--model", "{tmp}/missing.joblib", "--out", "{tmp}/e"], "no such file"),
]


@pytest.mark.parametrize("args, message", CASES, ids=lambda v: " ".join(v) if isinstance(
    v, list) else None)
def test_bad_input_is_one_line_before_training(tmp_path, capsys, never_trains, args, message):
    file = _a_file(tmp_path)
    args = [a.replace("{file}", str(file)).replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert cli.main(args) == 2
    assert message in _one_line_error(capsys, args[0])
    assert not (tmp_path / "out").exists() and not (tmp_path / "e" / "report.json").exists()


def test_corrupt_dataset_file_is_named_in_one_line(tmp_path, capsys, never_trains):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"not gzip at all")
    code = cli.main(["fit", "--defense", "mlp", "--dataset", "mnist", "--data-dir",
                     str(tmp_path), "--out", str(tmp_path / "m.joblib")])
    assert code == 2
    line = _one_line_error(capsys, "fit")
    assert "train-images-idx3-ubyte.gz is corrupt" in line


def test_strict_plugins_error_is_one_line(plugin_env, capsys):
    add_entry_points(plugin_env, FakeEntryPoint("exploding", ImportError("no module named zz")))
    plugin_env.setenv("ROBUSTLEARN_STRICT_PLUGINS", "1")
    plugin_env.setattr(registry, "_registry", None)
    assert cli.main(["plugins"]) == 2
    assert "'exploding'" in _one_line_error(capsys, "plugins")


def test_ctrl_c_is_one_line_with_the_resume_hint(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_evaluate", interrupted)
    code = cli.main(["evaluate", "--defense", "mlp", "--out", str(tmp_path)])
    assert code == 130
    err = capsys.readouterr().err.strip()
    assert err == f"robustlearn evaluate: interrupted; finished batches are logged in " \
                  f"{tmp_path}, rerun with --resume"


def test_plugins_json_lists_capabilities(capsys):
    assert cli.main(["plugins", "--json"]) == 0
    records = {(r["kind"], r["name"]): r for r in json.loads(capsys.readouterr().out)}
    assert "baseline" in records["defense", "mlp"]["capabilities"]
    assert "iterative" in records["defense", "attractor"]["capabilities"]
    assert records["dataset", "digits"]["status"] == "ok"


def test_plugins_table_has_a_capabilities_column(capsys):
    assert cli.main(["plugins"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["name", "kind", "distribution", "version", "status", "capabilities",
                      "description"]


@pytest.mark.parametrize("argv, verbosity", [
    (["baselines"], 1), (["-q", "baselines"], 0), (["baselines", "-q"], 0),
    (["baselines", "-vv"], 3), (["-v", "baselines"], 2),
])
def test_verbosity_options_before_or_after_the_command(argv, verbosity):
    args = cli.build_parser().parse_args(argv)
    assert 1 + args.verbose - args.quiet == verbosity


def test_version_and_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "robustlearn", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == \
        f"robustlearn {robustlearn.__version__}"


def test_help_imports_no_torch():
    """``--help`` answers without importing torch, scikit-learn or Foolbox (see
    benchmarks/bench_cli_import.py for the time)."""
    code = ("import sys\nfrom robustlearn import cli\ntry:\n    cli.main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'foolbox') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "``" not in result.stdout


def test_evaluate_overwrite_starts_over(tmp_path, capsys):
    args = ["evaluate", "--defense", "mlp", "--set", "hidden_layer_sizes=(16,)",
            "--set", "max_epochs=3", "--attack", "fgsm", "--epsilons", "0,0.1",
            "--test-n", "60", "--out", str(tmp_path / "run"), "-q"]
    assert cli.main(args) == 0
    assert cli.main(args) == 2
    assert "--overwrite" in _one_line_error(capsys, "evaluate")
    assert cli.main(args + ["--overwrite"]) == 0
    assert (tmp_path / "run" / "report.json").exists()


def test_test_n_larger_than_the_split_uses_the_whole_split(tmp_path, capsys):
    args = ["evaluate", "--defense", "mlp", "--set", "hidden_layer_sizes=(16,)",
            "--set", "max_epochs=3", "--attack", "fgsm", "--epsilons", "0,0.1",
            "--test-n", "1000", "--out", str(tmp_path / "run"), "-q"]
    assert cli.main(args) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_examples"] == 450  # the digits' test split
