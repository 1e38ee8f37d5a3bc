"""Family E: iterative-inference, implicit and fixed-point models (checks E1-E5).

Croce & Hein, AutoAttack ``checks.py::check_dynamic`` (autograd calls during a
forward pass); Athalye, Carlini & Wagner, ICML 2018 (BPDA, vanishing and
exploding gradients through unrolled loops); Yang, Pang & Liu, NeurIPS 2022
(gradient-path ensembles for equilibrium models).
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

from .base import FAIL, PASS, SKIP, WARN, CheckResult, margin_loss_and_grad, run_accuracy

#: Parameters that set the number of inner iterations, looked up in this order (E4, E5).
DEPTH_PARAMS = ("max_iter", "T", "n_iter", "n_steps", "inner_steps", "iterations")


@contextlib.contextmanager
def _count_autograd():
    calls = {"n": 0}
    grad, backward = torch.autograd.grad, torch.Tensor.backward

    def counting_grad(*a, **k):
        calls["n"] += 1
        return grad(*a, **k)

    def counting_backward(self, *a, **k):
        calls["n"] += 1
        return backward(self, *a, **k)

    torch.autograd.grad, torch.Tensor.backward = counting_grad, counting_backward
    try:
        yield calls
    finally:
        torch.autograd.grad, torch.Tensor.backward = grad, backward


def _applies(ctx):
    return ctx.tags.iterative or ctx.memo.get("inner_autograd", False)


def check_e1(ctx):
    with _count_autograd() as calls:
        ctx.predict(ctx.X[:8])
    ctx.memo["inner_autograd"] = calls["n"] > 0
    ev = {"autograd_calls": calls["n"], "tagged_iterative": bool(ctx.tags.iterative)}
    if calls["n"] and not ctx.tags.iterative:
        return CheckResult("E1", "Inner optimisation detector", FAIL,
                           f"{calls['n']} autograd calls during predict but the tags say "
                           "iterative=False: adaptive attacks would not be chosen", ev)
    return CheckResult("E1", "Inner optimisation detector", PASS,
                       f"{calls['n']} autograd calls during predict"
                       + ("; declared iterative (E2-E5 run)" if ctx.tags.iterative else ""), ev)


def _depth_param(ctx):
    params = ctx.estimator.get_params(deep=False) if hasattr(ctx.estimator, "get_params") else {}
    for name in DEPTH_PARAMS:
        if isinstance(params.get(name), int) and params[name] > 1:
            return name, params[name]
    return None, None


def _skip_unless_depth(ctx, check_id, title):
    """The SKIP result of a depth check (E4, E5) that cannot apply, else None.

    They need an iterative defense with a depth parameter (:func:`_depth_param`).
    """
    if not _applies(ctx):
        return CheckResult(check_id, title, SKIP, "not iterative")
    if _depth_param(ctx)[0] is None:
        return CheckResult(check_id, title, SKIP, f"no depth parameter among {DEPTH_PARAMS}")
    return None


def check_e2(ctx):
    if not _applies(ctx):
        return CheckResult("E2", "Forward convergence", SKIP, "not iterative")
    report = getattr(ctx.estimator, "convergence_report", None)
    if report is None and hasattr(ctx.estimator, "fixed_points"):
        report = _fixed_point_report(ctx)
    if report is None:
        return CheckResult("E2", "Forward convergence", SKIP,
                           "the defense exposes neither convergence_report(X) nor "
                           "fixed_points(X); check its solver residuals by hand")
    clean = report(ctx.X)
    adv = ctx.adv_cache.get("apgd-ce")
    ev = {"clean": clean, "adversarial": report(adv) if adv is not None else None}
    rate_c = clean.get("hit_max_iter_rate", 0.0)
    rate_a = (ev["adversarial"] or {}).get("hit_max_iter_rate", 0.0)
    if rate_a > 2 * rate_c and rate_a > 0.01:
        return CheckResult("E2", "Forward convergence", WARN,
                           f"adversarial inputs hit max_iter {rate_a:.1%} vs clean {rate_c:.1%}",
                           ev)
    return CheckResult("E2", "Forward convergence", PASS,
                       f"max_iter reached on {rate_c:.1%} clean, {rate_a:.1%} adversarial "
                       "(APGD-CE) inputs", ev)


def _fixed_point_report(ctx):
    """Convergence summary from a defense's ``fixed_points(X) -> (x_K, passes, residual)``."""
    name, T = _depth_param(ctx)

    def report(X):
        _, passes, residual = ctx.estimator.fixed_points(X)
        passes = np.asarray(passes)
        out = {"median_passes": float(np.median(passes)),
               "median_residual": float(np.median(residual))}
        if T is not None:
            out["hit_max_iter_rate"] = float((passes >= T).mean())
        return out

    return report


