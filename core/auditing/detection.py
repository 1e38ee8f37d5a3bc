"""Family F: detectors and rejection (shared/evaluation.md, checks F1-F3).

Carlini & Wagner, "Adversarial Examples Are Not Easily Detected", AISec 2017
and Bryniarski et al., ICLR 2022: a detector is evaluated by a joint attack
that must misclassify *and* evade it; Carlini et al. 2019: report the clean
false-reject rate beside accuracy with and without rejection.
"""

from __future__ import annotations

import numpy as np

from .base import FAIL, PASS, SKIP, CheckResult

#: Overstatement of the accuracy with rejection by classifier-only attacks that is flagged [P].
DETECTOR_GAP = 0.20


def _applies(ctx):
    return ctx.tags.has_detector and hasattr(ctx.estimator, "detect")


def _with_rejection(ctx, adv):
    correct = ctx.predict(adv) == ctx.y
    flagged = np.asarray(ctx.estimator.detect(adv), dtype=bool)
    return ctx.clean_correct & (correct | flagged), correct, flagged


def check_f1(ctx):
    if not _applies(ctx):
        return CheckResult("F1", "Joint classifier-and-detector attack", SKIP, "no detector")
    if not ctx.differentiable or "detector" not in {n for n in ctx.surfaces("detector")}:
        return CheckResult("F1", "Joint classifier-and-detector attack", SKIP,
                           "no differentiable 'detector' surface")
    attack = ctx.make("detector-aware-pgd", norm=ctx.norm, steps=ctx.budget["steps"],
                      random_state=ctx.seed("joint"), **ctx.eot_params("pgd"))
    adv, _ = ctx.run_attack("detector-aware-pgd", attack, [ctx.epsilon])
    joint, _, flagged_joint = _with_rejection(ctx, adv[0])
    ctx.memo["joint_with_rejection"] = float(joint.mean())
    base = ctx.adv_cache.get("apgd-ce")
    if base is None:
        base = ctx.make("apgd-ce", norm=ctx.norm, steps=ctx.budget["steps"],
                        random_state=ctx.seed("apgd-ce")).generate(ctx.X, ctx.y,
                                                                  epsilons=[ctx.epsilon])[0]
    plain, _, flagged_plain = _with_rejection(ctx, base)
    gap = float(plain.mean() - joint.mean())
    ev = {"classifier_only_with_rejection": float(plain.mean()),
          "joint_with_rejection": float(joint.mean()),
          "flagged_classifier_only": float(flagged_plain.mean()),
          "flagged_joint": float(flagged_joint.mean()), "gap": gap}
    msg = (f"accuracy with rejection: {plain.mean():.1%} under APGD-CE alone, "
           f"{joint.mean():.1%} under the joint attack")
    if gap > DETECTOR_GAP:
        return CheckResult("F1", "Joint classifier-and-detector attack", FAIL,
                           msg + f": a classifier-only evaluation overstates this detector by "
                           f"{gap:.1%}; quote the joint number", ev)
    return CheckResult("F1", "Joint classifier-and-detector attack", PASS, msg, ev)


def check_f2(ctx):
    if not _applies(ctx):
        return CheckResult("F2", "Tramer reduction", SKIP, "no detector")
    return CheckResult("F2", "Tramer reduction", SKIP,
                       "compare accuracy with rejection at epsilon with the robust-classifier "
                       "anchors at epsilon/2 (shared/evaluation.md table b) by hand")


def check_f3(ctx):
    if not _applies(ctx):
        return CheckResult("F3", "Reject-rate accounting", SKIP, "no detector")
    flagged = np.asarray(ctx.estimator.detect(ctx.X), dtype=bool)
    ev = {"clean_false_reject_rate": float(flagged.mean()),
          "robust_accuracy_without_rejection": float(ctx.robust_at().mean()),
          "robust_accuracy_with_rejection_joint": ctx.memo.get("joint_with_rejection")}
    msg = (f"clean false-reject rate {flagged.mean():.1%}; robust accuracy without rejection "
           f"{ev['robust_accuracy_without_rejection']:.1%}")
    if ev["robust_accuracy_with_rejection_joint"] is not None:
        msg += f", with rejection (joint attack) {ev['robust_accuracy_with_rejection_joint']:.1%}"
    return CheckResult("F3", "Reject-rate accounting", PASS, msg, ev)


CHECKS = (
    ("F1", "Joint classifier-and-detector attack", check_f1),
    ("F2", "Tramer reduction", check_f2),
    ("F3", "Reject-rate accounting", check_f3),
)
