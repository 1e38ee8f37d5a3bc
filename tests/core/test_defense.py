"""The estimator contract, checked on every registered defense.

Each defense is built with its ``_test_params`` (small and fast) and trained
on a 600-sample subset of the embedded digits data.
"""

from __future__ import annotations

import copy
import inspect
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import robustlearn
from robustlearn import BaseDefense
from robustlearn.datasets import load
from robustlearn.defense import COMMON_PARAMS
from robustlearn.device import resolve_device
from robustlearn.estimator_checks import fast_instance
from robustlearn.registry import get_registry

DEFENSES = robustlearn.list_defenses()
_FITTED: dict = {}


def make(name, **params):
    """A fast instance of the registered defense ``name`` (CPU unless ``device`` is given)."""
    params.setdefault("random_state", 0)
    return fast_instance(get_registry().get("defense", name).factory, **params)


@pytest.fixture(scope="module")
def data():
    X, y = load("digits", "train", n=600, random_state=0)
    X_test, y_test = load("digits", "test")
    return X, y, X_test, y_test


@pytest.fixture(params=DEFENSES)
def name(request):
    return request.param


@pytest.fixture
def fitted(name, data):
    """The defense fitted once per module with ``device="auto"`` (shared: do not mutate)."""
    if name not in _FITTED:
        X, y, _, _ = data
        _FITTED[name] = make(name, device="auto").fit(X, y)
    return _FITTED[name]


def _flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def _deterministic(est):
    return not robustlearn.get_defense_tags(est).stochastic


# -- fit / predict / score ----------------------------------------------------------------

def test_fit_learns_and_sets_fitted_attributes(fitted, data):
    _, y, X_test, y_test = data
    assert fitted.score(X_test, y_test) > 0.7  # chance is 0.1
    np.testing.assert_array_equal(fitted.classes_, np.arange(10))
    assert fitted.n_features_in_ == 64 and fitted.input_shape_ == (1, 8, 8)
    assert isinstance(fitted.module_, torch.nn.Module) and fitted.module_ is fitted.net_.module_
    assert not fitted.module_.training
    if type(fitted)._train is BaseDefense._train:  # a defense with training phases may differ
        assert len(fitted.net_.history) == fitted.max_epochs
    assert len(fitted.net_.history) >= 1
    assert np.isfinite(fitted.detect_threshold_)


def test_fit_returns_self(name, data):
    X, y, _, _ = data
    est = make(name, max_epochs=1)
    assert est.fit(X[:100], y[:100]) is est


def test_predict_proba_predict_and_score_agree(fitted, data, name):
    _, _, X_test, y_test = data
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(proba >= 0)
    log_proba = fitted.predict_log_proba(X_test)
    if _deterministic(fitted):
        np.testing.assert_allclose(np.exp(log_proba), proba, atol=1e-5)
    else:  # two calls of a stochastic defense are two independent draws
        np.testing.assert_allclose(np.exp(log_proba).sum(axis=1), 1.0, atol=1e-5)
    pred = fitted.predict(X_test)
    assert pred.shape == (len(X_test),)
    if _deterministic(fitted):
        np.testing.assert_array_equal(pred, fitted.classes_[proba.argmax(axis=1)])
        assert fitted.score(X_test, y_test) == pytest.approx(accuracy_score(y_test, pred))


def test_detect_is_calibrated_on_clean_data(fitted, data):
    _, _, X_test, _ = data
    scores = fitted.detect_score(X_test)
    flagged = fitted.detect(X_test)
    assert scores.shape == flagged.shape == (len(X_test),)
    assert flagged.dtype == bool and scores.dtype == np.float64
    if _deterministic(fitted):
        np.testing.assert_array_equal(flagged, scores > fitted.detect_threshold_)
    # calibrated to accept detect_tpr = 95 % of in-distribution data: a few % flagged, not most
    assert 0.0 < flagged.mean() < 0.25


