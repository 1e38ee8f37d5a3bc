"""robustlearn.evaluate on real attacks and models, and its input validation."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import robustlearn
from robustlearn.evaluation import RobustnessReport

from .conftest import CodedAttack, ThresholdClassifier, make_coded_data

EPSILONS = [0, 0.1, 0.3]


@pytest.fixture(scope="module")
def mlp_report(fitted_mlp, digits_small):
    X, y = digits_small
    return robustlearn.evaluate(
        fitted_mlp, X, y, attacks=["fgsm", ("linf-pgd", {"steps": 10})], epsilons=EPSILONS,
        batch_size=64,
    )


def test_report_on_a_real_model(mlp_report, fitted_mlp, digits_small):
    X, y = digits_small
    report = mlp_report
    assert isinstance(report, RobustnessReport)
    assert report.n_examples == 120 and report.n_batches == 2
    clean = fitted_mlp.score(X, y)
    assert report.clean["accuracy"] == pytest.approx(clean)
    assert clean > 0.8  # the fixture learned
    for attack in report.attacks:
        assert attack["accuracy"][0] == pytest.approx(clean)  # radius 0 is the clean input
        assert attack["ci_low"][0] <= clean <= attack["ci_high"][0]
    worst = report.worst_case["linf"]
    assert worst["attacks"] == ["fgsm", "linf-pgd"]
    per_attack = np.array([a["accuracy"] for a in report.attacks])
    assert np.all(np.array(worst["accuracy"]) <= per_attack.min(axis=0) + 1e-12)
    assert np.all(np.diff(worst["accuracy"]) <= 0)
    assert worst["accuracy"][-1] < 0.2  # an undefended MLP does not survive linf 0.3


def test_report_records_provenance(mlp_report):
    report = mlp_report
    assert set(report.versions) >= {"python", "robustlearn", "torch", "sklearn", "foolbox",
                                    "numpy"}
    assert report.versions["foolbox"] == "3.3.4"
    assert report.seeds["random_state"] == 0
    assert report.tags["gradient_attacks"] is True
    assert report.estimator["class"].endswith("MLPClassifier")
    assert report.estimator["params"]["hidden_layer_sizes"] == [128]
    assert report.wall_seconds > 0 and report.compute_seconds > 0
    assert report.attacks[1]["params"] == {"steps": 10}
    assert any("fewer than 1000" in note for note in report.notes)


def test_detection_rates_are_reported(mlp_report, fitted_mlp, digits_small):
    X, _ = digits_small
    assert mlp_report.clean["detection_rate"] == pytest.approx(fitted_mlp.detect(X).mean())
    for attack in mlp_report.attacks:
        rates = attack["detection_rate"]
        assert len(rates) == len(EPSILONS) and rates[0] == mlp_report.clean["detection_rate"]


def test_detection_rate_of_a_stub_detector():
    codes, labels = np.repeat([0.1, 0.3], 10), np.tile([0, 1], 10)
    X, y = make_coded_data(codes, labels)
    model = ThresholdClassifier(detector=True).fit(X, y)
    report = robustlearn.evaluate(model, X, y, attacks=[CodedAttack(code=0.1)],
                                  epsilons=[0, 0.03, 0.2])
    assert report.clean["detection_rate"] == 0.5  # the class-0 images at 0.4 are flagged
    # at 0.03 the ten coded examples move: class 1 to 0.57 (not flagged), class 0 to 0.43
    assert report.attacks[0]["detection_rate"] == pytest.approx([0.5, 0.5, 0.5])
    no_detector = ThresholdClassifier().fit(X, y)
    plain = robustlearn.evaluate(no_detector, X, y, attacks=[CodedAttack()], epsilons=[0.1])
    assert plain.clean["detection_rate"] is None and plain.attacks[0]["detection_rate"] is None


def test_attack_forms_are_equivalent(fitted_mlp, digits_small):
    X, y = digits_small
    by_name = robustlearn.evaluate(fitted_mlp, X[:40], y[:40], attacks=["fgsm"],
                                   epsilons=[0.1])
    by_pair = robustlearn.evaluate(fitted_mlp, X[:40], y[:40], attacks=[("fgsm", {})],
                                   epsilons=[0.1])
    instance = robustlearn.make_attack("fgsm")
    by_instance = robustlearn.evaluate(fitted_mlp, X[:40], y[:40], attacks=[instance],
                                       epsilons=[0.1])
    assert instance.get_params()["estimator"] is None  # the caller's instance is untouched
    curves = [r.attacks[0]["accuracy"] for r in (by_name, by_pair, by_instance)]
    assert curves[0] == curves[1] == curves[2]
    assert by_instance.attacks[0]["key"] == "fgsm"


def test_subset_is_stratified_and_seeded(coded):
    from robustlearn.evaluation.evaluate import _subset

    model, X, y = coded
    a = robustlearn.evaluate(model, X, y, attacks=[CodedAttack()], epsilons=[0.2], n=10)
    b = robustlearn.evaluate(model, X, y, attacks=[CodedAttack()], epsilons=[0.2], n=10)
    assert a.n_examples == 10
    assert a.attacks[0]["n_correct"] == b.attacks[0]["n_correct"]
    _, y_sub = _subset(X, y, 10, 0, [])
    assert np.bincount(y_sub).tolist() == [5, 5]
    notes = []
    assert len(_subset(X, y, 100, 0, notes)[0]) == 30 and "only 30" in notes[0]


def test_progress_bar_when_verbose_on_a_terminal_only(coded, capsys, monkeypatch):
    import sys

    model, X, y = coded
    robustlearn.evaluate(model, X, y, attacks=[CodedAttack()], epsilons=[0.2], verbose=1,
                         batch_size=10)
    # a pipe or a file gets no bar (log lines may come, when an earlier CLI test configured
    # the robustlearn logger)
    assert "%|" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    robustlearn.evaluate(model, X, y, attacks=[CodedAttack()], epsilons=[0.2], verbose=1,
                         batch_size=10, metadata={"defense": "coded"})
    assert "evaluate coded" in capsys.readouterr().err


BAD_INPUTS = [
    # (description, changes to the call, error type, message fragment)
    ("negative epsilon", dict(epsilons=[0, -0.1]), ValueError, "epsilons"),
    ("NaN epsilon", dict(epsilons=[float("nan")]), ValueError, "finite"),
    ("infinite epsilon", dict(epsilons=[float("inf")]), ValueError, "finite"),
    ("no epsilons", dict(epsilons=[]), ValueError, "epsilons"),
    ("epsilons not a list", dict(epsilons="0.1"), TypeError, "epsilons"),
    ("unknown attack", dict(attacks=["linf-pdg"]), ValueError, "Did you mean 'linf-pgd'"),
    ("no attacks", dict(attacks=[]), ValueError, "attacks"),
    ("not an attack", dict(attacks=[42]), TypeError, "attack"),
    ("evaluate sets epsilon", dict(attacks=[("fgsm", {"epsilon": 0.1})]), ValueError,
     "epsilon"),
    ("bad attack parameter", dict(attacks=[("linf-pgd", {"batch_size": 0})]), ValueError,
     "batch_size"),
    ("X above 1", dict(X=lambda X: X * 2), ValueError, r"\[0, 1\]"),
    ("X with NaN", dict(X=lambda X: np.where(X > 0.5, np.nan, X)), ValueError, "NaN"),
    ("lengths differ", dict(y=lambda y: y[:-1]), ValueError, "inconsistent"),
    ("unknown labels", dict(y=lambda y: y + 100), ValueError, "not fitted on"),
    ("wrong image size", dict(X=lambda X: X[:, :, :4, :4]), ValueError, "features"),
    ("resume without a folder", dict(resume=True), ValueError, "out_dir"),
    ("bad batch size", dict(batch_size=0), ValueError, "batch_size"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_before_work(case, fitted_mlp, digits_small, tmp_path):
    _, changes, error, message = case
    X, y = digits_small
    call = dict(X=X[:20], y=y[:20], attacks=["fgsm"], epsilons=[0, 0.1])
    for key, value in changes.items():
        call[key] = value(call[key]) if callable(value) else value
    out = tmp_path / "run"
    if not call.get("resume"):
        call["out_dir"] = out
    with pytest.raises(error, match=message):
        robustlearn.evaluate(fitted_mlp, **call)
    assert not out.exists()  # nothing was written


def test_unfitted_estimator(digits_small):
    X, y = digits_small
    with pytest.raises(NotFittedError):
        robustlearn.evaluate(robustlearn.make_defense("mlp"), X, y, attacks=["fgsm"],
                             epsilons=[0.1])


def test_gradient_attack_on_a_model_without_gradients(coded):
    model, X, y = coded
    with pytest.raises(ValueError, match="gradient"):
        robustlearn.evaluate(model, X, y, attacks=["fgsm"], epsilons=[0.1])


def test_iterative_attack_weaker_than_fgsm_is_flagged(fitted_mlp, digits_small):
    X, y = digits_small
    # the Foolbox backend returns its last iterate (no best point, no single-step seed)
    crippled = ("linf-pgd", {"steps": 2, "rel_stepsize": 0.01, "random_start": False,
                             "backend": "foolbox"})
    report = robustlearn.evaluate(fitted_mlp, X[:60], y[:60], attacks=["fgsm", crippled],
                                  epsilons=[0.1, 0.3])
    assert any("weaker than single-step fgsm" in note for note in report.notes)
    fair = robustlearn.evaluate(fitted_mlp, X[:60], y[:60], attacks=["fgsm"],
                                epsilons=[0.1, 0.3])
    assert not any("single-step" in note for note in fair.notes)


def test_attack_objects_are_reported_under_their_registered_name(fitted_mlp, digits):
    from robustlearn.evaluation.attack_specs import _registered_name

    assert _registered_name(robustlearn.make_attack("apgd-t", steps=5)) == "apgd-t"
    assert _registered_name(robustlearn.make_attack("apgd-ce")) == "apgd-ce"
    assert _registered_name(robustlearn.make_attack("linf-pgd", steps=3)) == "linf-pgd"


@pytest.fixture(scope="module")
def fitted_attractor(digits_small):
    from robustlearn.estimator_checks import fast_instance
    from robustlearn.plugins.attractor import AttractorClassifier

    return fast_instance(AttractorClassifier, random_state=0).fit(*digits_small)


@pytest.mark.parametrize("attacks, missing", [
    (["fgsm"], ["BPDA", "joint attack", "transfer", "gradient-free"]),
    ([("linf-pgd", {"steps": 2, "surface": "bpda-identity"})],
     ["whole prediction function", "joint attack", "transfer", "gradient-free"]),
    (["gaussian-noise"], ["BPDA", "joint attack", "transfer"]),
    (["fgsm", ("linf-pgd", {"steps": 2, "surface": "bpda-one-pass"}),
      ("linf-pgd", {"steps": 2, "surface": "one-pass"}), "detector-aware-pgd",
      ("square", {"n_queries": 20})], []),
])
def test_warnings_name_the_adaptive_attacks_the_tags_call_for(
        fitted_attractor, digits_small, attacks, missing):
    X, y = digits_small
    report = robustlearn.evaluate(fitted_attractor, X[:20], y[:20], attacks=attacks,
                                  epsilons=[0, 0.1])
    text = " | ".join(report.warnings)
    assert all(word in text for word in missing), text
    assert len(report.warnings) == len(missing)
