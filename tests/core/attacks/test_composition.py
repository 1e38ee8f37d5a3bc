"""Attacks as steps of scikit-learn compositions: Pipeline, GridSearchCV."""

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import robustlearn


def small_mlp(**params):
    return robustlearn.make_defense("mlp", **{"hidden_layer_sizes": (32,), "max_epochs": 10,
                                              "lr": 1e-2, "random_state": 0, "device": "cpu",
                                              **params})


def test_transfer_attack_in_front_of_a_defense(digits):
    X, y, X_test, y_test = digits
    surrogate = small_mlp(random_state=1)
    pipe = Pipeline([
        ("attack", robustlearn.make_attack("fgsm", epsilon=0.2, surrogate=surrogate)),
        ("clf", small_mlp()),
    ]).fit(X, y)
    attack, defense = pipe.named_steps["attack"], pipe.named_steps["clf"]
    assert attack.victim_ is not surrogate and not hasattr(surrogate, "classes_")
    assert attack.victim_.score(X_test, y_test) > 0.8
    # predict/score run the attack step first (labels: the surrogate's predictions)
    X_transfer = attack.transform(X_test)
    assert pipe.score(X_test, y_test) == defense.score(X_transfer, y_test)
    # the examples transfer to an independently trained plain model ...
    plain = small_mlp(random_state=2).fit(X, y)
    assert plain.score(X_transfer, y_test) < plain.score(X_test, y_test) - 0.1
    # ... while the defense, fitted on the surrogate's adversarial training set, resists them
    assert defense.score(X_transfer, y_test) > plain.score(X_transfer, y_test) + 0.05
    assert clone(pipe).get_params()["attack__epsilon"] == 0.2


def test_grid_search_over_attack_epsilon_and_a_defense_parameter(digits):
    X, y, _, _ = digits
    pipe = Pipeline([
        ("attack", robustlearn.make_attack("fgsm", epsilon=0.0, surrogate=small_mlp())),
        ("clf", small_mlp()),
    ])
    grid = {"attack__epsilon": [0.0, 0.2], "clf__hidden_layer_sizes": [(16,), (32,)]}
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X[:600], y[:600])
    results = search.cv_results_
    scores = dict(zip(
        [(p["attack__epsilon"], p["clf__hidden_layer_sizes"]) for p in results["params"]],
        results["mean_test_score"],
    ))
    for hidden in [(16,), (32,)]:
        assert scores[(0.2, hidden)] < scores[(0.0, hidden)] - 0.1
    assert search.best_params_["attack__epsilon"] == 0.0
    assert search.best_score_ > 0.8


def test_attack_steps_are_reachable_as_nested_parameters():
    pipe = Pipeline([("attack", robustlearn.make_attack("linf-pgd", epsilon=0.1)),
                     ("clf", small_mlp())])
    pipe.set_params(attack__steps=7, attack__rel_stepsize=0.2, attack__random_start=False)
    attack = pipe.named_steps["attack"]
    assert (attack.steps, attack.rel_stepsize, attack.random_start) == (7, 0.2, False)


def test_list_epsilon_gives_one_set_per_epsilon(fitted_mlp, few):
    X, y = few
    attack = robustlearn.make_attack("linf-pgd", epsilon=[0.05, 0.2], estimator=fitted_mlp,
                                     steps=10, rel_stepsize=0.25).fit(X, y)
    adv = attack.transform(X, y)
    assert adv.shape == (2,) + X.shape
    accuracy = [(fitted_mlp.predict(a) == y).mean() for a in adv]
    assert accuracy[1] < accuracy[0]
    np.testing.assert_array_less(np.abs(adv[0] - X).max(), 0.05 + 1e-6)
