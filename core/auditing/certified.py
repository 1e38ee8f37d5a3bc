"""Family G: certified-bound consistency (shared/evaluation.md, checks G1-G2).

A point certified at radius epsilon (``certify``: margin above the Lipschitz
bound) can never be broken by a valid attack; one that is means the bound, the
solver tolerance or the attack's clipping is wrong.
"""

from __future__ import annotations

import numpy as np

from .base import FAIL, PASS, SKIP, CheckResult


def _applies(ctx):
    return bool(ctx.tags.certified) and hasattr(ctx.estimator, "certify")


def check_g1(ctx):
    if not _applies(ctx):
        return CheckResult("G1", "Certificates hold", SKIP, "no certificate declared")
    if ctx.tags.certified != ctx.norm:
        return CheckResult("G1", "Certificates hold", SKIP,
                           f"certified in {ctx.tags.certified}, audited in {ctx.norm}")
    certified = np.asarray(ctx.estimator.certify(ctx.X, ctx.y, ctx.epsilon), dtype=bool)
    ctx.memo["certified"] = certified
    robust = ctx.robust_at()
    broken = np.flatnonzero(certified & ~robust)
    ev = {"certified_accuracy": float(certified.mean()),
          "empirical_accuracy": float(robust.mean()), "broken_certified": broken.tolist()}
    if len(broken):
        return CheckResult("G1", "Certificates hold", FAIL,
                           f"{len(broken)} certified examples broken by an attack", ev)
    return CheckResult("G1", "Certificates hold", PASS,
                       f"certified {certified.mean():.1%} <= empirical {robust.mean():.1%}; "
                       "no certified example broken", ev)


def check_g2(ctx):
    if not _applies(ctx) or ctx.tags.certified != ctx.norm:
        return CheckResult("G2", "Certified beside empirical", SKIP, "no certificate checked")
    cert = float(np.asarray(ctx.estimator.certify(ctx.X, ctx.y, ctx.epsilon), bool).mean())
    emp = float(ctx.robust_at().mean())
    return CheckResult("G2", "Certified beside empirical", PASS,
                       f"certified {cert:.1%}, empirical worst case {emp:.1%}",
                       {"certified": cert, "empirical": emp})


CHECKS = (
    ("G1", "Certificates hold", check_g1),
    ("G2", "Certified beside empirical", check_g2),
)
