"""The equilibrium layers: contraction by construction, solver, gradients, memory, bound."""

import pytest
import torch
import torch.nn.functional as F

from robustlearn.fixed_point import FixedPointWarning
from robustlearn.plugins.nemon.network import ConvNEMON, DenseNEMON, step_size


def _dense(width=12, mu=0.0):
    torch.manual_seed(0)
    net = DenseNEMON(16, width, 3, mu=mu, mean=(0.3,), std=(0.2,))
    with torch.no_grad():  # a large A: strongly coupled units, far from the initial regime
        net.A.mul_(3.0)
        net.d.normal_(0, 0.5)
    return net


def _conv():
    torch.manual_seed(0)
    net = ConvNEMON((2, 6, 6), 3, 3, kernel_size=3, stride=1, pool=2, mean=(0.3, 0.5),
                    std=(0.2, 0.4))
    with torch.no_grad():
        net.A.mul_(3.0)
        net.d.normal_(0, 0.5)
    return net


@pytest.mark.parametrize("make", [_dense, _conv])
def test_contraction_holds_after_every_optimiser_step(make):
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)  # big steps: the bound must still hold
    x = torch.rand(8, *((1, 4, 4) if isinstance(net, DenseNEMON) else (2, 6, 6)))
    y = torch.randint(0, 3, (8,))
    net.solver.update(tol=1e-2, max_iter=30, warn=False)
    for _ in range(3):
        loss = F.cross_entropy(net(x), y) - 0.1 * net.A.pow(2).sum()  # push A to grow
        opt.zero_grad()
        loss.backward()
        opt.step()
        # float round-off grows with the row sums the step inflated
        scale = float(net.A.detach().abs().sum(dim=tuple(range(1, net.A.dim()))).max())
        assert net.weighted_log_norm() <= net.mu + 1e-6 * max(scale, 1.0)
        assert float(net.row_measures().max()) <= net.mu + 1e-6


def test_conv_adjoint_is_the_transpose():
    net = _conv()
    W = net.assembled_operator()
    op = net.operator()
    g = torch.randn(2, 3, 6, 6)
    expected = (g.flatten(1) @ W).reshape_as(g)
    assert torch.allclose(net.apply_wt(g, op), expected, atol=1e-4)


@pytest.mark.parametrize("method", ["jacobi", "averaged"])
@pytest.mark.parametrize("make", [_dense, _conv])
def test_forward_converges_to_the_fixed_point(make, method):
    net = make()
    x = torch.rand(6, *((1, 4, 4) if isinstance(net, DenseNEMON) else (2, 6, 6)))
    z, info = net.solve(x, tol=1e-6, max_iter=3000, method=method)
    assert not bool(info["result"].hit_max_iter.any())
    with torch.no_grad():
        fz = F.relu(net.apply_w(z, net.operator()) + net.injection(x))
    assert float((fz - z).abs().max()) < 1e-4
    # the reported residual is the equilibrium's own, measured at the returned state
    true = (fz - z).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1)
    assert torch.allclose(info["residual"], true, rtol=1e-3, atol=1e-7)
    assert float(info["residual"].max()) < 1e-6
    if method == "averaged":
        assert info["alpha"] == pytest.approx(step_size(net.diagonal(net.operator())))
    else:
        assert info["alpha"] == 1.0


def _double_and_batch(make):
    """A float64 network, a batch of inputs and the readout weights of a scalar loss."""
    net = make().double()
    shape = (1, 4, 4) if isinstance(net, DenseNEMON) else (2, 6, 6)
    x = torch.rand(5, *shape, dtype=torch.float64)
    w = torch.randn(5, 3, dtype=torch.float64)
    return net, x, w


def _solve_and_backward(net, x, w, **solve):
    """Solve from a copy of ``x`` and backpropagate ``sum(readout(z) * w)``.

    Returns ``(z, info, gradient of x)``; the parameters' gradients are left in ``.grad``.
    """
    xi = x.clone().requires_grad_(True)
    net.zero_grad()
    z, info = net.solve(xi, tol=1e-10, backward_tol=1e-10, **solve)
    (net.readout(z) * w).sum().backward()
    return z.detach(), info, xi.grad.clone()


@pytest.mark.parametrize("make", [_dense, _conv])
def test_jacobi_and_averaged_reach_the_same_equilibrium_and_gradient(make):
    net, x, w = _double_and_batch(make)
    out = {}
    for method in ("jacobi", "averaged"):
        z, info, x_grad = _solve_and_backward(net, x, w, method=method, max_iter=5000,
                                              backward_max_iter=5000)
        out[method] = (z, x_grad, net.A.grad.clone(), net.d.grad.clone(),
                       info["iterations"].float().mean())
    for a, b in zip(out["jacobi"][:4], out["averaged"][:4]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-8)
    assert out["jacobi"][4] < out["averaged"][4]