def check_e3(ctx):
    if not _applies(ctx):
        return CheckResult("E3", "Gradient-path ensemble", SKIP, "not iterative")
    paths = sorted(ctx.surfaces("bpda"))
    accs = {}
    for name in paths:
        key = f"bpda-{name}-apgd-ce"
        attack = ctx.make("apgd-ce", norm=ctx.norm, steps=ctx.budget["steps"], surface=name,
                          random_state=ctx.seed(key), **ctx.eot_params("apgd"))
        ctx.run_attack(key, attack, [ctx.epsilon])
        accs[name] = run_accuracy(ctx, key)
    exact = run_accuracy(ctx, "apgd-ce") if "apgd-ce" in ctx.runs else None
    ev = {"exact_apgd_ce": exact, "bpda": accs,
          "worst_case": float(ctx.robust_at().mean())}
    if not paths:
        return CheckResult("E3", "Gradient-path ensemble", WARN,
                           "no BPDA surface declared: only gradients through the whole loop "
                           "were tried", ev)
    return CheckResult("E3", "Gradient-path ensemble", PASS,
                       f"exact {exact if exact is None else f'{exact:.1%}'}, BPDA "
                       + ", ".join(f"{k} {v:.1%}" for k, v in accs.items())
                       + "; the headline takes the per-example minimum", ev)


def _at_depth(ctx, name, value):
    shallow = copy.copy(ctx.estimator)
    setattr(shallow, name, value)
    return shallow


def check_e4(ctx):
    skipped = _skip_unless_depth(ctx, "E4", "Depth sensitivity")
    if skipped is not None:
        return skipped
    name, T = _depth_param(ctx)
    depths = sorted({max(1, T // 4), max(1, T // 2), T, 2 * T})
    accs = {}
    for t in depths:
        key = f"apgd-ce-depth-{t}"
        attack = ctx.make("apgd-ce", estimator=_at_depth(ctx, name, t), norm=ctx.norm,
                          steps=ctx.budget["steps"], random_state=ctx.seed(key))
        ctx.run_attack(key, attack, [ctx.epsilon], kind="transfer")
        accs[t] = run_accuracy(ctx, key)
    values = [accs[t] for t in depths]
    monotone = all(b > a for a, b in zip(values, values[1:]))
    ev = {"parameter": name, "deployed": T, "accuracy_by_depth": {str(k): v
                                                                   for k, v in accs.items()}}
    msg = f"attacking at {name} = {depths}: " + ", ".join(f"{v:.1%}" for v in values)
    return CheckResult("E4", "Depth sensitivity", WARN if monotone else PASS,
                       msg + (" (attacks weaken as depth grows: vanishing gradients)"
                              if monotone else ""), ev)


def check_e5(ctx):
    skipped = _skip_unless_depth(ctx, "E5", "Gradient-norm profile")
    if skipped is not None:
        return skipped
    name, T = _depth_param(ctx)
    idx = np.arange(min(ctx.n, ctx.budget["grad_points"]))
    norms = {}
    for t in (1, T):
        _, g = margin_loss_and_grad(_at_depth(ctx, name, t), ctx.X[idx], ctx.y[idx])
        norms[t] = float(np.median(np.linalg.norm(g, axis=1)))
    ratio = norms[1] / max(norms[T], 1e-30)
    ev = {"parameter": name, "median_gradient_norm": {str(k): v for k, v in norms.items()},
          "ratio": ratio}
    return CheckResult("E5", "Gradient-norm profile", WARN if ratio > 100 else PASS,
                       f"median gradient norm {norms[1]:.3g} at {name}=1, {norms[T]:.3g} at "
                       f"{T} (warn above a 100x fall)", ev)


CHECKS = (
    ("E1", "Inner optimisation detector", check_e1),
    ("E2", "Forward convergence", check_e2),
    ("E3", "Gradient-path ensemble", check_e3),
    ("E4", "Depth sensitivity", check_e4),
    ("E5", "Gradient-norm profile", check_e5),
)


