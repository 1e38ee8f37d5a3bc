"""The three L_eigen estimators against a brute-force Jacobian of a tiny network."""

import numpy as np
import pytest
import torch

from robustlearn.plugins.attractor import eigen_loss
from robustlearn.plugins.attractor.network import AttractorNetwork

CODE = 5


@pytest.fixture
def tiny():
    """A float64 autoencoder 12-9-5 / 5-9-12 with weights large enough for |lambda| > 1."""
    torch.manual_seed(1)
    network = AttractorNetwork(12, (9, CODE), (9,), 3, activation="tanh",
                               output_activation="identity").double()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(3.0)
    x = torch.rand(4, 12, dtype=torch.float64)
    full = torch.stack([torch.autograd.functional.jacobian(network.step, xi) for xi in x])
    return network, x, full


def _by_modulus(values):
    return values[np.argsort(-np.abs(values), kind="stable")]


def test_latent_jacobian_has_the_nonzero_eigenvalues_of_the_full_jacobian(tiny):
    network, x, full = tiny
    latent = eigen_loss.latent_jacobian(network, x)
    assert latent.shape == (4, CODE, CODE)
    for big, small in zip(torch.linalg.eigvals(full).numpy(),
                          torch.linalg.eigvals(latent.detach()).numpy()):
        big, small = _by_modulus(big), _by_modulus(small)
        # rank <= CODE: the other 7 eigenvalues of the 12 x 12 Jacobian vanish
        np.testing.assert_allclose(np.abs(big[CODE:]), 0, atol=1e-8)
        np.testing.assert_allclose(np.abs(big[:CODE]), np.abs(small), atol=1e-4)
        for value in small:  # same complex values, conjugate pairs included
            assert np.min(np.abs(big[:CODE] - value)) < 1e-4
    assert eigen_loss.spectral_radius(network, x).max() > 1.0


def test_differentiable_eigenvalues_match_autograd_through_eigvals(tiny):
    network, x, _ = tiny
    matrix = eigen_loss.latent_jacobian(network, x)[0].detach().requires_grad_(True)
    ours = eigen_loss.eigenvalues(matrix)
    (grad_ours,) = torch.autograd.grad(torch.relu(ours.abs() - 0.5).pow(2).sum(), matrix)
    reference = torch.linalg.eigvals(matrix)
    (grad_ref,) = torch.autograd.grad(torch.relu(reference.abs() - 0.5).pow(2).sum(), matrix)
    np.testing.assert_allclose(np.sort(ours.abs().detach().numpy()),
                               np.sort(reference.abs().detach().numpy()), atol=1e-10)
    np.testing.assert_allclose(grad_ours.numpy(), grad_ref.numpy(), atol=1e-8)


def test_power_iteration_finds_the_spectral_norm_within_one_percent(tiny):
    network, x, full = tiny
    estimate = eigen_loss.spectral_norm(network.step, x, n_iterations=60).detach()
    exact = torch.linalg.matrix_norm(full, ord=2)
    np.testing.assert_allclose(estimate.numpy(), exact.numpy(), rtol=0.01)
    # the norm bounds the spectral radius, which is why penalising it suffices
    assert torch.all(exact >= eigen_loss.spectral_radius(network, x) - 1e-9)


def test_stochastic_proxy_is_unbiased_for_the_rms_singular_value(tiny):
    network, x, full = tiny
    target = (torch.linalg.matrix_norm(full) ** 2 / CODE).sqrt()
    squares = torch.stack([
        eigen_loss.rms_singular_value(network.step, x, CODE, n_probes=500).detach() ** 2
        for _ in range(4)
    ]).mean(0)
    np.testing.assert_allclose(squares.sqrt().numpy(), target.numpy(), rtol=0.1)


@pytest.mark.parametrize("method", eigen_loss.EIGEN_METHODS)
def test_eigen_loss_is_a_differentiable_hinge(tiny, method):
    network, x, _ = tiny
    assert eigen_loss.eigen_loss(network, x, method=method, margin=1e3).item() == 0.0
    loss = eigen_loss.eigen_loss(network, x, method=method, margin=0.05)
    assert loss.item() > 0
    loss.backward()
    grad = network.encoder[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unknown_method_is_rejected(tiny):
    network, x, _ = tiny
    with pytest.raises(ValueError, match="method must be one of"):
        eigen_loss.eigen_loss(network, x, method="svd")
