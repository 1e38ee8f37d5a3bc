"""Family D: stochastic defenses (shared/evaluation.md, checks D1-D5).

Athalye, Carlini & Wagner, ICML 2018 (Expectation over Transformation); Croce
& Hein, AutoAttack ``checks.py::check_randomized`` (5 passes, 1e-4); Carlini
et al. 2019: attacks must succeed when the randomness is fixed; Croce et al.,
ICML 2022: repeated stochastic inference at test time.
"""

from __future__ import annotations

import numpy as np
import torch

from ..attacks.victim import Victim
from ..seeding import torch_seed
from .base import FAIL, PASS, SKIP, WARN, CheckResult, RewrappedSurfaces, run_accuracy, tolerance


def _is_random(ctx):
    victim = Victim(ctx.estimator) if ctx.differentiable else None
    X = ctx.X[: min(ctx.n, 100)]
    if victim is None:
        preds = [ctx.predict(X) for _ in range(5)]
        return any(not np.array_equal(preds[0], p) for p in preds[1:]), {}
    x = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(
        (len(X),) + (victim.input_shape or np.shape(X)[1:]))).to(victim.device)
    with torch.no_grad():
        outs = [victim.logits(x).double().cpu().numpy() for _ in range(5)]
    normed = [o / np.linalg.norm(o, axis=1, keepdims=True).clip(1e-12) for o in outs]
    labels = victim.encode(ctx.y[: len(X)])
    counts = [int((o.argmax(1) == labels).sum()) for o in outs]
    diff = max(float(np.abs(n - normed[0]).max()) for n in normed[1:])
    return len(set(counts)) > 1 or diff > 1e-4, {"correct_per_pass": counts,
                                                "max_normalised_logit_change": diff}


def _applies(ctx):
    if "random" not in ctx.memo:
        ctx.memo["random"] = _is_random(ctx)[0]
    return ctx.tags.stochastic or ctx.memo["random"]


def check_d1(ctx):
    random, ev = _is_random(ctx)
    ctx.memo["random"] = random
    ev["tagged_stochastic"] = bool(ctx.tags.stochastic)
    if random and not ctx.tags.stochastic:
        return CheckResult("D1", "Randomness detector", FAIL,
                           "the forward pass is random but the tags say stochastic=False, so "
                           "evaluations read from the tags run no EOT; set the tag", ev)
    if ctx.tags.stochastic and not random:
        return CheckResult("D1", "Randomness detector", WARN,
                           "tagged stochastic, but 5 passes gave the same logits", ev)
    return CheckResult("D1", "Randomness detector", PASS,
                       "random forward pass, declared (D2-D5 run)" if random else
                       "deterministic forward pass", ev)


def _skip(check_id, title):
    return CheckResult(check_id, title, SKIP, "deterministic defense")


def check_d2(ctx):
    if not _applies(ctx):
        return _skip("D2", "EOT sweep")
    accs = {}
    for samples in ctx.budget["eot"]:
        key = f"apgd-ce-eot-{samples}"
        attack = ctx.make("apgd-ce", norm=ctx.norm, steps=ctx.budget["steps"],
                          eot_samples=samples, random_state=ctx.seed(key))
        adv, _ = ctx.run_attack(key, attack, [ctx.epsilon])
        ctx.adv_cache[key] = adv[0]
        accs[samples] = run_accuracy(ctx, key)
    values = list(accs.values())
    tol = tolerance(ctx.n)
    no_eot = [type(a).__name__ for a in ctx.extra_attacks
              if int(getattr(a, "eot_samples", 1) or 1) == 1 and getattr(a, "needs_gradient",
                                                                      False)]
    ev = {"accuracy_by_eot": {str(k): v for k, v in accs.items()}, "tolerance": tol,
          "overstatement_without_eot": values[0] - min(values), "named_without_eot": no_eot}
    reduced = (f"budget quick: EOT samples {list(accs)}" if ctx.budget_name == "quick" else "")
    msg = (f"APGD-CE with EOT {' -> '.join(map(str, accs))}: "
           f"{' -> '.join(f'{v:.1%}' for v in values)}")
    if no_eot and values[0] - min(values) > tol:
        return CheckResult("D2", "EOT sweep", FAIL,
                           msg + f"; named attacks {no_eot} ran without EOT, which overstates "
                           f"accuracy by {values[0] - min(values):.1%}", ev, reduced)
    if abs(values[-1] - values[-2]) > tol:
        return CheckResult("D2", "EOT sweep", WARN, msg + ": not at a plateau yet", ev, reduced)
    return CheckResult("D2", "EOT sweep", PASS, msg, ev, reduced)


