"""Safe model files: round trips of every registered defense and purifier, refused files."""

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import robustlearn
from robustlearn import model_file
from robustlearn.estimator_checks import fast_instance
from robustlearn.registry import list_registrations

ESTIMATORS = [(kind, entry) for kind in ("defense", "purifier")
              for entry in list_registrations(kind)]


def _fit(kind, entry, X, y):
    estimator = fast_instance(entry.factory, random_state=0)
    return estimator.fit(X, y) if kind == "defense" else estimator.fit(X)


def _outputs(kind, estimator, X):
    if kind == "defense":
        return [estimator.predict(X), estimator.predict_proba(X), estimator.detect_score(X)]
    return [estimator.transform(X)]


@pytest.fixture(scope="module")
def small_digits(digits):
    X, y, X_test, _ = digits
    return X[:300], y[:300], X_test[:50]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind, entry", ESTIMATORS, ids=[f"{k}-{e.name}" for k, e in ESTIMATORS])
def test_round_trip_gives_identical_outputs(kind, entry, small_digits, tmp_path):
    X, y, X_test = small_digits
    estimator = _fit(kind, entry, X, y)
    path = robustlearn.save(estimator, tmp_path / "model.safetensors")
    loaded = robustlearn.load(path)
    assert type(loaded) is type(estimator)
    assert repr(loaded.get_params()) == repr(estimator.get_params())
    for before, after in zip(_outputs(kind, estimator, X_test), _outputs(kind, loaded, X_test)):
        np.testing.assert_array_equal(after, before)
    # a loaded model pickles and keeps working like a fitted one
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(_outputs(kind, again, X_test)[0],
                                  _outputs(kind, estimator, X_test)[0])


def test_string_labels_and_float_attributes_survive(digits, tmp_path):
    X, y, X_test, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    model = robustlearn.make_defense("mlp", hidden_layer_sizes=(16,), max_epochs=3,
                                     random_state=0, device="cpu").fit(X[:200], names[y[:200]])
    loaded = robustlearn.load(robustlearn.save(model, tmp_path / "m.safetensors"))
    assert loaded.classes_.dtype == model.classes_.dtype
    assert loaded.detect_threshold_ == model.detect_threshold_
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))


def _rewrite(path, edit_header=None, edit_tensors=None):
    """Rewrite a model file with its header or tensors changed (a tampered file)."""
    tensors = load_file(str(path))
    header = model_file.read_header(path)
    if edit_header:
        edit_header(header)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata={"robustlearn": json.dumps(header)})


@pytest.fixture
def saved_mlp(fitted_mlp, tmp_path):
    return robustlearn.save(fitted_mlp, tmp_path / "mlp.safetensors")


class _Payload:
    """Unpickling this touches a file: the canary of every refused-file test."""

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path("pwned"),))


@pytest.mark.parametrize("make_payload", [
    lambda path: path.write_bytes(pickle.dumps(_Payload())),
    lambda path: torch.save({"x": _Payload()}, path),
    lambda path: path.write_bytes(struct.pack("<Q", 2) + b"{}" + pickle.dumps(_Payload())),
], ids=["pickle", "torch-save", "safetensors-without-header"])
def test_a_pickle_payload_is_refused_and_never_run(make_payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.safetensors"
    make_payload(path)
    with pytest.raises(model_file.ModelFileError, match="not a robustlearn model file"):
        robustlearn.load(path)
    assert not (tmp_path / "pwned").exists()


def test_an_unregistered_class_name_is_refused(saved_mlp):
    def evil(header):
        header["name"] = "os.system"
        header["class"] = "os.system"
    _rewrite(saved_mlp, edit_header=evil)
    with pytest.raises(model_file.ModelFileError, match="not registered here"):
        robustlearn.load(saved_mlp)


def test_a_tampered_tensor_shape_is_refused(saved_mlp):
    def grow(tensors):
        key = next(k for k in tensors if k.startswith("module.") and k.endswith("weight"))
        tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
    _rewrite(saved_mlp, edit_tensors=grow)
    with pytest.raises(model_file.ModelFileError, match="tampered"):
        robustlearn.load(saved_mlp)


def test_a_tampered_attribute_is_refused(saved_mlp):
    def retype(header):
        header["attributes"]["classes_"] = {"__pickle__": "gASV..."}
    _rewrite(saved_mlp, edit_header=retype)
    with pytest.raises(model_file.ModelFileError, match="unknown entry"):
        robustlearn.load(saved_mlp)


def test_a_newer_format_version_gives_a_clear_error(saved_mlp):
    def bump(header):
        header["format_version"] = model_file.FORMAT_VERSION + 1
    _rewrite(saved_mlp, edit_header=bump)
    with pytest.raises(model_file.ModelFileError, match="upgrade robustlearn"):
        robustlearn.load(saved_mlp)


def test_a_model_fitted_on_cuda_loads_on_the_cpu(saved_mlp, fitted_mlp, digits):
    _, _, X_test, _ = digits
    _rewrite(saved_mlp, edit_header=lambda h: h.update(fitted_device="cuda:0"))
    loaded = robustlearn.load(saved_mlp)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert loaded.device_.type == expected
    np.testing.assert_array_equal(loaded.predict(X_test), fitted_mlp.predict(X_test))
    assert robustlearn.load(saved_mlp, device="cpu").device_.type == "cpu"


def test_what_cannot_be_saved_is_refused_with_the_reason(fitted_mlp, tmp_path):
    wrapped = robustlearn.wrap(fitted_mlp.module_, input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="torch module is code"):
        robustlearn.save(wrapped, tmp_path / "w.safetensors")
    seeded = robustlearn.make_defense("mlp", random_state=np.random.RandomState(0))
    seeded.__dict__.update(fitted_mlp.__dict__)
    seeded.random_state = np.random.RandomState(0)
    with pytest.raises(TypeError, match="int random_state"):
        robustlearn.save(seeded, tmp_path / "s.safetensors")
    assert not list(tmp_path.iterdir())


def test_to_moves_a_fitted_estimator(fitted_mlp, digits):
    _, _, X_test, _ = digits
    model = pickle.loads(pickle.dumps(fitted_mlp))
    assert model.to("cpu") is model
    assert model.device == "cpu" and model.device_.type == "cpu"
    np.testing.assert_array_equal(model.predict(X_test), fitted_mlp.predict(X_test))
    if torch.cuda.is_available():
        model.to("cuda")
        assert model.device_.type == "cuda"
        np.testing.assert_array_equal(model.predict(X_test), fitted_mlp.predict(X_test))


def test_parameters_the_installed_class_does_not_take_are_refused(saved_mlp):
    def extra(header):
        header["params"]["no_such_param"] = 1
    _rewrite(saved_mlp, edit_header=extra)
    with pytest.raises(model_file.ModelFileError, match="do not fit the installed defense"):
        robustlearn.load(saved_mlp)
