"""Safe model files: round trips of every registered defense and purifier, refused files."""

import pickle
import struct

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn import model_file, registry
from robustlearn.estimator_checks import fast_instance
from robustlearn.plugins.baselines import MLPClassifier
from robustlearn.registry import list_registrations

from .fake_plugins import defenses_plugin
from .model_files import rewrite as _rewrite

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


# -- fitted state that is not plain data: the _export/_import_fitted_state hooks --------------

class _Prior:
    """An object a third-party defense keeps after fit: not plain data."""

    def __init__(self, shift):
        self.shift = shift


class _WithSecondNetwork(MLPClassifier):
    """A third-party defense whose fitted state holds a second network and an object."""

    def _train(self, net, X, y):
        super()._train(net, X, y)
        self.second_ = self._build_module(self.input_shape_, len(self.classes_)).eval()
        self.prior_ = _Prior(0.5)

    def _forward(self, x):
        return self.module_(x) + self.prior_.shift * self.second_(x)

    def _export_fitted_state(self):
        return {"second_": self.second_.state_dict(), "prior_": {"shift": self.prior_.shift}}

    def _import_fitted_state(self, state):
        second = self._build_module(self.input_shape_, len(self.classes_))
        self.second_ = model_file.load_module_state(second, state["second_"], "second_").eval()
        shift = state["prior_"]["shift"]
        if not isinstance(shift, float):
            raise ValueError(f"prior_ shift must be a float, got {shift!r}")
        self.prior_ = _Prior(shift)


class _WithoutHooks(_WithSecondNetwork):
    _export_fitted_state = None
    _import_fitted_state = None


@pytest.fixture
def third_party(plugin_env, digits):
    """The defenses above registered by a plugin, one fitted; unregistered afterwards."""
    registry.register_plugin(
        defenses_plugin("third_party", "with-state", factory=_WithSecondNetwork),
        name="third_party")
    registry.register_plugin(defenses_plugin("no_hooks", "no-hooks", factory=_WithoutHooks),
                             name="no_hooks")
    X, y, _, _ = digits
    return _WithSecondNetwork(hidden_layer_sizes=(16,), max_epochs=3, random_state=0,
                              device="cpu").fit(X[:200], y[:200])


def test_a_plugin_saves_fitted_state_through_the_hooks(third_party, digits, tmp_path):
    _, _, X_test, _ = digits
    path = robustlearn.save(third_party, tmp_path / "m.safetensors")
    header = model_file.read_header(path)
    assert header["format_version"] == 2 and sorted(header["state"]) == ["prior_", "second_"]
    assert "second_" not in header["attributes"]
    loaded = robustlearn.load(path)
    assert isinstance(loaded.prior_, _Prior) and loaded.prior_.shift == 0.5
    for key, value in third_party.second_.state_dict().items():
        torch.testing.assert_close(loaded.second_.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), third_party.predict_proba(X_test))


def test_files_without_fitted_state_stay_format_version_1(saved_mlp):
    header = model_file.read_header(saved_mlp)
    assert header["format_version"] == 1 and "state" not in header


def test_fitted_state_without_hooks_is_refused_naming_the_attribute(third_party, tmp_path):
    plain = _WithoutHooks(**third_party.get_params())
    plain.__dict__.update(third_party.__dict__)
    with pytest.raises(TypeError, match=r"second_ = \w+ cannot be stored.*torch module is code"):
        robustlearn.save(plain, tmp_path / "p.safetensors")


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.pop("state"), "does not hold"),
    (lambda h: h.update(name="no-hooks"), "does not implement"),
    (lambda h: h.update(format_version=1), "invalid 'state'"),
    (lambda h: h["state"].update(net_=1), "not a fitted attribute"),
    (lambda h: h["state"]["prior_"]["__dict__"].update(shift="os.system"), "must be a float"),
    (lambda h: h["state"].pop("prior_"), "does not fit the installed defense.*KeyError"),
], ids=["state-removed", "class-without-hooks", "version-1-with-state", "not-fitted-name",
        "hook-rejects-value", "entry-missing"])
def test_a_tampered_state_section_is_refused(third_party, tmp_path, edit, match):
    path = robustlearn.save(third_party, tmp_path / "m.safetensors")
    _rewrite(path, edit_header=edit)
    with pytest.raises(model_file.ModelFileError, match=match):
        robustlearn.load(path)


def test_a_tampered_tensor_shape_in_the_state_is_refused(third_party, tmp_path):
    path = robustlearn.save(third_party, tmp_path / "m.safetensors")

    def grow(tensors):
        key = next(k for k in tensors if k.startswith("attr.state.second_") and "weight" in k)
        tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
    _rewrite(path, edit_tensors=grow)
    with pytest.raises(model_file.ModelFileError, match="tampered"):
        robustlearn.load(path)


def test_load_module_state_refuses_other_names_and_shapes():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(model_file.ModelFileError, match="missing"):
        model_file.load_module_state(module, {"weight": torch.zeros(2, 3)})
    with pytest.raises(model_file.ModelFileError, match="tampered"):
        model_file.load_module_state(module, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)})
    with pytest.raises(model_file.ModelFileError, match="dict of named tensors"):
        model_file.load_module_state(module, {"weight": [[0.0] * 3] * 2, "bias": [0.0, 0.0]})
    state = {"weight": torch.ones(2, 3), "bias": torch.ones(2)}
    assert model_file.load_module_state(module, state) is module
    assert module.weight.sum().item() == 6
