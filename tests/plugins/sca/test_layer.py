"""SCALayer: the energy, its gradient, the unrolled loop and BPDA, on tiny layers."""

import pytest
import torch
from torch import nn

from robustlearn.plugins.sca import SCALayer, sca_macs
from robustlearn.plugins.sca.layer import PREDICTORS, inner_gradient_for


def tiny(g="relu", T=3, eta=0.25, dtype=torch.float64, **params):
    torch.manual_seed(0)
    return SCALayer(6, 5, T=T, eta=eta, g=g, **params).to(dtype)


@pytest.mark.parametrize("method", ["closed-form", "gram"])
@pytest.mark.parametrize("g", sorted(PREDICTORS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_gradient_equals_autograd(method, g, dtype):
    layer = tiny(g, dtype=dtype)
    x = torch.randn(7, 6, dtype=dtype)
    h = torch.rand(7, 5, dtype=dtype)
    closed = layer.energy_gradient(h, x, method)
    automatic = layer.energy_gradient(h, x, "autograd")
    torch.testing.assert_close(closed, automatic, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("g", sorted(PREDICTORS))
def test_every_inner_gradient_gives_the_same_layer_and_weight_gradients(g):
    x = torch.randn(4, 6, dtype=torch.float64)
    outputs = []
    for method in ("closed-form", "gram", "autograd"):
        layer = tiny(g, inner_gradient=method)
        out = layer(x)
        weights = (layer.lateral, layer.lateral_bias, layer.backprojection.weight,
                   layer.backprojection.bias, layer.feedforward.weight)
        outputs.append((out.detach(), torch.autograd.grad(out.pow(2).sum(), weights)))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(outputs[0], outputs[2], atol=1e-8, rtol=1e-6)


def test_auto_takes_the_closed_form_with_fewer_multiply_accumulates():
    # B^T B pays off when n < 2 d and the batch amortises forming it
    assert inner_gradient_for(784, 512, T=8, batch=256) == "gram"
    assert inner_gradient_for(784, 512, T=8, batch=1) == "closed-form"
    assert inner_gradient_for(784, 2048, T=16, batch=256) == "closed-form"
    assert sca_macs(784, 512, 8, "auto", 256) == sca_macs(784, 512, 8, "gram", 256)
    assert sca_macs(784, 512, 8, "gram", 256) < 0.75 * sca_macs(784, 512, 8)
    layer = SCALayer(20, 4, T=3).to(torch.float64)     # n < 2 d: "auto" runs the gram form
    x = torch.randn(64, 20, dtype=torch.float64)
    expected = layer(x)
    layer.inner_gradient = "closed-form"
    torch.testing.assert_close(layer(x), expected)


def test_energy_decreases_over_the_inner_steps():
    layer = tiny(T=20, eta=0.05)
    x = torch.randn(16, 6, dtype=torch.float64)
    with torch.no_grad():
        energies = torch.stack([layer.energy(h, x) for h in layer.trajectory(x)])
    assert torch.all(energies[1:] <= energies[:-1] + 1e-12)
    assert torch.all(energies[-1] < energies[0])
    assert energies[-1].mean() < 0.8 * energies[0].mean()


@pytest.mark.parametrize("method", ["closed-form", "gram"])
@pytest.mark.parametrize("g", ["relu", "tanh"])
def test_unrolled_gradients_match_finite_differences(g, method):
    layer = tiny(g, T=3, eta=0.1, inner_gradient=method)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    # small inputs keep the per-sample clipping inactive: its scale is held constant
    # on the backward pass, so it would differ from finite differences where it bites
    with torch.no_grad():
        h = torch.relu(layer.initial_state(x))
        assert layer.energy_gradient(h, x).abs().max() < layer.clip
    assert torch.autograd.gradcheck(lambda x: layer(x), (x,))
    C = layer.lateral.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda C: torch.func.functional_call(layer, {"lateral": C}, (x.detach(),)), (C,))


def test_clipping_bounds_each_step():
    layer = tiny(T=1, eta=1.0, clip=0.5)
    x = 100 * torch.randn(4, 6, dtype=torch.float64)
    with torch.no_grad():
        s0 = layer.initial_state(x)
        s1 = layer.step(s0, x)
    assert torch.all((s1 - torch.relu(s0)).abs().amax(1) <= 0.5 + 1e-12)


def test_zero_steps_is_the_feed_forward_layer_and_the_diagonal_is_unused():
    layer = tiny(T=0)
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), torch.relu(layer.feedforward(x)))
    layer.T = 3
    before = layer(x)
    with torch.no_grad():
        layer.lateral.diagonal().add_(5.0)
    torch.testing.assert_close(layer(x), before)


def test_straight_through_keeps_the_value_and_takes_the_surrogate_gradient():
    layer = tiny(T=4)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    value = layer(x, T_backward=0)
    torch.testing.assert_close(value, layer(x))
    (bpda,) = torch.autograd.grad(value.sum(), x)
    (identity,) = torch.autograd.grad(layer(x, T=0).sum(), x)
    torch.testing.assert_close(bpda, identity)


def test_layers_stack_inside_any_torch_model_and_train():
    torch.manual_seed(0)
    model = nn.Sequential(SCALayer(10, 8, T=2), SCALayer(8, 6, T=2), nn.Linear(6, 2))
    x = torch.randn(64, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None for p in model.parameters())


def test_invalid_layer_settings_are_rejected():
    with pytest.raises(ValueError, match="g must be"):
        SCALayer(4, 3, g="softplus")
    with pytest.raises(ValueError, match="inner_gradient"):
        SCALayer(4, 3, inner_gradient="numeric")
    with pytest.raises(ValueError, match="inner_gradient"):
        sca_macs(4, 3, 1, inner_gradient="numeric")
    with pytest.raises(ValueError, match="batch"):
        sca_macs(4, 3, 1, inner_gradient="gram", batch=0)


def test_mac_count():
    assert sca_macs(784, 512, 0) == 784 * 512
    assert sca_macs(784, 512, 8) == 784 * 512 + 8 * (2 * 512 * 512 + 2 * 512 * 784)
    assert sca_macs(784, 512, 8, "gram", batch=4) == (
        512 * 512 * 784 / 4 + 2 * 512 * 784 + 8 * 3 * 512 * 512)
