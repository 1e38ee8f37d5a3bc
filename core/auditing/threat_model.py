"""Family A: threat model and bookkeeping (shared/evaluation.md, checks A0-A4).

Carlini et al., "On Evaluating Adversarial Robustness", arXiv 1902.06705 (2019):
state a precise threat model, report clean accuracy; Croce & Hein, AutoAttack
``checks.py::check_range_output`` for the logits-not-probabilities test.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.intervals import wilson_interval
from .base import FAIL, PASS, SKIP, WARN, CheckResult


def manifest(ctx) -> dict:
    """The threat model the audit attacks under (check A0)."""
    tags = ctx.tags
    return {
        "norm": ctx.norm,
        "epsilon": ctx.epsilon,
        "data_range": [0.0, 1.0],
        "attacker_knowledge": (
            "full white-box: weights, every declared attack surface"
            + (", the distribution of the randomness (EOT)" if tags.stochastic else "")
            + (", the detector and its threshold" if tags.has_detector else "")
        ),
        "success": ("misclassified; with the detector, misclassified and not flagged "
                    "(reported beside the classification-only number)"
                    if tags.has_detector else "misclassified"),
        "tags": tags.to_dict(),
    }


def check_a0(ctx):
    m = manifest(ctx)
    missing = [k for k in ("norm", "epsilon", "data_range", "attacker_knowledge", "success")
               if m.get(k) in (None, "")]
    if missing:
        return CheckResult("A0", "Threat-model manifest", FAIL, f"missing fields {missing}", m)
    return CheckResult("A0", "Threat-model manifest", PASS,
                       f"{ctx.norm} ball of radius {ctx.epsilon} on [0, 1] images", m)


def check_a1(ctx):
    acc = float(ctx.clean_correct.mean())
    low, high = wilson_interval(int(ctx.clean_correct.sum()), ctx.n)
    ev = {"clean_accuracy": acc, "interval": [low, high], "n": ctx.n}
    msg = f"clean accuracy {acc:.1%} [{low:.1%}, {high:.1%}] on {ctx.n} examples"
    if ctx.tags.has_detector and hasattr(ctx.estimator, "detect"):
        flagged = np.asarray(ctx.estimator.detect(ctx.X), dtype=bool)
        ev["clean_false_reject_rate"] = float(flagged.mean())
        ev["clean_accuracy_with_rejection"] = float((ctx.clean_correct & ~flagged).mean())
        msg += f"; the detector rejects {flagged.mean():.1%} of clean inputs"
    return CheckResult("A1", "Clean accuracy", PASS, msg, ev)


def check_a2(ctx):
    ev = {"examples_checked": ctx.n_checked, "violations": ctx.violations}
    if ctx.violations:
        return CheckResult("A2", "Validity of every adversarial example", FAIL,
                           f"{sum(v['count'] for v in ctx.violations)} returned examples "
                           "outside [0, 1] or the ball", ev)
    return CheckResult("A2", "Validity of every adversarial example", PASS,
                       f"all {ctx.n_checked} returned examples finite, in [0, 1] and in "
                       "their ball; predictions recomputed with the estimator's predict", ev)


def check_a3(ctx):
    """AutoAttack's range check: max < 1 + a, min > -a and rows summing to 1 (a = 1e-5)."""
    if not ctx.differentiable:
        return CheckResult("A3", "Logits, not probabilities", SKIP,
                           "no attack surface: gradient attacks do not apply")
    from ..attacks.victim import Victim

    victim = Victim(ctx.estimator, "default")
    x = torch.as_tensor(np.asarray(ctx.X[:100], dtype=np.float32).reshape(
        (min(ctx.n, 100),) + (victim.input_shape or np.shape(ctx.X)[1:])))
    with torch.no_grad():
        out = victim.logits(x.to(victim.device)).double().cpu().numpy()
    alpha = 1e-5
    in_range = out.max() < 1 + alpha and out.min() > -alpha
    sums_one = np.allclose(out.sum(axis=1), 1.0, atol=alpha)
    ev = {"max": float(out.max()), "min": float(out.min()),
          "row_sums_one": bool(sums_one)}
    if in_range and sums_one:
        return CheckResult("A3", "Logits, not probabilities", FAIL,
                           "the default surface returns probabilities: cross-entropy on "
                           "them saturates and masks gradients; return logits (margin/DLR "
                           "losses were run by B4)", ev)
    if in_range:
        return CheckResult("A3", "Logits, not probabilities", WARN,
                           "outputs lie in [0, 1]; check they are logits", ev)
    return CheckResult("A3", "Logits, not probabilities", PASS,
                       f"outputs range over [{out.min():.3g}, {out.max():.3g}]", ev)


def check_a4(ctx):
    n_min = ctx.budget["min_examples"]
    ev = {"n": ctx.n, "required": n_min}
    if ctx.n >= n_min:
        return CheckResult("A4", "Sample size", PASS, f"n = {ctx.n} >= {n_min}", ev)
    if ctx.budget_name == "quick":
        return CheckResult("A4", "Sample size", WARN,
                           f"n = {ctx.n} < {n_min}: a quick-budget smoke test, not a headline "
                           "number (see the Wilson interval)", ev,
                           reduced=f"budget quick audits {ctx.n} examples")
    return CheckResult("A4", "Sample size", FAIL, f"n = {ctx.n} < {n_min} for a headline", ev)


CHECKS = (
    ("A0", "Threat-model manifest", check_a0),
    ("A1", "Clean accuracy", check_a1),
    ("A3", "Logits, not probabilities", check_a3),
    ("A4", "Sample size", check_a4),
)
#: A2 runs last, after every attack.
FINAL = (("A2", "Validity of every adversarial example", check_a2),)
