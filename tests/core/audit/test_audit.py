"""The audit flags each planted fault with the check meant for it, and passes a plain model."""

import json

import numpy as np
import pytest

import robustlearn
from robustlearn.auditing import ORDER, AuditReport

from .conftest import SilentSuccessAttack

#: The quick budget with shorter attacks, to keep the suite fast (every check still runs).
LIGHT = dict(steps=25, ladder_steps=(10, 25), doubling=(25, 50), restarts=(1, 2),
             square_queries=200, fab_steps=20, n=80)


@pytest.fixture(scope="module")
def plain_report(fitted_mlp, test_split, tmp_path_factory):
    X, y = test_split
    out = tmp_path_factory.mktemp("plain-audit")
    report = robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, budget="quick", out_dir=out,
                               **LIGHT)
    return report, out


def test_plain_mlp_passes_every_check(plain_report):
    report, _ = plain_report
    statuses = {c["id"]: c["status"] for c in report.checks}
    assert set(statuses) == {cid for cid, _, _ in ORDER}
    failed = {k: v for k, v in statuses.items() if v == "FAIL"}
    assert not failed, [c["message"] for c in report.checks if c["id"] in failed]
    # the only warning is the quick budget's sample size, which is not a headline
    assert {k for k, v in statuses.items() if v == "WARN"} == {"A4"}
    for family in "ABC":
        assert any(v == "PASS" for k, v in statuses.items() if k.startswith(family))
    # learning happened, and the attacks did something
    assert report.headline["clean_accuracy"] > 0.9
    assert report.headline["robust_accuracy"] < report.headline["clean_accuracy"]


def test_headline_is_the_per_example_worst_case(plain_report):
    report, _ = plain_report
    clean = np.asarray(report.headline["clean_correct"])
    robust = clean.copy()
    for run in report.runs.values():
        if run["group"] == "linf":
            for eps, row in zip(run["eps"], run["correct"]):
                if eps is not None and eps <= 0.1 + 1e-12:
                    robust &= np.asarray(row)
    assert report.headline["robust_accuracy"] == pytest.approx(robust.mean())
    # never above the weakest single attack
    assert report.headline["robust_accuracy"] <= min(report.per_attack().values()) + 1e-12


def test_report_files(plain_report):
    report, out = plain_report
    assert {"audit.md", "audit.json", "audit.png"} <= {p.name for p in out.iterdir()}
    text = (out / "audit.md").read_text()
    assert "per-example worst case" in text and "| B5 |" in text
    again = AuditReport.from_json(out / "audit.json")
    assert again.headline["robust_accuracy"] == report.headline["robust_accuracy"]
    assert json.loads((out / "audit.json").read_text())["status"] == report.status


def _status(report, check_id):
    return report.check(check_id)["status"]


def test_gradient_masking_quantiser_is_flagged(planted, test_split):
    X, y = test_split
    report = robustlearn.audit(planted["quantised"], X, y, epsilon=0.1,
                               checks=["C5", "C6"])
    assert _status(report, "C5") == "FAIL"
    assert report.check("C5")["evidence"]["zero"] > 0
    assert _status(report, "C6") == "WARN"


def test_stochastic_defense_without_eot_is_flagged(planted, test_split):
    X, y = test_split
    report = robustlearn.audit(planted["noisy"], X, y, epsilon=0.1, checks=["D1"])
    assert _status(report, "D1") == "FAIL"
    assert "stochastic=False" in report.check("D1")["message"]


def test_declared_stochastic_defense_gets_eot_and_repeated_inference(planted, test_split):
    X, y = test_split
    pgd = robustlearn.make_attack("linf-pgd", steps=10)  # named without EOT
    report = robustlearn.audit(planted["declared-noisy"], X, y, epsilon=0.1,
                               checks=["D1", "D2", "D3", "D4"], attacks=[pgd], steps=10,
                               eot=(1, 2, 4), n=60)
    assert _status(report, "D1") == "PASS"
    d2 = report.check("D2")["evidence"]
    assert set(d2["accuracy_by_eot"]) == {"1", "2", "4"}
    assert d2["named_without_eot"] == ["LinfPGD"]
    assert _status(report, "D3") in ("PASS", "FAIL")
    d4 = report.check("D4")["evidence"]
    assert d4["worst_of_R"] <= d4["mean_of_R"]
    assert any(key.startswith("repeated-inference") for key in report.runs)


def test_probabilities_are_flagged(planted, test_split):
    X, y = test_split
    report = robustlearn.audit(planted["probability"], X, y, epsilon=0.1, checks=["A3"])
    assert _status(report, "A3") == "FAIL"


def test_detector_needs_the_joint_attack(planted, test_split):
    X, y = test_split
    report = robustlearn.audit(planted["detector"], X, y, epsilon=0.2, checks=["F1", "F3"])
    assert _status(report, "F1") == "FAIL"
    ev = report.check("F1")["evidence"]
    assert ev["flagged_classifier_only"] > ev["flagged_joint"]
    assert _status(report, "F3") == "PASS"


def test_silent_success_attack_is_flagged(fitted_mlp, test_split):
    X, y = test_split
    report = robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, checks=["B5"],
                               attacks=[SilentSuccessAttack()], **LIGHT)
    assert _status(report, "B5") == "FAIL"
    ev = report.check("B5")["evidence"]
    assert ev["user-0-SilentSuccessAttack"]["silent"] > 0
    assert ev["pgd"]["silent"] == ev["apgd-ce"]["silent"] == 0


def test_resume_reuses_cached_checks(fitted_mlp, test_split, tmp_path):
    X, y = test_split
    first = robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, checks=["B1"], out_dir=tmp_path,
                              **LIGHT)
    cached = tmp_path / "checks" / "B1.json"
    stamp = cached.stat().st_mtime_ns
    second = robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, checks=["B1"], out_dir=tmp_path,
                               **LIGHT)
    assert cached.stat().st_mtime_ns == stamp
    assert second.headline == first.headline
    # another configuration is another fingerprint: recomputed
    robustlearn.audit(fitted_mlp, X, y, epsilon=0.05, checks=["B1"], out_dir=tmp_path, **LIGHT)
    assert cached.stat().st_mtime_ns != stamp


def test_bad_arguments_fail_before_work(fitted_mlp, test_split):
    X, y = test_split
    with pytest.raises(ValueError, match="budget"):
        robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, budget="huge")
    with pytest.raises(ValueError, match="norm"):
        robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, norm="l1")
    with pytest.raises(ValueError, match="unknown checks"):
        robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, checks=["Z9"])
    with pytest.raises(TypeError, match="unknown budget parameters"):
        robustlearn.audit(fitted_mlp, X, y, epsilon=0.1, stepz=3)
