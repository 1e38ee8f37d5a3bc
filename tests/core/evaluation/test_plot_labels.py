"""Plots a reader can read: short legend labels, the norm on the axis, percent, the dataset."""

import pytest

import robustlearn

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def report(fitted_mlp, digits):
    _, _, X_test, y_test = digits
    attacks = ["fgsm", ("linf-pgd", {"steps": 5, "rel_stepsize": 0.5}),
               ("linf-pgd", {"steps": 10, "rel_stepsize": 0.25})]
    return robustlearn.evaluate(fitted_mlp, X_test[:60], y_test[:60], attacks=attacks,
                                epsilons=[0, 0.1, 0.2],
                                metadata={"dataset": "digits", "defense": "mlp"})


def test_report_plot_is_labelled_for_readers(report):
    ax = report.plot().axes[0]
    assert "L\u221e" in ax.get_xlabel() and "\u03b5" in ax.get_xlabel()
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "50%"
    assert ax.get_title().startswith("digits: mlp")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["fgsm", "linf-pgd", "linf-pgd #2", "worst case per example"]
    assert not any("=" in label or "{" in label for label in labels)


def test_comparison_plot_names_the_dataset_and_the_norm(report):
    from robustlearn.evaluation import plot_comparison

    ax = plot_comparison({"mlp": report, "again": report}).axes[0]
    assert ax.get_title() == ("digits: worst case per example, n = 60\n"
                              "over fgsm, linf-pgd, linf-pgd #2")
    assert "rel_stepsize" not in ax.get_title() and "L\u221e" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mlp", "again"]


def test_detector_aware_curve_is_correct_or_flagged(fitted_mlp, digits):
    _, _, X_test, y_test = digits
    report = robustlearn.evaluate(fitted_mlp, X_test[:40], y_test[:40],
                                  attacks=[("detector-aware-pgd", {"steps": 3})],
                                  epsilons=[0, 0.2], metadata={"dataset": "digits"})
    row = report.attacks[0]
    assert all(b >= a for a, b in zip(row["accuracy"], row["correct_or_flagged"]))
    ax = report.plot().axes[0]
    line = next(line for line in ax.get_lines()
                if line.get_label() == "detector-aware-pgd: correct or flagged")
    assert list(line.get_ydata()) == row["correct_or_flagged"]
