"""Family C: gradient-masking diagnostics (shared/evaluation.md, checks C1-C10).

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of
Security", ICML 2018; Carlini et al. 2019 (arXiv 1902.06705): accuracy must
reach chance at large radii, unbounded attacks must always succeed, white-box
must beat black-box and random noise; Croce et al., ICML 2022 (transfer from
the static base); Croce & Hein, AutoAttack ``checks.py`` (zero gradients,
Square beating white-box).
"""

from __future__ import annotations

import numpy as np

from .base import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    CheckResult,
    margin_loss_and_grad,
    margin_of,
    run_accuracy,
    tolerance,
)


def _eps_max(ctx):
    """Radius at which every image can become uniform grey: 0.5 (linf), 0.5 sqrt(d) (l2)."""
    d = int(np.prod(np.shape(ctx.X)[1:]))
    return 0.5 if ctx.norm == "linf" else 0.5 * np.sqrt(d)


def check_c1(ctx):
    if not ctx.differentiable:
        return CheckResult("C1", "Epsilon sweep to chance", SKIP, "no gradient attacks apply")
    grid = sorted({round(ctx.epsilon * f, 6) for f in ctx.budget["eps_factors"]}
                  | {_eps_max(ctx)})
    attack = ctx.make("apgd-ce", norm=ctx.norm, steps=ctx.budget["steps"],
                      random_state=ctx.seed("sweep"), **ctx.eot_params("apgd"))
    ctx.run_attack("apgd-ce-sweep", attack, grid)
    curve = [run_accuracy(ctx, "apgd-ce-sweep", e) for e in grid]
    values, counts = np.unique(ctx.y, return_counts=True)
    majority = float(counts.max() / counts.sum())
    tol = tolerance(ctx.n)
    rises = [(grid[i], grid[i + 1]) for i in range(len(grid) - 1)
             if curve[i + 1] > curve[i] + tol]
    ev = {"epsilons": grid, "accuracy": curve, "majority_rate": majority, "tolerance": tol}
    problems = []
    if rises:
        problems.append(f"accuracy rises between radii {rises}")
    if curve[-1] > majority + 0.02:
        problems.append(f"accuracy {curve[-1]:.1%} at radius {grid[-1]:g} is above the "
                        f"majority-class rate {majority:.1%} + 2pp")
    msg = ", ".join(f"{e:g}: {a:.0%}" for e, a in zip(grid, curve))
    if problems:
        return CheckResult("C1", "Epsilon sweep to chance", FAIL, "; ".join(problems), ev)
    return CheckResult("C1", "Epsilon sweep to chance", PASS, msg, ev)


def check_c2(ctx):
    if not ctx.differentiable:
        return CheckResult("C2", "Unbounded attack", SKIP, "no gradient attacks apply")
    idx = np.flatnonzero(ctx.clean_correct)[: ctx.budget["noise_n"]]
    if len(idx) == 0:
        return CheckResult("C2", "Unbounded attack", SKIP, "no correctly classified example")
    attack = ctx.make("fab", norm=ctx.norm, steps=ctx.budget["fab_steps"],
                      random_state=ctx.seed("fab"))
    adv, correct = ctx.run_attack("fab-unbounded", attack, [None], idx=idx, record=False)
    x = np.asarray(ctx.X[idx], dtype=np.float64).reshape(len(idx), -1)
    d = adv[0].reshape(len(idx), -1).astype(np.float64) - x
    dist = np.abs(d).max(1) if ctx.norm == "linf" else np.linalg.norm(d, axis=1)
    success = ~correct[0]
    ev = {"examples": len(idx), "success_rate": float(success.mean()),
          "median_distance": float(np.median(dist[success])) if success.any() else None}
    reduced = (f"budget quick: FAB {ctx.budget['fab_steps']} steps on {len(idx)} examples"
               if ctx.budget_name == "quick" else "")
    msg = (f"FAB without a radius fools {success.mean():.0%} of {len(idx)} examples, median "
           f"{ctx.norm} distance {ev['median_distance']}")
    return CheckResult("C2", "Unbounded attack", PASS if success.all() else FAIL, msg, ev,
                       reduced)


