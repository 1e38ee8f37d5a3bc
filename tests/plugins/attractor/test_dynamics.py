"""Iteration to a fixed point and the straight-through (BPDA) gradient."""

import torch

from robustlearn.plugins.attractor.dynamics import iterate_to_fixed_point, straight_through


def test_contraction_converges_to_its_fixed_point():
    target = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    result = iterate_to_fixed_point(lambda x: 0.5 * x + 0.5 * target, torch.zeros(2, 2),
                                    max_iter=100, tol=1e-6)
    assert torch.allclose(result.x, target, atol=1e-5)
    assert result.converged.all()
    assert (result.iterations < 100).all()


def test_each_sample_stops_on_its_own_so_batches_do_not_interact():
    def step(x):
        return 0.9 * x
    alone = iterate_to_fixed_point(step, torch.tensor([[1.0]]), max_iter=50, tol=0.2)
    together = iterate_to_fixed_point(step, torch.tensor([[1.0], [1e6]]), max_iter=50, tol=0.2)
    assert torch.equal(alone.x[0], together.x[0])
    assert alone.iterations[0] == together.iterations[0] == 1


def test_non_converging_map_stops_at_max_iter():
    result = iterate_to_fixed_point(lambda x: -x, torch.ones(3, 2), max_iter=7, tol=1e-3)
    assert (result.iterations == 7).all()
    assert not result.converged.any()


def test_gradients_flow_through_the_passes_taken():
    x = torch.ones(1, 2, requires_grad=True)
    result = iterate_to_fixed_point(lambda v: 0.5 * v, x, max_iter=3, tol=0.0)
    result.x.sum().backward()
    assert torch.allclose(x.grad, torch.full((1, 2), 0.125))


def test_straight_through_has_the_forward_value_and_the_surrogate_gradient():
    x = torch.tensor([2.0], requires_grad=True)
    out = straight_through((x * 10).detach() + 3.0, x)
    assert out.item() == 23.0
    out.backward()
    assert x.grad.item() == 1.0
