"""Attacks batch to a memory budget: the batches change neither the images of a deterministic
attack nor when bad settings are refused."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import robustlearn
from robustlearn import memory
from robustlearn.attacks.victim import Victim

# Attacks that draw no random numbers (random starts off, first FAB run from the input), one
# of each implementation: own torch loops, APGD, FAB, Foolbox, the detector-aware joint attack.
DETERMINISTIC = [
    ("fgsm", 0.1, {}),
    ("linf-pgd", 0.1, {"steps": 10, "random_start": False}),
    ("linf-pgd", 0.1, {"steps": 10, "random_start": False, "backend": "foolbox"}),
    ("l2-pgd", 0.5, {"steps": 10, "random_start": False}),
    ("apgd-ce", 0.1, {"steps": 10, "random_start": False}),
    ("apgd-t", 0.1, {"steps": 5, "random_start": False, "n_target_classes": 2}),
    ("fab", 0.1, {"steps": 10}),
    ("linf-deepfool", 0.1, {"steps": 10}),
    ("l2-cw", 0.5, {"steps": 20, "binary_search_steps": 2}),
    ("detector-aware-pgd", 0.1, {"steps": 10, "restarts": 1}),
]


@pytest.fixture(scope="module")
def forty(digits_test):
    X, y = digits_test
    return X[:40], y[:40]


def _count_batches(monkeypatch, attack):
    """Patch the attack's class so that every batch it runs is counted."""
    calls = []
    cls = type(attack)
    original = cls._run

    def counted(self, victim, x, labels, epsilons):
        calls.append(len(x))
        return original(self, victim, x, labels, epsilons)

    monkeypatch.setattr(cls, "_run", counted)
    return calls


@pytest.mark.parametrize("name, eps, params", DETERMINISTIC,
                         ids=[f"{n}-{p.get('backend', '')}" for n, _, p in DETERMINISTIC])
def test_batches_of_7_give_the_images_of_one_batch(fitted_mlp, forty, name, eps, params):
    X, y = forty

    def run(batch_size):
        return robustlearn.make_attack(name, epsilon=eps, estimator=fitted_mlp, random_state=0,
                                       batch_size=batch_size, **params).transform(X, y)

    whole, in_sevens = run(None), run(7)
    # equal up to float rounding: BLAS may sum a product of 7 rows and of 40 rows in another
    # order (differences of 6e-8 seen here)
    np.testing.assert_allclose(in_sevens, whole, rtol=0, atol=1e-6)
    assert not np.array_equal(whole, X)  # the attack did something


def test_a_tiny_memory_budget_runs_many_batches_with_the_same_images(fitted_mlp, forty,
                                                                    monkeypatch):
    X, y = forty
    per_sample = Victim(fitted_mlp).bytes_per_sample()
    params = dict(epsilon=0.1, estimator=fitted_mlp, steps=10, random_start=False, batch_size=None)
    whole = robustlearn.make_attack("linf-pgd", **params).transform(X, y)
    attack = robustlearn.make_attack("linf-pgd", memory_budget=7 * per_sample, **params)
    calls = _count_batches(monkeypatch, attack)
    np.testing.assert_allclose(attack.transform(X, y), whole, rtol=0, atol=1e-6)
    assert calls == [7] * 5 + [5]
    # the process-wide budget does the same for an attack without its own
    calls.clear()
    with memory.budget(7 * per_sample):
        again = robustlearn.make_attack("linf-pgd", **params).transform(X, y)
    np.testing.assert_allclose(again, whole, rtol=0, atol=1e-6)
    assert calls == [7] * 5 + [5]
    # batch_size is the most per batch, the budget lowers it further
    calls.clear()
    robustlearn.make_attack("linf-pgd", **{**params, "batch_size": 16}).transform(X, y)
    assert calls == [16, 16, 8]
    calls.clear()
    robustlearn.make_attack("linf-pgd", memory_budget=13 * per_sample,
                            **{**params, "batch_size": 16}).transform(X, y)
    assert calls == [13, 13, 13, 1]


def test_the_memory_of_an_image_counts_every_layer_and_eot_draw(fitted_mlp):
    one = Victim(fitted_mlp).bytes_per_sample()
    assert one == memory.activation_bytes_per_sample(fitted_mlp.module_,
                                                     fitted_mlp.input_shape_)
    # three draws keep three graphs for the backward pass (the input once)
    assert Victim(fitted_mlp, eot_samples=3).bytes_per_sample() > 2.5 * one


def test_a_victim_without_network_keeps_the_configured_batch(digits, monkeypatch):
    X, y, X_test, y_test = digits
    flat = X.reshape(len(X), -1)
    clf = LogisticRegression(max_iter=200).fit(flat, y)
    assert Victim(clf).bytes_per_sample() is None
    attack = robustlearn.make_attack("uniform-noise", epsilon=0.1, estimator=clf,
                                     batch_size=None, random_state=0)
    calls = _count_batches(monkeypatch, attack)
    attack.transform(X_test[:300].reshape(300, -1), y_test[:300])
    assert calls == [256, 44]