def _beats_white_box(ctx, keys, label):
    white = ctx.robust_at(keys=ctx.white_box_keys())
    other = ctx.robust_at(keys=keys)
    extra = np.flatnonzero(white & ~other)
    return extra, {f"{label}_only_broken": extra.tolist(),
                   "white_box_accuracy": float(white.mean()),
                   f"{label}_accuracy": float(other.mean())}


def _compare_status(ctx, extra):
    """AutoAttack's check_square_sr: FAIL above 0.2% of n; one example is a WARN on quick."""
    if len(extra) <= 0.002 * ctx.n:
        return PASS
    if len(extra) == 1 and ctx.budget_name == "quick":
        return WARN
    return FAIL


def check_c3(ctx):
    attack = ctx.make("square", n_queries=ctx.budget["square_queries"], norm=ctx.norm,
                      random_state=ctx.seed("square"), **ctx.eot_params("square"))
    if ctx.norm != "linf":
        return CheckResult("C3", "White-box beats black-box", SKIP,
                           "Square is linf only here")
    ctx.run_attack("square", attack, [ctx.epsilon], kind="black-box")
    if not ctx.white_box_keys():
        return CheckResult("C3", "White-box beats black-box", WARN,
                           "no white-box attack could run (no attack surface): the robust "
                           "accuracy rests on Square and noise alone, an upper bound")
    extra, ev = _beats_white_box(ctx, ["square"], "square")
    reduced = (f"budget quick: Square {ctx.budget['square_queries']} queries, no "
               "decision-based attack" if ctx.budget_name == "quick" else
               "no decision-based attack")
    msg = (f"Square breaks {len(extra)} examples that every white-box attack missed "
           f"(white-box {ev['white_box_accuracy']:.1%}, Square {ev['square_accuracy']:.1%})")
    return CheckResult("C3", "White-box beats black-box", _compare_status(ctx, extra), msg, ev,
                       reduced)


def _ball_noise(rng, x, eps, norm, k):
    d = x.shape[-1]
    if norm == "linf":
        delta = rng.uniform(-eps, eps, (k, d))
    else:
        u = rng.normal(size=(k, d))
        r = eps * rng.uniform(size=(k, 1)) ** (1 / d)
        delta = u / np.linalg.norm(u, axis=1, keepdims=True) * r
    return np.clip(x[None] + delta, 0, 1).astype(np.float32)


def check_c4(ctx):
    rng = np.random.default_rng(ctx.seed("noise"))
    idx = np.arange(min(ctx.n, ctx.budget["noise_n"]))
    k = ctx.budget["noise_samples"]
    shape = np.shape(ctx.X)[1:]
    broken = np.zeros(ctx.n, dtype=bool)
    for i in idx:
        x = np.asarray(ctx.X[i], dtype=np.float64).reshape(-1)
        pts = _ball_noise(rng, x, ctx.epsilon, ctx.norm, k)
        broken[i] = np.any(ctx.predict(pts.reshape((k,) + shape)) != ctx.y[i])
    ctx.record("random-noise", [ctx.epsilon], [~broken], ctx.norm, "noise", n=len(idx))
    if not ctx.white_box_keys():
        return CheckResult("C4", "Random noise", SKIP,
                           "no white-box attack ran: noise is part of the evaluation")
    extra, ev = _beats_white_box(ctx, ["random-noise"], "noise")
    ev.update(examples=len(idx), samples_per_example=k)
    reduced = (f"budget quick: {k} samples on {len(idx)} examples"
               if ctx.budget_name == "quick" else "")
    msg = (f"{k} uniform samples of the ball per example break {len(extra)} examples that "
           "white-box attacks missed")
    return CheckResult("C4", "Random noise", FAIL if len(extra) else PASS, msg, ev, reduced)


