"""``robustlearn evaluate`` and ``robustlearn baselines`` (the README's main job)."""

import json

import pytest

from robustlearn import cli
from robustlearn.evaluation import RobustnessReport

PNG = b"\x89PNG\r\n\x1a\n"
TINY_MLP = ["--set", "hidden_layer_sizes=(32,)", "--set", "max_epochs=10"]


def _evaluate(out, *extra):
    return cli.main(["evaluate", "--dataset", "digits", "--attack", "fgsm",
                     "--attack", "linf-pgd:steps=10", "--epsilons", "0,0.1,0.3", "--test-n", "100",
                     "--out", str(out), *extra])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    code = _evaluate(out, "--defense", "mlp", *TINY_MLP)
    return code, out


def test_evaluate_writes_the_report_files(evaluated, capsys):
    code, out = evaluated
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "evaluation.jsonl", "model.joblib", "report.json", "report.md", "robustness.png"
    ]
    report = RobustnessReport.from_json(out / "report.json")
    assert report.n_examples == 100
    assert report.epsilons == [0.0, 0.1, 0.3]
    assert report.worst_case["linf"]["attacks"] == ["fgsm", "linf-pgd"]
    assert report.clean["accuracy"] > 0.7  # the tiny MLP learned
    assert report.metadata == {"dataset": "digits", "model": "mlp", "defense": "mlp"}
    assert (out / "report.md").read_text() == report.to_markdown()
    assert (out / "robustness.png").read_bytes()[:8] == PNG
    assert not list(out.glob("*.part"))


def test_resume_reproduces_the_report(evaluated, capsys):
    _, out = evaluated
    before = json.loads((out / "report.json").read_text())
    assert _evaluate(out, "--defense", "mlp", *TINY_MLP, "--resume") == 0
    after = json.loads((out / "report.json").read_text())
    assert after["n_batches_resumed"] == after["n_batches"]
    for key in ("clean", "worst_case", "epsilons", "estimator"):
        assert after[key] == before[key]
    assert after["metadata"]["model"].endswith("model.joblib")  # reloaded, not retrained


def test_rerun_without_resume_is_refused(evaluated, capsys):
    _, out = evaluated
    assert _evaluate(out, "--defense", "mlp", *TINY_MLP) == 2
    assert "--resume" in capsys.readouterr().err


def test_evaluate_a_saved_model(evaluated, tmp_path, capsys):
    _, first = evaluated
    out = tmp_path / "again"
    assert _evaluate(out, "--model", str(first / "model.joblib")) == 0
    a = RobustnessReport.from_json(first / "report.json")
    b = RobustnessReport.from_json(out / "report.json")
    assert a.worst_case == b.worst_case  # same model, data and seed
    assert "| epsilon | fgsm | linf-pgd |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--defense", "mlp", "--attack", "linf-pdg"], "Did you mean 'linf-pgd'"),
        (["--defense", "mlp", "--epsilons", "0,-0.1"], "epsilons"),
        (["--defense", "mlp", "--epsilons", "0,a"], "--epsilons"),
        (["--defense", "mlp", "--set", "max_epochs=0"], "max_epochs"),
        ([], "--defense NAME"),
        (["--defense", "no-such-defense"], "unknown defense"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    code = cli.main(["evaluate", "--test-n", "20", "--out", str(out), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (out / "report.json").exists()


def test_failure_while_plotting_leaves_no_report(tmp_path, monkeypatch, capsys):
    def broken_plot(self, path=None, ax=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(RobustnessReport, "plot", broken_plot)
    out = tmp_path / "broken"
    code = _evaluate(out, "--defense", "mlp", "--set", "hidden_layer_sizes=(8,)",
                     "--set", "max_epochs=1")
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("robustlearn evaluate: error: RuntimeError: disk on fire "
                   "(run with -vv for the traceback)")
    assert not any(out.glob("report.*")) and not (out / "robustness.png").exists()


def test_baselines_trains_evaluates_and_plots(tmp_path, monkeypatch, capsys):
    make_defense = cli.registry.make_defense

    def small(name, **params):  # the real command's networks, trained briefly
        params.update(max_epochs=3)
        if name != "cnn":
            params.update(hidden_layer_sizes=(32,))
        return make_defense(name, **params)

    monkeypatch.setattr(cli.registry, "make_defense", small)
    out = tmp_path / "baselines"
    code = cli.main(["baselines", "--dataset", "digits", "--train-n", "400", "--attack", "fgsm",
                     "--epsilons", "0,0.1,0.3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| defense | clean | eps=0.1 | eps=0.3 | fit s | attack s |" in printed
    for name in ("mlp", "cnn", "adversarial-training"):
        assert f"| {name} |" in printed
        report = RobustnessReport.from_json(out / f"{name}.json")
        assert report.n_examples == 450 and report.metadata["defense"] == name
    assert (out / "robustness.png").read_bytes()[:8] == PNG
    text = (out / "baselines.md").read_text()
    assert text.count("## Robustness of") == 3


def test_baselines_default_is_the_main_job():
    args = cli.build_parser().parse_args(["baselines"])
    assert args.dataset == "digits" and args.out == "robustlearn-baselines"
    assert args.attack is None and args.epsilons == "0,0.05,0.1,0.2,0.3"
    assert cli.baseline_defenses() == ["mlp", "cnn", "adversarial-training"]
    assert cli.baseline_settings(cli.baseline_defenses(), None) == {
        "mlp": {}, "cnn": {}, "adversarial-training": {"network": "mlp", "epsilon": 0.1}}
    assert cli._parse_attacks(None) is None  # no --attack: evaluate's adaptive ladder


def test_parse_attack():
    assert cli.parse_attack("fgsm") == "fgsm"
    assert cli.parse_attack("l2-pgd:steps=7,random_start=False") == (
        "l2-pgd", {"steps": 7, "random_start": False}
    )
    with pytest.raises(ValueError, match="Did you mean 'l2-pgd'"):
        cli.parse_attack("l2-pdg:steps=7")


def test_report_files_get_ordinary_permissions(evaluated):
    import os
    import stat

    _, out = evaluated
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((out / "report.json").stat().st_mode)
    assert mode == 0o666 & ~umask
