"""RobustnessReport: JSON round trip, markdown, data frame and plots."""

import json
import sys

import pytest

import robustlearn
from robustlearn.evaluation import RobustnessReport, plot_comparison

from .conftest import CodedAttack, CodedL2Attack, ThresholdClassifier, make_coded_data


@pytest.fixture(scope="module")
def report():
    import numpy as np

    X, y = make_coded_data(np.repeat([0.1, 0.2, 0.3], 10), np.tile([0, 1], 15))
    model = ThresholdClassifier(detector=True).fit(X, y)
    return robustlearn.evaluate(
        model, X, y, attacks=[CodedAttack(code=0.1), CodedAttack(code=0.2),
                              CodedL2Attack(code=0.3)],
        epsilons=[0, 0.05, 0.2], metadata={"dataset": "coded"},
    )


def test_json_round_trip(report, tmp_path):
    text = report.to_json(tmp_path / "report.json")
    assert json.loads(text)["format"] == "robustlearn.robustness-report/1"
    assert RobustnessReport.from_json(text) == report
    assert RobustnessReport.from_json(tmp_path / "report.json") == report
    assert RobustnessReport.from_json(str(tmp_path / "report.json")) == report


def test_from_json_rejects_other_documents():
    with pytest.raises(ValueError, match="not a robustness report"):
        RobustnessReport.from_json('{"format": "something-else"}')


def test_markdown_states_the_numbers_and_the_rule(report):
    text = report.to_markdown()
    assert "## Robustness of ThresholdClassifier" in text
    assert "30 examples of coded" in text
    assert "Clean accuracy 100.0 %" in text
    assert "### linf attacks" in text and "### l2 attacks" in text
    # linf worst case at 0.2: codes 0.1 and 0.2 both broken, a third survives
    assert "| 0.2 | 66.7 | 66.7 | **33.3** | [19.2, 51.2] |" in text
    assert "per example, the minimum over the group's attacks" in text
    assert "flagged: CodedAttack" in text  # the detector's rates
    assert "foolbox 3.3.4" in text and "random_state=0" in text
    assert "has_detector=True" in text


def test_frame(report):
    pd = pytest.importorskip("pandas")
    frame = report.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == (3 + 2) * 3  # 3 attack curves and 2 worst cases, 3 radii each
    worst = frame[(frame.curve == "worst case") & (frame.key == "linf")]
    assert worst.accuracy.round(4).tolist() == [1.0, 1.0, 0.3333]
    assert set(frame.columns) >= {"epsilon", "ci_low", "ci_high", "n", "detection_rate"}


def test_frame_without_pandas(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        report.to_frame()


def test_plot_writes_a_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    fig = report.plot(tmp_path / "robustness.png")
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.get_axes()
    assert len(axes) == 2  # one per norm group
    labels = [line.get_label() for line in axes[0].get_lines()]
    # short labels; the parameters that tell the two apart are in the report
    assert labels == ["CodedAttack", "CodedAttack #2", "worst case per example"]
    worst_line = axes[0].get_lines()[-1]
    assert list(worst_line.get_ydata()) == pytest.approx([1.0, 1.0, 1 / 3])


def test_plot_into_given_axes(report):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        assert report.plot(ax=ax) is fig
        assert len(ax.get_lines()) == 5  # every group on the one axes
    finally:
        plt.close(fig)


def test_plot_comparison(report, tmp_path):
    pytest.importorskip("matplotlib")
    fig = plot_comparison({"a": report, "b": report}, tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").stat().st_size > 0
    assert [line.get_label() for line in fig.get_axes()[0].get_lines()] == ["a", "b"]
    with pytest.raises(ValueError, match="no 'l1' worst case"):
        plot_comparison({"a": report}, group="l1")


def test_plot_without_matplotlib(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="needs matplotlib"):
        report.plot()
