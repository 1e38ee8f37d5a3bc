"""Device resolution and loading models saved on another device."""

import pickle

import numpy as np
import pytest
import torch

from robustlearn.device import resolve_device


def test_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_explicit_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_model_pickled_as_cuda_loads_on_cpu(fitted_mlp, digits):
    # skorch records the device in the pickle; a net saved from a CUDA machine carries
    # device="cuda" and must come back on the CPU here, with the same predictions.
    _, _, X_test, _ = digits
    fitted_mlp.net_.device = "cuda"
    try:
        blob = pickle.dumps(fitted_mlp)
    finally:
        fitted_mlp.net_.device = "cpu"
    with pytest.warns(Warning, match="(?i)cuda"):
        loaded = pickle.loads(blob)
    assert loaded.device_.type == "cpu"
    np.testing.assert_array_equal(loaded.predict(X_test), fitted_mlp.predict(X_test))
