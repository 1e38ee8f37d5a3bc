"""Batch sizes from a memory budget."""

import numpy as np
import pytest
import torch

from robustlearn.memory import (
    BYTES_PER_ACTIVATION,
    activation_bytes_per_sample,
    batch_size_for_budget,
    inference_batch_size,
    memory_budget,
)


def test_activation_bytes_count_every_leaf_output_once():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 10))
    values = 64 + 64 + 32 + 32 + 10  # input, flatten, linear, relu, linear
    assert activation_bytes_per_sample(net, (1, 8, 8)) == values * BYTES_PER_ACTIVATION


@pytest.mark.parametrize("per_sample, budget, kwargs, expected", [
    (100, 1000, {}, 10),
    (100, 1050, {}, 10),
    (100, 50, {}, 1),
    (100, 50, {"minimum": 4}, 4),
    (100, 10**9, {"maximum": 256}, 256),
])
def test_batch_size_for_budget(per_sample, budget, kwargs, expected):
    assert batch_size_for_budget(per_sample, budget, **kwargs) == expected


def test_budget_is_positive_and_checked():
    assert memory_budget("cpu") > 0
    with pytest.raises(ValueError, match="fraction"):
        memory_budget("cpu", fraction=0)
    with pytest.raises(ValueError, match="bytes_per_sample"):
        batch_size_for_budget(0, 100)


def test_a_tight_budget_lowers_the_inference_batch_without_changing_predictions(
        fitted_mlp, digits, monkeypatch):
    _, _, X_test, _ = digits
    expected = fitted_mlp.predict_proba(X_test)
    per_sample = activation_bytes_per_sample(fitted_mlp.module_, fitted_mlp.input_shape_)
    monkeypatch.setattr("robustlearn.memory.memory_budget", lambda device: 7 * per_sample)
    assert inference_batch_size(fitted_mlp.module_, fitted_mlp.input_shape_, "cpu", 256) == 7
    np.testing.assert_allclose(fitted_mlp.predict_proba(X_test), expected, atol=1e-6)


def test_a_module_that_cannot_be_probed_keeps_the_configured_batch():
    class Picky(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("needs real data")

    assert inference_batch_size(Picky(), (1, 8, 8), "cpu", 256) == 256


def test_forward_bytes_per_sample_ignores_other_threads_on_the_same_network():
    import threading

    from robustlearn.memory import forward_bytes_per_sample

    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    alone = forward_bytes_per_sample([net], net, (64,))
    stop = threading.Event()

    def busy():
        x = torch.rand(512, 64)
        while not stop.is_set():
            with torch.no_grad():
                net(x)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        measured = [forward_bytes_per_sample([net], net, (64,)) for _ in range(50)]
    finally:
        stop.set()
        worker.join()
    assert set(measured) == {alone}