def test_calibrate_detector_sets_the_threshold_on_the_given_images(fitted, data):
    _, _, X_test, _ = data
    est = copy.deepcopy(fitted)
    held_out, rest = X_test[:150], X_test[150:]
    assert est.calibrate_detector(held_out) is est
    if _deterministic(est):
        # accepts detect_tpr = 95 % of the calibration images ('higher' quantile: at least)
        assert 0.0 < est.detect(held_out).mean() <= 0.05
    assert est.detect(rest).mean() < 0.25
    with pytest.raises(ValueError, match="features"):
        est.calibrate_detector(X_test.reshape(len(X_test), -1)[:, :10])


def test_calibrate_detector_requires_a_fitted_estimator(name, data):
    with pytest.raises(NotFittedError):
        make(name).calibrate_detector(data[2][:20])


def test_detect_tpr_moves_the_threshold(name, data):
    X, y, X_test, _ = data
    loose = make(name, max_epochs=2, detect_tpr=0.5).fit(X, y)
    strict = make(name, max_epochs=2, detect_tpr=0.99).fit(X, y)
    assert loose.detect(X_test).mean() > strict.detect(X_test).mean()


# -- logits: the attack surface ---------------------------------------------------------------

def test_logits_are_differentiable_and_cover_prediction(fitted, data):
    _, _, X_test, _ = data
    x = torch.from_numpy(X_test[:32]).requires_grad_(True)
    out = fitted.logits(x)
    assert out.shape == (32, 10) and out.device == fitted.device_
    (grad,) = torch.autograd.grad(out[:, 3].sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0
    if _deterministic(fitted):
        np.testing.assert_array_equal(fitted.classes_[out.argmax(1).cpu().numpy()],
                                      fitted.predict(X_test[:32]))
        flat = fitted.logits(torch.from_numpy(X_test[:32]).reshape(32, -1))
        torch.testing.assert_close(flat, out.detach())


def test_attack_surfaces_default_is_logits(fitted, data):
    surfaces = fitted.attack_surfaces()
    assert "default" in surfaces
    x = torch.from_numpy(data[2][:8])
    if _deterministic(fitted):
        torch.testing.assert_close(surfaces["default"](x), fitted.logits(x))
    assert all(callable(f) for f in surfaces.values())


def test_device_auto_uses_cuda_when_present(fitted):
    assert fitted.device == "auto"
    assert fitted.device_ == resolve_device("auto")
    assert fitted.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")


# -- inputs: labels, shapes, dtypes -------------------------------------------------------

def test_string_labels(fitted, name, data):
    X, y, X_test, y_test = data
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    named = make(name, device="auto").fit(X, words[y])
    np.testing.assert_array_equal(named.classes_, np.sort(words))
    pred = named.predict(X_test)
    assert pred.dtype.kind == "U" and set(pred) <= set(words)
    # as good as the same defense trained on integer labels
    assert named.score(X_test, words[y_test]) > fitted.score(X_test, y_test) - 0.1


def test_string_labels_in_sorted_order_give_the_same_model(name, data):
    X, y, X_test, _ = data
    labels = np.array([f"digit-{k}" for k in range(10)])  # sorts like 0..9
    named = make(name, max_epochs=2, device="cpu").fit(X, labels[y])
    numbered = make(name, max_epochs=2, device="cpu").fit(X, y)
    if _deterministic(named):
        np.testing.assert_array_equal(named.predict(X_test), labels[numbered.predict(X_test)])


def test_n_features_in_is_checked_at_predict(fitted, data):
    _, _, X_test, _ = data
    with pytest.raises(ValueError, match="64 features"):
        fitted.predict(X_test[:, :, :4, :4])
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(np.zeros((3, 63), dtype=np.float32))


def test_uint8_images_are_scaled(fitted, data):
    _, _, X_test, _ = data
    as_bytes = np.round(X_test * 255).astype(np.uint8)
    if _deterministic(fitted):
        np.testing.assert_array_equal(fitted.predict_proba(as_bytes),
                                      fitted.predict_proba(as_bytes.astype(np.float32) / 255))
    assert fitted.score(as_bytes, data[3]) > 0.7


def test_image_ranks_give_the_same_predictions(fitted, data):
    _, _, X_test, _ = data
    if not _deterministic(fitted):
        pytest.skip("stochastic prediction")
    reference = fitted.predict_proba(X_test)
    for variant in (X_test[:, 0], _flatten(X_test), X_test.astype(np.float64), X_test.tolist()):
        np.testing.assert_allclose(fitted.predict_proba(variant), reference, rtol=0, atol=1e-6)


def test_fit_on_hw_images_equals_fit_on_chw(name, data):
    X, y, X_test, _ = data
    on_chw = make(name, max_epochs=2, device="cpu").fit(X, y)
    on_hw = make(name, max_epochs=2, device="cpu").fit(X[:, 0], y)
    assert on_hw.input_shape_ == (1, 8, 8) and on_hw.n_features_in_ == 64
    if _deterministic(on_hw):
        np.testing.assert_array_equal(on_hw.predict_proba(X_test), on_chw.predict_proba(X_test))


def test_multichannel_images(name):
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 20)
    X = rng.uniform(0, 0.3, size=(60, 3, 6, 5)).astype(np.float32)
    X[np.arange(60), y] += 0.6  # the class lights up one colour channel
    est = make(name).fit(X, y)
    assert est.input_shape_ == (3, 6, 5) and est.n_features_in_ == 90
    assert est.score(X, y) > 0.9