def check_c5(ctx):
    if not ctx.differentiable:
        return CheckResult("C5", "Zero gradients", SKIP, "no attack surface")
    rng = np.random.default_rng(ctx.seed("zero-grad"))
    idx = np.arange(min(ctx.n, ctx.budget["grad_points"]))
    X = np.asarray(ctx.X[idx], dtype=np.float32)
    flat = X.reshape(len(idx), -1)
    rand = np.stack([_ball_noise(rng, f.astype(np.float64), ctx.epsilon, ctx.norm, 1)[0]
                     for f in flat]).reshape(X.shape)
    zero = nonfinite = 0
    for points in (X, rand):
        _, grad = margin_loss_and_grad(ctx.estimator, points, ctx.y[idx])
        nonfinite += int((~np.isfinite(grad).all(axis=1)).sum())
        zero += int((np.abs(grad).max(axis=1) == 0).sum())
    ev = {"points": 2 * len(idx), "zero": zero, "non_finite": nonfinite,
          "bpda_surfaces": sorted(ctx.surfaces("bpda"))}
    msg = (f"{zero} zero and {nonfinite} non-finite margin gradients at {2 * len(idx)} clean "
           "and random-start points")
    if zero + nonfinite == 0:
        return CheckResult("C5", "Zero gradients", PASS, msg, ev)
    if ev["bpda_surfaces"]:
        return CheckResult("C5", "Zero gradients", WARN,
                           msg + "; BPDA surfaces were attacked (E3)", ev)
    return CheckResult("C5", "Zero gradients", FAIL,
                       msg + " and no BPDA surface is declared: gradient attacks are "
                       "blind here", ev)


def check_c6(ctx):
    """Cosine of autograd and central finite-difference directional derivatives.

    Along ``grad_directions`` random sign directions u per point, compare u . grad
    (autograd) with (m(x + h u) - m(x - h u)) / 2h (finite differences, h =
    epsilon / 10 in linf units) of the logit margin m; the cosine of the two
    vectors is 1 for a faithful gradient whatever the input dimension.
    """
    if not ctx.differentiable:
        return CheckResult("C6", "Gradient fidelity", SKIP, "no attack surface")
    rng = np.random.default_rng(ctx.seed("fidelity"))
    idx = np.arange(min(ctx.n, ctx.budget["grad_points"]))
    shape = np.shape(ctx.X)[1:]
    X = np.asarray(ctx.X[idx], dtype=np.float32)
    _, grad = margin_loss_and_grad(ctx.estimator, X, ctx.y[idx])
    k = ctx.budget["grad_directions"]
    h = ctx.epsilon / 10 if ctx.norm == "linf" else ctx.epsilon / 10 / np.sqrt(grad.shape[1])
    cos = []
    for i in range(len(idx)):
        u = rng.choice([-1.0, 1.0], size=(k, grad.shape[1]))
        x = X[i].reshape(1, -1).astype(np.float64)
        plus = np.clip(x + h * u, 0, 1).astype(np.float32).reshape((k,) + shape)
        minus = np.clip(x - h * u, 0, 1).astype(np.float32).reshape((k,) + shape)
        yk = np.repeat(ctx.y[idx][i:i + 1], k)
        step = (plus.reshape(k, -1).astype(np.float64) - minus.reshape(k, -1))
        fd = (margin_of(ctx.estimator, plus, yk) - margin_of(ctx.estimator, minus, yk))
        ad = (step * grad[i][None]).sum(1)
        denom = np.linalg.norm(fd) * np.linalg.norm(ad)
        cos.append(float(fd @ ad / denom) if denom > 0 else 0.0)
    median = float(np.median(cos))
    ev = {"median_cosine": median, "points": len(idx), "directions": k, "h": h}
    msg = f"median cosine of autograd and finite differences {median:.2f} (warn below 0.5)"
    return CheckResult("C6", "Gradient fidelity", PASS if median >= 0.5 else WARN, msg, ev)


def check_c7(ctx):
    return CheckResult("C7", "Loss landscape", SKIP,
                       "not implemented in this version (C5, C6 and B6 cover the masking it "
                       "would show)")


