"""An interrupted evaluation resumed from its log equals an uninterrupted one."""

import json

import pytest

import robustlearn
from robustlearn.evaluation.journal import JOURNAL_NAME, EvaluationJournal

ATTACKS = ["fgsm", ("linf-pgd", {"steps": 5})]  # linf-pgd starts at random: seeds matter
EPSILONS = [0, 0.1, 0.2]

#: Fields that describe the run rather than its results.
RUN_FIELDS = ("wall_seconds", "compute_seconds", "n_batches_resumed")


class Interrupted(Exception):
    pass


def _results(report):
    data = report.to_dict()
    for key in RUN_FIELDS:
        data.pop(key)
    for attack in data["attacks"]:
        attack.pop("seconds")
    return data


def _records(path):
    lines = (path / JOURNAL_NAME).read_text().splitlines()[1:]
    return {(r["unit"], r["batch"]): (r["correct"], r["flagged"], r["seed"])
            for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def run(fitted_mlp, digits_small):
    X, y = digits_small

    def run(out_dir, **kwargs):
        return robustlearn.evaluate(fitted_mlp, X, y, attacks=ATTACKS, epsilons=EPSILONS,
                                    batch_size=40, out_dir=out_dir, **kwargs)

    return run


@pytest.mark.parametrize("k", [1, 4, 8])  # inside the first batch, mid-run, in the last batch
def test_resumed_run_equals_uninterrupted_run(run, tmp_path, monkeypatch, k):
    full = run(tmp_path / "full")

    calls = {"n": 0}
    append = EvaluationJournal.append

    def append_then_fail(self, record):
        append(self, record)
        calls["n"] += 1
        if calls["n"] == k:
            raise Interrupted

    monkeypatch.setattr(EvaluationJournal, "append", append_then_fail)
    with pytest.raises(Interrupted):
        run(tmp_path / "cut")
    monkeypatch.undo()
    assert len(_records(tmp_path / "cut")) == k

    resumed = run(tmp_path / "cut", resume=True)
    assert _results(resumed) == _results(full)
    assert _records(tmp_path / "cut") == _records(tmp_path / "full")
    assert resumed.n_batches_resumed == k // 3  # 3 units (clean + 2 attacks) per batch
    # nothing was recomputed: one line per unit and batch
    assert len((tmp_path / "cut" / JOURNAL_NAME).read_text().splitlines()) == 1 + 3 * 3


def test_line_cut_short_is_redone(run, tmp_path):
    full = run(tmp_path / "full")
    log = tmp_path / "full" / JOURNAL_NAME
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    resumed = run(tmp_path / "full", resume=True)
    assert _results(resumed) == _results(full)
    assert len(log.read_text().splitlines()) == len(lines)


def test_complete_log_resumes_without_work(run, tmp_path):
    first = run(tmp_path / "done")
    again = run(tmp_path / "done", resume=True)
    assert again.n_batches_resumed == again.n_batches == 3
    assert again.compute_seconds == pytest.approx(first.compute_seconds)


def test_existing_log_is_never_overwritten(run, tmp_path):
    run(tmp_path / "done")
    with pytest.raises(ValueError, match="resume=True"):
        run(tmp_path / "done")


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(epsilons=[0, 0.1, 0.3]), "epsilons"),
        (dict(attacks=["fgsm"]), "attacks"),
        (dict(batch_size=30), "batch_size"),
        (dict(random_state=1), "random_state"),
    ],
)
def test_config_mismatch_is_a_clear_error(fitted_mlp, digits_small, tmp_path, change, field):
    X, y = digits_small
    call = dict(attacks=ATTACKS, epsilons=EPSILONS, batch_size=40, out_dir=tmp_path)
    robustlearn.evaluate(fitted_mlp, X[:40], y[:40], **call)
    call.update(change)
    with pytest.raises(ValueError, match=f"differs .* in .*{field}"):
        robustlearn.evaluate(fitted_mlp, X[:40], y[:40], resume=True, **call)


def test_other_data_or_model_is_a_mismatch(fitted_mlp, digits_small, tmp_path):
    X, y = digits_small
    call = dict(attacks=["fgsm"], epsilons=[0.1], out_dir=tmp_path)
    robustlearn.evaluate(fitted_mlp, X[:40], y[:40], **call)
    with pytest.raises(ValueError, match="data.X"):
        robustlearn.evaluate(fitted_mlp, X[40:80], y[40:80], resume=True, **call)
    other = robustlearn.make_defense("mlp", hidden_layer_sizes=(8,), max_epochs=1,
                                     random_state=1, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="fingerprint"):
        robustlearn.evaluate(other, X[:40], y[:40], resume=True, **call)


def test_not_a_log(tmp_path, fitted_mlp, digits_small):
    X, y = digits_small
    (tmp_path / JOURNAL_NAME).write_text("hello\n")
    with pytest.raises(ValueError, match="not a robustlearn evaluation log"):
        robustlearn.evaluate(fitted_mlp, X[:10], y[:10], attacks=["fgsm"], epsilons=[0.1],
                             out_dir=tmp_path, resume=True)


def test_valid_json_without_its_newline_is_redone(run, tmp_path):
    full = run(tmp_path / "full")
    log = tmp_path / "full" / JOURNAL_NAME
    records = _records(tmp_path / "full")
    log.write_text(log.read_text()[:-1])  # the last record lost only its newline
    resumed = run(tmp_path / "full", resume=True)
    assert _results(resumed) == _results(full)
    assert _records(tmp_path / "full") == records
    assert log.read_text().endswith("}\n") and log.read_text().count("\n") == 1 + 3 * 3
    assert resumed.n_batches_resumed == resumed.n_batches - 1