# -- reproducibility ----------------------------------------------------------------------

def _weights(est):
    return {k: v.detach().cpu().clone() for k, v in est.module_.state_dict().items()}


def test_random_state_is_bitwise_reproducible_on_cpu(name, data):
    X, y, X_test, _ = data
    first = make(name, max_epochs=3, device="cpu", random_state=7).fit(X, y)
    torch.manual_seed(123)  # the global RNG must not matter
    np.random.seed(123)
    second = make(name, max_epochs=3, device="cpu", random_state=7).fit(X, y)
    other = make(name, max_epochs=3, device="cpu", random_state=8).fit(X, y)
    a, b, c = _weights(first), _weights(second), _weights(other)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.detect_threshold_ == second.detect_threshold_
    if _deterministic(first):
        np.testing.assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))


def test_fit_leaves_the_global_rngs_alone(name, data):
    X, y, _, _ = data
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    make(name, max_epochs=1, device="cpu").fit(X[:100], y[:100])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()


def test_random_state_object_is_accepted(name, data):
    X, y, _, _ = data
    est = make(name, max_epochs=1, random_state=np.random.RandomState(3)).fit(X[:100], y[:100])
    assert hasattr(est, "module_")


# -- parameters, clone, persistence -----------------------------------------------------

def test_parameters_are_the_union_of_the_init_signatures(name):
    cls = get_registry().get("defense", name).factory
    kinds = {p.kind for p in inspect.signature(cls.__init__).parameters.values()}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    declared = set()
    for klass in cls.__mro__[: cls.__mro__.index(robustlearn.BaseDefense) + 1]:
        if "__init__" in vars(klass):
            declared |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                         if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    params = cls().get_params()
    assert set(COMMON_PARAMS) <= set(params)
    assert set(params) == declared - {"self"}
    assert set(cls._test_params) <= set(params)


def test_routed_parameters_survive_clone_and_reach_the_optimizer(name, data):
    est = make(name, optimizer__weight_decay=1e-3)
    assert est.get_params()["optimizer__weight_decay"] == 1e-3
    copy = clone(est).set_params(optimizer__weight_decay=2e-3)
    assert copy.optimizer__weight_decay == 2e-3 and est.optimizer__weight_decay == 1e-3
    if name == "mlp":
        X, y = data[:2]
        copy.set_params(max_epochs=1).fit(X, y)
        assert copy.net_.optimizer_.param_groups[0]["weight_decay"] == 2e-3


def test_unknown_keyword_is_a_clear_type_error_before_training(name, data):
    cls = get_registry().get("defense", name).factory
    est = cls(lerning_rate=0.1)  # scikit-learn's contract: __init__ stores, fit validates
    with pytest.raises(TypeError, match="unexpected parameter 'lerning_rate'"):
        est.fit(*data[:2])
    assert not hasattr(est, "module_")


