"""Bad input gives a clear ValueError/TypeError naming the culprit, before any training."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

import robustlearn
from robustlearn.estimator_checks import fast_instance
from robustlearn.registry import get_registry
from robustlearn.validation import (
    check_choice,
    check_device,
    check_float,
    check_images,
    check_int,
    check_int_tuple,
    check_random_state,
    check_unit_interval,
)

DEFENSES = robustlearn.list_defenses()

rng = np.random.RandomState(0)
X_GOOD = rng.uniform(size=(40, 1, 8, 8)).astype(np.float32)
Y_GOOD = np.arange(40) % 4


def _with(value, index=5):
    X = X_GOOD.copy()
    X.reshape(-1)[index] = value
    return X


# (id, X, y, exception, message pattern)
BAD_DATA = [
    ("nan", _with(np.nan), Y_GOOD, ValueError, r"X.*NaN|NaN.*X"),
    ("inf", _with(np.inf), Y_GOOD, ValueError, r"X.*infinity|infinity.*X"),
    ("nan-flat", _with(np.nan).reshape(40, -1), Y_GOOD, ValueError, "X contains NaN"),
    ("empty", X_GOOD[:0], Y_GOOD[:0], ValueError, "0 sample"),
    ("rank-1", X_GOOD.reshape(-1)[:40], Y_GOOD, ValueError, r"X must have shape .* 1 dim"),
    ("rank-0", np.float32(0.5), Y_GOOD, ValueError, r"X must have shape .* 0 dim"),
    ("rank-5", X_GOOD[:, None], Y_GOOD, ValueError, r"X must have shape .* 5 dimensions"),
    ("one-class", X_GOOD, np.zeros(40, dtype=int), ValueError, "only one class"),
    ("mismatched-lengths", X_GOOD, Y_GOOD[:30], ValueError, r"inconsistent numbers of samples"),
    ("y-none", X_GOOD, None, ValueError, "requires y"),
    ("y-2d", X_GOOD, np.c_[Y_GOOD, Y_GOOD], ValueError, r"y should be a 1d array"),
    ("y-continuous", X_GOOD, np.linspace(0, 1, 40), ValueError, "Unknown label type"),
    ("y-nan", X_GOOD, np.where(np.arange(40) == 3, np.nan, Y_GOOD), ValueError, "y contains NaN"),
    ("X-strings", np.full((40, 64), "a"), Y_GOOD, ValueError, "could not convert"),
    ("X-complex", X_GOOD.astype(np.complex64), Y_GOOD, ValueError, "[Cc]omplex"),
    ("X-sparse", sp.csr_matrix(X_GOOD.reshape(40, -1)), Y_GOOD, TypeError, "sparse"),
    ("X-ragged", [[0.0, 1.0], [0.5]] * 20, Y_GOOD, ValueError, "X must be a rectangular array"),
]

# (parameter, bad value, exception, message pattern); the shared parameters of every defense
BAD_COMMON_PARAMS = [
    ("max_epochs", -1, ValueError, "max_epochs must be >= 1"),
    ("max_epochs", 0, ValueError, "max_epochs must be >= 1"),
    ("max_epochs", 2.5, TypeError, "max_epochs must be an int"),
    ("max_epochs", "10", TypeError, "max_epochs must be an int"),
    ("max_epochs", True, TypeError, "max_epochs must be an int"),
    ("batch_size", 0, ValueError, "batch_size must be >= 1"),
    ("lr", 0.0, ValueError, "lr must be > 0"),
    ("lr", -1e-3, ValueError, "lr must be > 0"),
    ("lr", float("nan"), ValueError, "lr must be finite"),
    ("lr", "fast", TypeError, "lr must be a real number"),
    ("optimizer", "rmsprop", ValueError, "optimizer must be one of"),
    ("calibration_fraction", 0.9, ValueError, "calibration_fraction must be <= 0.5"),
    ("detect_tpr", 0.0, ValueError, "detect_tpr must be > 0"),
    ("detect_tpr", 1.5, ValueError, "detect_tpr must be <= 1"),
    ("device", "gpu", ValueError, "device must be"),
    ("device", 3, TypeError, "device must be a str"),
    ("random_state", -1, ValueError, "random_state must be in"),
    ("random_state", "seed", TypeError, "random_state must be None"),
    ("verbose", -1, ValueError, "verbose must be >= 0"),
]

# Parameters of the built-in baselines
BAD_OWN_PARAMS = [
    ("mlp", "hidden_layer_sizes", 5, TypeError, "hidden_layer_sizes must be a sequence"),
    ("mlp", "hidden_layer_sizes", (0,), ValueError, r"hidden_layer_sizes\[0\] must be >= 1"),
    ("mlp", "hidden_layer_sizes", ("a",), TypeError, r"hidden_layer_sizes\[0\] must be an int"),
    ("cnn", "channels", (), ValueError, "channels must not be empty"),
    ("cnn", "hidden", 0, ValueError, "hidden must be >= 1"),
    ("adversarial-training", "network", "resnet", ValueError, "network must be one of"),
    ("adversarial-training", "epsilon", -0.1, ValueError, "epsilon must be >= 0"),
    ("adversarial-training", "attack_steps", 0, ValueError, "attack_steps must be >= 1"),
    ("adversarial-training", "step_size", 0.0, ValueError, "step_size must be > 0"),
    ("adversarial-training", "norm", "l1", ValueError, "norm must be one of"),
    ("adversarial-training", "random_init", "yes", TypeError, "random_init must be a bool"),
]


def _defense(name, **params):
    return fast_instance(get_registry().get("defense", name).factory, max_epochs=1, **params)


@pytest.fixture
def never_trains(monkeypatch):
    """Make a defense fail the test loudly if it ever reaches building its module."""
    built = []

    def guard(est):
        def build(self, *args, **kwargs):
            built.append(type(self).__name__)
            pytest.fail(f"{type(self).__name__} started training on bad input")

        monkeypatch.setattr(type(est), "_build_module", build)
        return est

    yield guard
    assert built == []


@pytest.mark.parametrize("name", DEFENSES)
@pytest.mark.parametrize("case, X, y, error, pattern", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_training_data_is_rejected_before_training(never_trains, name, case, X, y, error,
                                                        pattern):
    est = never_trains(_defense(name))
    with pytest.raises(error, match=pattern):
        est.fit(X, y)


@pytest.mark.parametrize("name", DEFENSES)
@pytest.mark.parametrize("param, value, error, pattern", BAD_COMMON_PARAMS,
                         ids=[f"{p}={v!r}" for p, v, _, _ in BAD_COMMON_PARAMS])
def test_bad_common_parameter_is_rejected_before_training(never_trains, name, param, value,
                                                          error, pattern):
    est = never_trains(_defense(name))
    est.set_params(**{param: value})
    with pytest.raises(error, match=pattern):
        est.fit(X_GOOD, Y_GOOD)


@pytest.mark.parametrize("name, param, value, error, pattern", BAD_OWN_PARAMS,
                         ids=[f"{n}-{p}={v!r}" for n, p, v, _, _ in BAD_OWN_PARAMS])
def test_bad_defense_parameter_is_rejected_before_training(never_trains, name, param, value,
                                                           error, pattern):
    est = never_trains(_defense(name, **{param: value}))
    with pytest.raises(error, match=pattern):
        est.fit(X_GOOD, Y_GOOD)


def test_constructor_only_stores_parameters():
    est = robustlearn.make_defense("mlp", max_epochs=-5, lr="fast")  # checked in fit, not here
    assert est.max_epochs == -5 and est.lr == "fast"


def test_uint8_out_of_range_float_and_prediction_errors(fitted_mlp):
    X = np.zeros((3, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="X contains NaN|NaN"):
        fitted_mlp.predict(np.full((3, 64), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="64 features"):
        fitted_mlp.predict(np.zeros((3, 1, 9, 9), dtype=np.float32))
    with pytest.raises(ValueError, match="0 sample"):
        fitted_mlp.predict(X[:0])
    with pytest.raises(NotFittedError):
        robustlearn.make_defense("mlp").predict(X)
    with pytest.raises(NotFittedError):
        robustlearn.make_defense("mlp").logits(torch.zeros(1, 1, 8, 8))


def test_images_in_0_255_warn_in_fit_predict_and_predict_proba(fitted_mlp, digits):
    import warnings

    from robustlearn.validation import ImageRangeWarning

    X, y, X_test, _ = digits
    fresh = robustlearn.make_defense("mlp", max_epochs=1)
    for method, args in ((fitted_mlp.predict, (255 * X_test,)),
                         (fitted_mlp.predict_proba, (255 * X_test,)),
                         (fresh.fit, (255 * X[:50], y[:50]))):
        with pytest.warns(ImageRangeWarning, match=r"\[0, 1\].*divide by 255"):
            method(*args)
    with warnings.catch_warnings():  # images in [0, 1] and uint8 images do not warn
        warnings.simplefilter("error", ImageRangeWarning)
        fitted_mlp.predict(X_test)
        fitted_mlp.predict((255 * X_test).round().astype(np.uint8))


# -- the validation helpers themselves ---------------------------------------------------

def test_check_images_shapes_and_scaling():
    flat = check_images(np.ones((2, 6), dtype=np.float64))
    assert flat.shape == (2, 1, 1, 6) and flat.dtype == np.float32
    assert check_images(np.ones((2, 5, 4))).shape == (2, 1, 5, 4)
    assert check_images(np.ones((2, 3, 5, 4))).shape == (2, 3, 5, 4)
    scaled = check_images(np.array([[0, 51, 255]], dtype=np.uint8))
    np.testing.assert_allclose(scaled.ravel(), [0.0, 0.2, 1.0])
    for arr in (flat, scaled, check_images(np.ones((2, 5, 4)))):
        assert arr.flags.c_contiguous
        # torch sees standard strides (no zero stride on the inserted channel axis)
        tensor = torch.from_numpy(arr)
        assert tensor.is_contiguous() and 0 not in tensor.stride()


def test_check_images_against_a_fitted_shape():
    class Holder(BaseEstimator):
        pass

    est = Holder()
    check_images(np.ones((2, 3, 4, 4)), est, reset=True)
    assert est.input_shape_ == (3, 4, 4) and est.n_features_in_ == 48
    assert check_images(np.ones((5, 48)), est).shape == (5, 3, 4, 4)
    with pytest.raises(ValueError, match="expecting 48 features"):
        check_images(np.ones((5, 47)), est)


def test_check_unit_interval():
    check_unit_interval(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"x_adv must lie in \[0, 1\]"):
        check_unit_interval(np.array([-0.5, 1.0]), "x_adv")


@pytest.mark.parametrize("check, value, error, pattern", [
    (lambda v: check_int(v, "steps", low=1), 0, ValueError, "steps must be >= 1"),
    (lambda v: check_int(v, "steps", high=3), 4, ValueError, "steps must be <= 3"),
    (lambda v: check_int(v, "steps"), False, TypeError, "steps must be an int"),
    (lambda v: check_int(v, "steps"), 1.0, TypeError, "steps must be an int, got float"),
    (lambda v: check_float(v, "eps", low=0), -0.1, ValueError, "eps must be >= 0"),
    (lambda v: check_float(v, "eps", high=1, high_open=True), 1, ValueError, "eps must be < 1"),
    (lambda v: check_float(v, "eps"), float("inf"), ValueError, "eps must be finite"),
    (lambda v: check_float(v, "eps"), None, TypeError, "eps must be a real number"),
    (lambda v: check_choice(v, "norm", ("linf", "l2")), "l1", ValueError,
     r"norm must be one of \['l2', 'linf'\], got 'l1'"),
    (lambda v: check_int_tuple(v, "sizes"), "64", TypeError, "sizes must be a sequence"),
    (lambda v: check_int_tuple(v, "sizes"), [], ValueError, "sizes must not be empty"),
    (check_device, "tpu:x", ValueError, "device must be"),
    (check_random_state, 2**32, ValueError, "random_state must be in"),
    (check_random_state, 1.5, TypeError, "random_state must be None"),
])
def test_parameter_checks(check, value, error, pattern):
    with pytest.raises(error, match=pattern):
        check(value)


def test_parameter_checks_return_clean_values():
    assert check_int(np.int64(3), "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_float(np.float32(0.5), "x") == 0.5
    assert check_int_tuple([64, np.int32(32)], "sizes") == (64, 32)
    assert check_int_tuple((), "sizes", allow_empty=True) == ()
    assert check_device("auto") == "auto" and check_device(torch.device("cpu")).type == "cpu"
    rs = np.random.RandomState(0)
    assert check_random_state(rs) is rs and check_random_state(None) is None