def test_jacobi_split_is_the_off_diagonal_part_scaled_by_the_diagonal():
    net = _conv()
    W = net.assembled_operator()
    op_j, inv = net.jacobi_operator(net.operator())
    g = torch.eye(W.shape[0]).reshape(-1, *net.A.shape[:1], *net.state_hw)
    with torch.no_grad():
        Wj = net.apply_w(g, op_j).reshape(W.shape[0], -1).T
    scale = inv.expand(-1, *net.state_hw).reshape(-1)
    expected = (W - torch.diag(W.diagonal())) * scale[:, None]
    assert torch.allclose(Wj, expected, atol=1e-6)
    assert torch.allclose(1.0 / scale, 1.0 - W.diagonal(), atol=1e-6)


def test_step_size_is_recomputed_per_solve_and_never_only_shrinks():
    net = _dense()
    x = torch.rand(4, 1, 4, 4)
    net.solve(x, method="averaged")
    strong = net.last_info["alpha"]
    with torch.no_grad():
        net.A.mul_(0.01)  # weaker coupling: the diagonal rises, the step grows back
    net.solve(x, method="averaged")
    assert net.last_info["alpha"] > strong
    assert net.last_info["alpha"] <= 1.0


def test_warns_when_a_solve_hits_max_iter():
    net = _dense()
    with pytest.warns(FixedPointWarning, match="max_iter=2"):
        net.solve(torch.rand(4, 1, 4, 4), tol=1e-8, max_iter=2)


@pytest.mark.parametrize("method", ["jacobi", "averaged"])
@pytest.mark.parametrize("make", [_dense, _conv])
def test_implicit_gradient_matches_unrolled_at_convergence(make, method):
    net, x, w = _double_and_batch(make)
    net.solver.update(method=method)
    grads = {}
    for backward in ("implicit", "unrolled"):
        _, _, x_grad = _solve_and_backward(net, x, w, backward=backward, max_iter=3000,
                                           backward_max_iter=3000)
        grads[backward] = (x_grad, net.A.grad.clone(), net.U.weight.grad.clone())
    for a, b in zip(grads["implicit"], grads["unrolled"]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


def _saved_bytes(net, x, **solve):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z, info = net.solve(x.clone().requires_grad_(True), **solve)
    return total[0], int(info["iterations"].max())


def test_implicit_memory_does_not_grow_with_iterations():
    net = _dense()
    net.solver.update(method="averaged")  # the slower solver: many iterations to compare
    x = torch.rand(8, 1, 4, 4)
    few = _saved_bytes(net, x, backward="implicit", tol=1e-1)
    many = _saved_bytes(net, x, backward="implicit", tol=1e-9, max_iter=3000)
    assert many[1] > 3 * few[1]
    assert many[0] == few[0]
    unrolled_few = _saved_bytes(net, x, backward="unrolled", tol=1e-1)
    unrolled_many = _saved_bytes(net, x, backward="unrolled", tol=1e-9, max_iter=3000)
    assert unrolled_many[0] > 3 * unrolled_few[0]


@pytest.mark.parametrize("make", [_dense, _conv])
def test_lipschitz_matrix_bounds_logit_differences_in_pixel_space(make):
    net = make()
    shape = (1, 4, 4) if isinstance(net, DenseNEMON) else (2, 6, 6)
    net = net.double()
    L = net.lipschitz_matrix().detach()
    x = torch.rand(32, *shape, dtype=torch.float64)
    # random and gradient-aligned (the worst sign pattern for each pair) perturbations
    delta = (torch.rand_like(x) * 2 - 1) * 0.05
    xg = x.clone().requires_grad_(True)
    z, _ = net.solve(xg, tol=1e-9, max_iter=3000)
    net.readout(z)[:, 0].sum().backward()
    for d in (delta, 0.05 * xg.grad.sign()):
        with torch.no_grad():
            f0 = net.readout(net.solve(x, tol=1e-9, max_iter=3000)[0])
            f1 = net.readout(net.solve(x + d, tol=1e-9, max_iter=3000)[0])
        diff = (f1 - f0)
        pair = (diff[:, :, None] - diff[:, None, :]).abs()
        size = d.flatten(1).abs().max(dim=1).values[:, None, None]
        assert bool((pair <= L[None] * size + 1e-4).all())


def test_mu_must_be_below_one():
    with pytest.raises(ValueError, match="mu"):
        DenseNEMON(4, 3, 2, mu=1.0)