@pytest.mark.parametrize("param, value, error", [
    ("batch_size", 0, ValueError),
    ("batch_size", -3, ValueError),
    ("batch_size", 2.5, TypeError),
    ("memory_budget", 0, ValueError),
    ("memory_budget", -1024, ValueError),
    ("memory_budget", "1GB", TypeError),
    ("memory_budget", 1.5e9, TypeError),
])
def test_bad_batch_settings_are_refused_before_any_work(fitted_mlp, forty, monkeypatch, param,
                                                       value, error):
    X, y = forty
    attack = robustlearn.make_attack("linf-pgd", epsilon=0.1, estimator=fitted_mlp,
                                     **{param: value})  # __init__ only stores
    calls = _count_batches(monkeypatch, attack)
    monkeypatch.setattr(Victim, "__init__", lambda *a, **k: pytest.fail("victim built"))
    with pytest.raises(error, match=param):
        attack.transform(X, y)
    with pytest.raises(error, match=param):
        attack.fit(X, y)
    assert calls == []


def test_evaluate_and_audit_take_a_memory_budget(fitted_mlp, forty, monkeypatch):
    X, y = forty
    per_sample = Victim(fitted_mlp).bytes_per_sample()
    kwargs = dict(attacks=[("linf-pgd", {"steps": 5, "random_start": False})],
                  epsilons=[0, 0.1], batch_size=20)
    default = robustlearn.evaluate(fitted_mlp, X, y, **kwargs)
    calls = _count_batches(monkeypatch, robustlearn.make_attack("linf-pgd"))
    tight = robustlearn.evaluate(fitted_mlp, X, y, memory_budget=7 * per_sample, **kwargs)
    assert tight.worst_case == default.worst_case
    assert calls == [7, 7, 6] * 2  # two units of 20 examples, each in batches of 7
    # units run side by side in threads: each sets the budget where it runs, none leaks out
    calls.clear()
    with joblib.parallel_backend("threading"):
        threaded = robustlearn.evaluate(fitted_mlp, X, y, memory_budget=7 * per_sample,
                                        n_jobs=2, **kwargs)
    assert threaded.worst_case == default.worst_case
    assert sorted(calls) == sorted([7, 7, 6] * 2)
    assert memory.memory_budget("cpu") != 7 * per_sample
    calls.clear()
    for bad, error in [(0, ValueError), ("big", TypeError)]:
        with pytest.raises(error, match="memory_budget"):
            robustlearn.evaluate(fitted_mlp, X, y, memory_budget=bad, **kwargs)
        with pytest.raises(error, match="memory_budget"):
            robustlearn.audit(fitted_mlp, X, y, 0.1, memory_budget=bad)
    assert calls == []


def test_the_budget_block_is_scoped_and_checked():
    with memory.budget(12345):
        assert memory.memory_budget("cpu") == 12345
        with memory.budget(None):
            assert memory.memory_budget("cpu") != 12345
        assert memory.memory_budget("cpu") == 12345
    assert memory.memory_budget("cpu") != 12345
    with pytest.raises(ValueError, match="nbytes"), memory.budget(0):
        pass


def test_an_attack_that_does_not_list_memory_budget_still_runs_and_clones(fitted_mlp, forty):
    from sklearn.base import clone

    from robustlearn.attacks import BaseAttack

    class Shift(BaseAttack):
        norm = "linf"

        def __init__(self, epsilon=None, *, estimator=None, batch_size=256, random_state=None):
            super().__init__(epsilon, estimator=estimator, batch_size=batch_size,
                             random_state=random_state)

        def _run(self, victim, x, labels, epsilons):
            return torch.stack([x + 1 for _ in epsilons])

    attack = Shift(epsilon=0.1, estimator=fitted_mlp)
    assert "memory_budget" not in vars(attack)  # scikit-learn: __init__ sets parameters only
    X, y = forty
    np.testing.assert_allclose(attack.transform(X, y), np.minimum(X + 0.1, 1), atol=1e-6)
    assert set(clone(attack).get_params(deep=False)) == {"epsilon", "estimator", "batch_size",
                                                         "random_state"}


def test_the_evaluate_command_takes_a_memory_budget(tmp_path, capsys, monkeypatch):
    import json

    from robustlearn import cli
    from robustlearn.plugins.baselines import MLPClassifier

    base = ["evaluate", "--dataset", "digits", "--defense", "mlp", "--set", "max_epochs=2",
            "--set", "hidden_layer_sizes=(16,)", "--train-n", "300", "--attack", "fgsm",
            "--epsilons", "0,0.1", "--test-n", "40"]
    fit = MLPClassifier.fit
    monkeypatch.setattr(MLPClassifier, "fit", lambda *a, **k: pytest.fail("trained"))
    assert cli.main([*base, "--memory-budget", "lots", "--out", str(tmp_path / "bad")]) == 2
    assert "--memory-budget must be a positive size" in capsys.readouterr().err
    monkeypatch.setattr(MLPClassifier, "fit", fit)
    out = tmp_path / "ok"
    assert cli.main([*base, "--memory-budget", "64MiB", "--out", str(out)]) == 0
    first = json.loads((out / "evaluation.jsonl").read_text().splitlines()[0])
    assert f'"memory_budget": {64 * 1024**2}' in json.dumps(first)