def _seeded(estimator, seed):
    """The estimator with its randomness fixed: every surface call reseeds torch."""

    def rewrap(fn):
        def fixed(x, *args, **kwargs):
            with torch_seed(seed):
                return fn(x, *args, **kwargs)

        return fixed

    return RewrappedSurfaces(estimator, rewrap, " (randomness fixed)")


def check_d3(ctx):
    if not _applies(ctx):
        return _skip("D3", "Fixed-randomness attack")
    if not ctx.differentiable:
        return CheckResult("D3", "Fixed-randomness attack", SKIP, "no attack surface")
    seeded = _seeded(ctx.estimator, ctx.seed("d3"))
    attack = ctx.make("apgd-ce", estimator=seeded, norm=ctx.norm, steps=ctx.budget["steps"],
                      random_state=ctx.seed("d3-attack"))
    adv = attack.generate(ctx.X, ctx.y, epsilons=[ctx.epsilon])[0]
    ctx.validate("fixed-randomness", ctx.X, adv, ctx.epsilon, ctx.norm)
    victim = Victim(seeded)
    shape = (ctx.n,) + (victim.input_shape or np.shape(adv)[1:])
    pred = victim.predict_indices(torch.as_tensor(np.asarray(adv, np.float32).reshape(shape)))
    fixed_acc = float(((pred.cpu().numpy() == victim.encode(ctx.y)) & ctx.clean_correct).mean())
    eot_keys = [k for k in ctx.runs if k.startswith("apgd-ce-eot-")]
    eot_acc = float(ctx.robust_at(keys=eot_keys).mean()) if eot_keys else float("nan")
    tol = tolerance(ctx.n)
    ev = {"fixed_randomness_accuracy": fixed_acc, "eot_accuracy": eot_acc}
    msg = (f"with the randomness fixed APGD-CE leaves {fixed_acc:.1%} (EOT attacks on the "
           f"random defense: {eot_acc:.1%})")
    if eot_keys and fixed_acc > eot_acc + tol:
        return CheckResult("D3", "Fixed-randomness attack", FAIL,
                           msg + ": the attack fails on a deterministic model", ev)
    return CheckResult("D3", "Fixed-randomness attack", PASS, msg, ev)


def check_d4(ctx):
    if not _applies(ctx):
        return _skip("D4", "Repeated stochastic inference")
    key = max((k for k in ctx.adv_cache if k.startswith("apgd-ce-eot-")),
              key=lambda k: int(k.rsplit("-", 1)[1]), default=None)
    if key is None:
        samples = ctx.budget["eot"][-1]
        key = f"apgd-ce-eot-{samples}"
        attack = ctx.make("apgd-ce", norm=ctx.norm, steps=ctx.budget["steps"],
                          eot_samples=samples, random_state=ctx.seed(key))
        ctx.adv_cache[key] = ctx.run_attack(key, attack, [ctx.epsilon])[0][0]
    adv = ctx.adv_cache[key]
    R = ctx.budget["repeats"]
    draws = np.stack([ctx.predict(adv) == ctx.y for _ in range(R)])
    worst = draws.all(axis=0) & ctx.clean_correct
    ctx.record(f"repeated-inference-{R}", [ctx.epsilon], [draws.all(axis=0)], ctx.norm,
               "white-box")
    ev = {"repeats": R, "worst_of_R": float(worst.mean()),
          "mean_of_R": float((draws & ctx.clean_correct).mean())}
    return CheckResult("D4", "Repeated stochastic inference", PASS,
                       f"on {key} examples: worst of {R} draws {ev['worst_of_R']:.1%}, mean "
                       f"{ev['mean_of_R']:.1%} (the worst enters the headline)", ev)


def check_d5(ctx):
    if not _applies(ctx):
        return _skip("D5", "Randomness ablation")
    return CheckResult("D5", "Randomness ablation", SKIP,
                       "needs a deterministic variant of the defense, which the surface "
                       "contract does not declare yet; run it by hand")


CHECKS = (
    ("D1", "Randomness detector", check_d1),
    ("D2", "EOT sweep", check_d2),
    ("D3", "Fixed-randomness attack", check_d3),
    ("D4", "Repeated stochastic inference", check_d4),
    ("D5", "Randomness ablation", check_d5),
)
