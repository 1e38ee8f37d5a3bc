"""The headline is the per-example worst case, never the minimum of per-attack means."""

import numpy as np
import pytest

import robustlearn
from robustlearn.evaluation import robust_correct, worst_case_correct

from .conftest import CodedAttack, CodedL2Attack


def test_per_example_minimum_differs_from_minimum_of_means():
    # attack A breaks examples 0-1, attack B breaks 2-3: each alone leaves 50 %
    robust = np.array([[[0, 0, 1, 1]], [[1, 1, 0, 0]]], dtype=bool)
    worst = worst_case_correct(robust, ["linf", "linf"])["linf"]
    assert robust.mean(axis=2).min() == 0.5
    assert worst.mean() == 0.0


def test_clean_mistakes_count_against_every_attack():
    clean = np.array([True, False, True])
    adversarial = np.ones((1, 2, 3), dtype=bool)  # an attack that "repairs" example 1
    robust = robust_correct(clean, adversarial)
    assert robust[0, :, 1].tolist() == [False, False]
    assert robust.sum() == 4


def test_groups_are_separate_and_cumulative_over_radii():
    robust = np.array([
        [[1, 1], [0, 1], [1, 1]],  # linf attack: breaks example 0 only at the middle radius
        [[1, 0], [1, 0], [1, 0]],  # l2 attack
    ], dtype=bool)
    worst = worst_case_correct(robust, ["linf", "l2"], epsilons=[0.0, 0.1, 0.2])
    assert set(worst) == {"linf", "l2"}
    # a perturbation found at 0.1 lies in the 0.2 ball too: example 0 stays broken
    assert worst["linf"].tolist() == [[True, True], [False, True], [False, True]]
    assert worst["l2"].tolist() == [[True, False]] * 3


def test_rejects_unsorted_radii_and_bad_shapes():
    robust = np.ones((1, 2, 3), dtype=bool)
    with pytest.raises(ValueError, match="sorted"):
        worst_case_correct(robust, ["linf"], epsilons=[0.2, 0.1])
    with pytest.raises(ValueError, match="shape"):
        worst_case_correct(robust, ["linf", "l2"])


def test_evaluate_headline_is_per_example(coded):
    model, X, y = coded
    report = robustlearn.evaluate(
        model, X, y, attacks=[CodedAttack(code=0.1), CodedAttack(code=0.2)],
        epsilons=[0, 0.05, 0.2],
    )
    per_attack = np.array([a["accuracy"] for a in report.attacks])
    assert per_attack[:, 2].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert report.worst_case["linf"]["accuracy"] == pytest.approx([1.0, 1.0, 1 / 3])
    assert report.worst_case["linf"]["n_correct"] == [30, 30, 10]
    # the two instances share a name, so the report tells them apart by parameters
    assert [a["key"] for a in report.attacks] == ["CodedAttack",
                                                  "CodedAttack(code=0.2)"]


def test_headline_is_monotone_when_an_attack_is_not(coded):
    model, X, y = coded
    flaky = CodedAttack(code=0.1, max_epsilon=0.2)  # gives up above 0.2
    report = robustlearn.evaluate(model, X, y, attacks=[flaky], epsilons=[0, 0.2, 0.3])
    assert report.attacks[0]["accuracy"] == pytest.approx([1.0, 2 / 3, 1.0])
    assert report.worst_case["linf"]["accuracy"] == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert any("rises with epsilon" in note for note in report.notes)


def test_norms_give_separate_headlines(coded):
    model, X, y = coded
    report = robustlearn.evaluate(
        model, X, y, attacks=[CodedAttack(code=0.1), CodedL2Attack(code=0.2)],
        epsilons=[0, 0.2],
    )
    assert report.worst_case["linf"]["attacks"] == ["CodedAttack"]
    assert report.worst_case["l2"]["attacks"] == ["CodedL2Attack"]
    assert report.headline == {"linf": pytest.approx([1.0, 2 / 3]),
                               "l2": pytest.approx([1.0, 2 / 3])}
