"""Any PyTorch model as a defense: ``robustlearn.wrap`` and ``robustlearn.load_pretrained``."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

import robustlearn

#: (attack, params, epsilons): a gradient attack and a decision-based one
ATTACKS = [
    ("linf-pgd", dict(steps=10, rel_stepsize=0.25), [0.05, 0.1]),
    ("fgsm", {}, [0.1]),
    ("square", dict(n_queries=30), [0.1]),
]


class UserNet(torch.nn.Module):
    """A user's model that expects normalised inputs, as torchvision-style models do."""

    def __init__(self, weight, bias):
        super().__init__()
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x):
        return self.linear(x.flatten(1))


@pytest.fixture(scope="module")
def linear_mlp(digits):
    """A built-in defense with a single linear layer, fitted on digits."""
    X, y, _, _ = digits
    return robustlearn.make_defense("mlp", hidden_layer_sizes=(), max_epochs=20, lr=1e-2,
                                    random_state=0, device="cpu").fit(X, y)


def _mlp_by_hand(fitted):
    """The project's MLP network, built outside any estimator, with ``fitted``'s weights."""
    net = robustlearn.make_defense("mlp", hidden_layer_sizes=(128,))._build_module((1, 8, 8), 10)
    net.load_state_dict(fitted.module_.state_dict())
    return net


def _same_attack_results(built_in, wrapped, X, y):
    for name, params, epsilons in ATTACKS:
        runs = [robustlearn.make_attack(name, estimator=est, random_state=0, **params)
                .generate(X, y, epsilons=epsilons) for est in (built_in, wrapped)]
        np.testing.assert_allclose(runs[0], runs[1], atol=1e-5, err_msg=name)
        for adv in runs[0]:
            np.testing.assert_array_equal(built_in.predict(adv), wrapped.predict(adv))


def test_a_project_network_built_by_hand_matches_the_built_in_defense(fitted_mlp, digits):
    _, _, X_test, y_test = digits
    net = _mlp_by_hand(fitted_mlp)
    wrapped = robustlearn.wrap(net, classes=fitted_mlp.classes_, input_shape=(1, 8, 8))
    np.testing.assert_array_equal(wrapped.predict_proba(X_test),
                                  fitted_mlp.predict_proba(X_test))
    assert wrapped.score(X_test, y_test) == fitted_mlp.score(X_test, y_test)
    _same_attack_results(fitted_mlp, wrapped, X_test[:40], y_test[:40])


def test_a_user_model_with_input_normalisation_matches_the_built_in_defense(linear_mlp, digits):
    """W (x - m) / s + b is the built-in linear model once its weights are divided by s."""
    _, _, X_test, y_test = digits
    mean, std = 0.3, 0.4
    layer = linear_mlp.module_.layers[1]
    weight = layer.weight.detach() * std
    bias = layer.bias.detach() + (layer.weight.detach() * mean).sum(dim=1)
    wrapped = robustlearn.wrap(UserNet(weight, bias), input_shape=(1, 8, 8),
                               preprocessing=(mean, std))
    np.testing.assert_allclose(wrapped.predict_proba(X_test), linear_mlp.predict_proba(X_test),
                               atol=1e-5)
    np.testing.assert_array_equal(wrapped.predict(X_test), linear_mlp.predict(X_test))
    _same_attack_results(linear_mlp, wrapped, X_test[:40], y_test[:40])


def test_wrapped_models_evaluate_and_detect(fitted_mlp, digits):
    X, _, X_test, y_test = digits
    net = _mlp_by_hand(fitted_mlp)
    plain = robustlearn.wrap(net, input_shape=(1, 8, 8))
    assert not robustlearn.get_defense_tags(plain).has_detector
    assert not plain.detect(X_test).any()
    calibrated = robustlearn.wrap(net, input_shape=(1, 8, 8), X_calibration=X[:200])
    assert robustlearn.get_defense_tags(calibrated).has_detector
    assert 0 < calibrated.detect(X_test).mean() < 0.5
    report = robustlearn.evaluate(calibrated, X_test[:30], y_test[:30], attacks=["fgsm"],
                                  epsilons=[0, 0.1])
    assert report.clean["accuracy"] > 0.8
    assert report.clean["detection_rate"] is not None
    restored = pickle.loads(pickle.dumps(calibrated))
    np.testing.assert_array_equal(restored.predict(X_test), calibrated.predict(X_test))


def test_parameters_round_trip_through_clone():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    clf = robustlearn.TorchClassifier(net, input_shape=(1, 8, 8), batch_size=32, lr=0.1)
    params = clf.get_params()
    assert params["batch_size"] == 32 and params["lr"] == 0.1 and params["max_epochs"] == 5
    assert {"module", "classes", "input_shape", "preprocessing", "device"} <= set(params)
    copy = clone(clf)
    assert copy.batch_size == 32 and copy.module is not net


def test_fit_fine_tunes_a_copy(digits):
    X, y, X_test, y_test = digits
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 10))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrapped = robustlearn.wrap(net, input_shape=(1, 8, 8), preprocessing=(0.5, 0.5))
    assert wrapped.score(X_test, y_test) < 0.3
    tuned = clone(wrapped).set_params(max_epochs=15, lr=1e-2, random_state=0, device="cpu")
    tuned.fit(X, y)
    assert tuned.score(X_test, y_test) > 0.85
    for key, value in net.state_dict().items():  # the user's module is untouched
        torch.testing.assert_close(value, before[key])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(module="not a module", input_shape=(1, 8, 8)), TypeError, "torch.nn.Module"),
    (dict(input_shape=None), ValueError, "input_shape"),
    (dict(input_shape=(1, 8, 8), classes=[3, 1]), ValueError, "sorted"),
    (dict(input_shape=(1, 8, 8), classes=[0, 1, 2]), ValueError, r"\(1, 3\)"),
    (dict(input_shape=(1, 8, 8), preprocessing=(0.5, 0.0)), ValueError, "std"),
])
def test_wrong_arguments_are_refused_clearly(kwargs, error, match):
    module = kwargs.pop("module", torch.nn.Sequential(torch.nn.Flatten(),
                                                      torch.nn.Linear(64, 10)))
    with pytest.raises(error, match=match):
        robustlearn.wrap(module, **kwargs)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_load_pretrained_reads_a_robustbench_style_state_dict(fitted_mlp, digits, tmp_path,
                                                              suffix):
    _, _, X_test, _ = digits
    state = {f"module.{k}": v for k, v in fitted_mlp.module_.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": state}, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = robustlearn.load_pretrained(path, "mlp", classes=range(10), input_shape=(1, 8, 8),
                                        params={"hidden_layer_sizes": (128,)})
    np.testing.assert_array_equal(model.predict(X_test), fitted_mlp.predict(X_test))
    with pytest.raises(ValueError, match="does not fit"):
        robustlearn.load_pretrained(path, "mlp", classes=range(10), input_shape=(1, 8, 8),
                                    params={"hidden_layer_sizes": (64,)})


def test_load_pretrained_never_unpickles_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="without running code"):
        robustlearn.load_pretrained(path, "mlp", classes=range(10), input_shape=(1, 8, 8))
    assert not (tmp_path / "pwned").exists()


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path("pwned"),))
