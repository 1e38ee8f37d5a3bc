"""Fixed-point solvers, their backward passes and the straight-through (BPDA) gradient."""

import pytest
import torch

from robustlearn.fixed_point import (
    FixedPointWarning,
    fixed_point,
    solve_fixed_point,
    straight_through,
)


def iterate_to_fixed_point(step, x, *, max_iter, tol):
    return solve_fixed_point(step, x, method="plain", max_iter=max_iter, tol=tol)


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


def _slow_linear_map(seed=0, n=3, d=30):
    """An affine contraction with eigenvalues up to 0.98 (plain iteration is slow)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    w = q @ torch.diag(torch.linspace(0.3, 0.98, d, dtype=torch.float64)) @ q.T
    b = torch.randn(n, d, generator=g, dtype=torch.float64)
    return (lambda z: z @ w.T + b), w, b


@pytest.mark.parametrize("method", ["plain", "averaged", "anderson"])
def test_every_method_reaches_the_same_fixed_point(method):
    step, w, b = _slow_linear_map()
    exact = torch.linalg.solve(torch.eye(w.shape[0], dtype=w.dtype) - w, b.T).T
    result = solve_fixed_point(step, torch.zeros_like(b), method=method, max_iter=5000,
                               tol=1e-10, alpha=0.5)
    assert result.converged.all()
    assert torch.allclose(result.z, exact, atol=1e-7)


def test_anderson_needs_far_fewer_iterations_than_plain_iteration():
    step, _, b = _slow_linear_map()
    plain = solve_fixed_point(step, torch.zeros_like(b), method="plain", max_iter=5000, tol=1e-8)
    anderson = solve_fixed_point(step, torch.zeros_like(b), method="anderson", max_iter=5000,
                                 tol=1e-8)
    assert anderson.iterations.float().mean() < 0.25 * plain.iterations.float().mean()


def _equilibrium_layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 8, generator=g, dtype=torch.float64)
    w = 0.6 * w / torch.linalg.matrix_norm(w, 2)
    u = torch.randn(8, 3, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    return (lambda z: torch.tanh(z @ w.T + x @ u.T)), x


def _grad(backward, **kwargs):
    step, x = _equilibrium_layer()
    z, result = fixed_point(step, torch.zeros(4, 8, dtype=torch.float64), backward=backward,
                            max_iter=500, tol=1e-12, **kwargs)
    (z ** 2).sum().backward()
    return x.grad, z, result


def test_implicit_gradient_equals_unrolled_gradient_at_convergence():
    implicit, z_i, _ = _grad("implicit", backward_tol=1e-12)
    unrolled, z_u, _ = _grad("unrolled")
    assert torch.allclose(z_i, z_u, atol=1e-10)
    assert torch.allclose(implicit, unrolled, atol=1e-8)


def test_implicit_gradient_matches_finite_differences():
    step, x = _equilibrium_layer()
    z, _ = fixed_point(step, torch.zeros(4, 8, dtype=torch.float64), max_iter=500, tol=1e-13,
                       backward_tol=1e-13)
    (z.sum()).backward()
    h = 1e-6
    x0 = x.detach().clone()
    for i, j in [(0, 0), (2, 1), (3, 2)]:
        plus, minus = x0.clone(), x0.clone()
        plus[i, j] += h
        minus[i, j] -= h
        values = []
        for point in (plus, minus):
            x.data.copy_(point)
            values.append(solve_fixed_point(step, torch.zeros(4, 8, dtype=torch.float64),
                                            max_iter=500, tol=1e-13).z.sum().item())
        assert abs((values[0] - values[1]) / (2 * h) - x.grad[i, j].item()) < 1e-6


def test_one_step_gradient_is_an_approximation_not_the_exact_gradient():
    one_step, _, _ = _grad("one-step")
    unrolled, _, _ = _grad("unrolled")
    assert not torch.allclose(one_step, unrolled, atol=1e-4)


def test_identity_backward_passes_the_gradient_to_the_starting_point():
    z0 = torch.ones(2, 3, requires_grad=True)
    z, _ = fixed_point(lambda z: 0.5 * z, z0, backward="identity", max_iter=100, tol=1e-8)
    assert torch.allclose(z, torch.zeros_like(z), atol=1e-6)
    z.sum().backward()
    assert torch.equal(z0.grad, torch.ones_like(z0))


def test_hitting_max_iter_warns_and_is_reported():
    with pytest.warns(FixedPointWarning, match="max_iter=5"):
        _, result = fixed_point(lambda z: -z, torch.ones(2, 2), max_iter=5, tol=1e-6)
    report = result.report()
    assert report["hit_max_iter"] == 2 and report["iterations_max"] == 5
    assert report["converged_fraction"] == 0.0


def test_implicit_backward_memory_does_not_grow_with_iterations():
    # the autograd graph holds one application of the map, however many iterations ran
    def graph_size(max_iter):
        w = torch.full((6, 6), 0.15, requires_grad=True)
        z, _ = fixed_point(lambda z: torch.tanh(z @ w + 1.0), torch.zeros(2, 6),
                           max_iter=max_iter, tol=0.0, warn=False)
        seen, stack = set(), [z.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            stack.extend(fn for fn, _ in node.next_functions)
        return len(seen)

    assert graph_size(5) == graph_size(200)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="newton"), "method must be one of"),
    (dict(max_iter=0), "max_iter must be an int >= 1"),
    (dict(alpha=1.5), "alpha must be in"),
])
def test_bad_solver_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve_fixed_point(lambda z: z, torch.zeros(1, 1), **kwargs)


def test_bad_backward_is_named():
    with pytest.raises(ValueError, match="backward must be one of"):
        fixed_point(lambda z: z, torch.zeros(1, 1), backward="adjoint")