def check_c8(ctx):
    if "fgsm" not in ctx.runs:
        return CheckResult("C8", "Single-step red flags", SKIP, "B1 did not run")
    clean = float(ctx.clean_correct.mean())
    fgsm = run_accuracy(ctx, "fgsm")
    iterative = [k for k in ("apgd-ce", "apgd-t") if k in ctx.runs]
    best = float(ctx.robust_at(keys=iterative).mean())
    tol = tolerance(ctx.n)
    ev = {"clean": clean, "fgsm": fgsm, "iterative": best}
    if fgsm > clean + tol:
        return CheckResult("C8", "Single-step red flags", FAIL,
                           f"FGSM accuracy {fgsm:.1%} exceeds clean {clean:.1%} "
                           "(label leaking)", ev)
    if ctx.tags.adversarially_trained and fgsm > 0.5 * clean and best < 0.25 * fgsm:
        return CheckResult("C8", "Single-step red flags", FAIL,
                           f"FGSM {fgsm:.1%} but APGD {best:.1%}: catastrophic overfitting", ev)
    return CheckResult("C8", "Single-step red flags", PASS,
                       f"clean {clean:.1%} >= FGSM {fgsm:.1%} >= APGD {best:.1%}", ev)


def check_c9(ctx):
    twins = ctx.surfaces("transfer")
    if not twins:
        return CheckResult("C9", "Transfer from the static base", SKIP,
                           "no static base declared (no 'transfer' attack surface)")
    keys = []
    for name in twins:
        for loss in ("ce", "t"):
            key = f"transfer-{name}-apgd-{loss}"
            attack = ctx.make(f"apgd-{loss}", norm=ctx.norm, steps=ctx.budget["steps"],
                              surface=name, random_state=ctx.seed(key))
            ctx.run_attack(key, attack, [ctx.epsilon], kind="transfer")
            keys.append(key)
    extra, ev = _beats_white_box(ctx, keys, "transfer")
    msg = (f"transfer from {sorted(twins)} breaks {len(extra)} examples direct white-box "
           f"attacks missed (white-box {ev['white_box_accuracy']:.1%}, transfer "
           f"{ev['transfer_accuracy']:.1%})")
    return CheckResult("C9", "Transfer from the static base", _compare_status(ctx, extra), msg,
                       ev)


def check_c10(ctx):
    if not ctx.differentiable or ctx.norm != "linf":
        return CheckResult("C10", "Cross-norm sanity", SKIP, "linf defenses with gradients only")
    d = int(np.prod(np.shape(ctx.X)[1:]))
    eps2 = float(ctx.epsilon * np.sqrt(d) / 4)
    pgd = ctx.make("l2-pgd", steps=ctx.budget["steps"], random_state=ctx.seed("l2-pgd"),
                   **ctx.eot_params("l2-pgd"))
    ctx.run_attack("l2-pgd", pgd, [eps2])
    # the l2 run is a sanity check beside the linf headline, not part of it; on a stochastic
    # defense (EOT, no early stop) its 9 targets were a third of the quick audit's time
    targets = ctx.budget.get("cross_norm_targets", 9)
    apgd = ctx.make("apgd-t", norm="l2", steps=ctx.budget["steps"], n_target_classes=targets,
                    random_state=ctx.seed("l2-apgd"), **ctx.eot_params("apgd"))
    ctx.run_attack("l2-apgd-t", apgd, [eps2])
    a_pgd = run_accuracy(ctx, "l2-pgd", eps2)
    a_apgd = run_accuracy(ctx, "l2-apgd-t", eps2)
    ev = {"l2_epsilon": eps2, "pgd": a_pgd, "apgd_t": a_apgd}
    msg = f"l2 radius {eps2:.3g} (= epsilon sqrt(d) / 4): PGD {a_pgd:.1%}, APGD-T {a_apgd:.1%}"
    status = WARN if abs(a_pgd - a_apgd) > 0.05 else PASS
    reduced = "" if targets >= 9 else f"budget quick: APGD-T with {targets} target classes"
    return CheckResult("C10", "Cross-norm sanity", status, msg, ev, reduced)


CHECKS = (
    ("C1", "Epsilon sweep to chance", check_c1),
    ("C2", "Unbounded attack", check_c2),
    ("C3", "White-box beats black-box", check_c3),
    ("C4", "Random noise", check_c4),
    ("C5", "Zero gradients", check_c5),
    ("C6", "Gradient fidelity", check_c6),
    ("C7", "Loss landscape", check_c7),
    ("C8", "Single-step red flags", check_c8),
    ("C9", "Transfer from the static base", check_c9),
    ("C10", "Cross-norm sanity", check_c10),
)