def test_set_params_round_trip(name):
    est = make(name)
    est.set_params(lr=0.05, max_epochs=2)
    assert est.get_params()["lr"] == 0.05 and est.max_epochs == 2
    with pytest.raises(ValueError):
        est.set_params(not_a_parameter=1)


def test_clone_is_unfitted_and_equal(fitted):
    copy = clone(fitted)
    assert type(copy) is type(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "module_") and not hasattr(copy, "classes_")
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((1, 1, 8, 8), dtype=np.float32))


@pytest.mark.parametrize("dumps, loads", [
    (pickle.dumps, pickle.loads),
    (None, None),  # joblib through a file
], ids=["pickle", "joblib"])
def test_persistence_round_trip(fitted, data, tmp_path, dumps, loads):
    _, _, X_test, _ = data
    if dumps is None:
        joblib.dump(fitted, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    else:
        restored = loads(dumps(fitted))
    assert restored.get_params() == fitted.get_params()
    assert restored.module_ is restored.net_.module_ and not restored.module_.training
    if _deterministic(fitted):
        np.testing.assert_array_equal(restored.predict_proba(X_test), fitted.predict_proba(X_test))
        np.testing.assert_array_equal(restored.detect(X_test), fitted.detect(X_test))
        x = torch.from_numpy(X_test[:8])
        assert torch.equal(restored.logits(x), fitted.logits(x))
    np.testing.assert_array_equal(restored.classes_, fitted.classes_)


def test_unfitted_estimator_pickles_and_refuses_to_predict(name):
    restored = pickle.loads(pickle.dumps(make(name)))
    with pytest.raises(NotFittedError):
        restored.predict_proba(np.zeros((1, 64), dtype=np.float32))
    with pytest.raises(NotFittedError):
        restored.logits(torch.zeros(1, 64))


# -- scikit-learn composition -------------------------------------------------------------

def test_pipeline(name, data):
    X, y, X_test, y_test = data
    pipe = Pipeline([("flatten", FunctionTransformer(_flatten)), ("defense", make(name))])
    pipe.fit(X, y)
    assert pipe.named_steps["defense"].input_shape_ == (1, 1, 64)
    assert pipe.score(X_test, y_test) > 0.7
    pipe.set_params(defense__max_epochs=1)
    assert clone(pipe).named_steps["defense"].max_epochs == 1


def test_grid_search_over_a_defense_parameter(name, data):
    X, y, X_test, y_test = data
    search = GridSearchCV(make(name, max_epochs=4), {"lr": [1e-4, 1e-2]}, cv=2, n_jobs=2)
    search.fit(X[:300], y[:300])
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    assert search.best_params_["lr"] in (1e-4, 1e-2)
    assert search.best_estimator_.lr == search.best_params_["lr"]
    assert search.score(X_test, y_test) > 0.3


def test_a_defense_that_lists_every_parameter_itself_still_clones_and_fits(data):
    # third-party defenses written before **kwargs routing restate the shared parameters
    class Restating(BaseDefense):
        def __init__(self, alpha=1.0, *, max_epochs=3, batch_size=64, lr=1e-2, optimizer="adam",
                     calibration_fraction=0.1, detect_tpr=0.95, device="cpu", random_state=0,
                     verbose=0):
            self.alpha = alpha
            super().__init__(max_epochs=max_epochs, batch_size=batch_size, lr=lr,
                             optimizer=optimizer, calibration_fraction=calibration_fraction,
                             detect_tpr=detect_tpr, device=device, random_state=random_state,
                             verbose=verbose)

        def _build_module(self, input_shape, n_classes):
            return torch.nn.Sequential(torch.nn.Flatten(),
                                       torch.nn.Linear(int(np.prod(input_shape)), n_classes))

    est = clone(Restating(alpha=2.0))
    assert "callbacks" not in est.get_params() and est.alpha == 2.0
    X, y, X_test, y_test = data
    assert est.fit(X, y).score(X_test, y_test) > 0.5
