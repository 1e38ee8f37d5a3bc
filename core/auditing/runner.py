"""``robustlearn.audit``: run every applicable check A-G, cache each result, report."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .. import memory
from ..evaluation.intervals import wilson_interval
from ..evaluation.provenance import (
    array_fingerprint,
    estimator_fingerprint,
    json_safe,
    library_versions,
)
from ..validation import check_float, check_images, check_unit_interval
from . import certified, detection, iterative, masking, stochastic, strength, threat_model
from .base import BUDGETS, FAIL, AuditContext, CheckResult
from .report import AuditReport

logger = logging.getLogger("robustlearn.audit")

#: Bump when a check changes, so cached results of older versions are not reused.
AUDIT_VERSION = 1

#: Run order: the randomness and inner-loop detectors first (later checks read them),
#: attacks next, validity of every returned example (A2) last.
ORDER = (
    threat_model.CHECKS + stochastic.CHECKS[:1] + iterative.CHECKS[:1] + strength.CHECKS
    + masking.CHECKS + stochastic.CHECKS[1:] + iterative.CHECKS[1:] + detection.CHECKS
    + certified.CHECKS + threat_model.FINAL
)

#: Cheap checks whose findings later checks read: always recomputed, never cached.
UNCACHED = {"D1", "E1", "A2"}


def _subset(X, y, n, seed):
    if n is None or n >= len(X):
        return X, y
    try:
        _, Xs, _, ys = train_test_split(X, y, test_size=n, stratify=y, random_state=seed)
    except ValueError:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(X), n, replace=False))
        Xs, ys = X[idx], y[idx]
    return Xs, ys


def _fingerprint(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def audit(estimator, X, y, epsilon, norm="linf", budget="quick", *, attacks=None, n=None,
          checks=None, out_dir=None, resume=True, random_state=0, verbose=0, memory_budget=None,
          **budget_overrides):
    """Audit a fitted defense against the evaluation canon (checks A-G).

    Reads the estimator's capability tags and attack surfaces, then runs every
    check of ``shared/evaluation.md`` that applies: A (threat model, clean
    accuracy, validity of every adversarial example, logits, sample size), B
    (attack ladder, iteration doubling, restarts, loss and step-size sweep,
    silent success, the binarization test, the undefended twin), C (epsilon
    sweep to chance, unbounded attack, white-box against black-box and noise,
    zero gradients, gradient fidelity, transfer from the static base,
    cross-norm), D for randomness, E for inner loops, F for detectors and G for
    certificates. The headline is the per-example worst case over every attack
    any check ran at radii up to ``epsilon`` (Carlini et al., "On Evaluating
    Adversarial Robustness", arXiv 1902.06705, 2019).

    Parameters
    ----------
    estimator : fitted classifier
        A robustlearn defense (or any fitted classifier; without
        ``attack_surfaces`` only black-box checks apply).
    X : array-like of images in [0, 1]
    y : array-like of shape (n,)
    epsilon : float
        Radius of the threat model.
    norm : {"linf", "l2"}, default="linf"
    budget : {"quick", "full"} or dict, default="quick"
        ``"quick"``: 100 examples and short attacks, every applicable check
        run as a reduced version (each result says how); ``"full"``: the
        protocol of shared/evaluation.md (1000 examples, AutoAttack, 100 ->
        200 -> 400 steps, 1 -> 5 -> 10 restarts, ...).
    attacks : list of attack transformers, optional
        Attacks of your own (for example the ones a paper used): added to the
        ladder (B1), traced for silent success (B5), checked for EOT (D2).
    n : int, optional
        Examples audited (a stratified subset); default the budget's.
    checks : list of str, optional
        Only these check ids (default all).
    out_dir : str or Path, optional
        Writes ``audit.md``, ``audit.json``, ``audit.png`` and one cached
        result per check under ``checks/``.
    resume : bool, default=True
        Reuse cached check results in ``out_dir`` whose configuration
        fingerprint (estimator weights, data, epsilon, norm, budget, seed,
        audit version) matches.
    random_state : int, default=0
    verbose : int, default=0
        1 shows a progress bar and logs each check's status.
    memory_budget : int or None, default=None
        Bytes a batch of an attack or of prediction may use (memory, not the
        compute ``budget``); None is half the free memory of the estimator's
        device (see :func:`robustlearn.memory.budget`).
    **budget_overrides
        Change single budget parameters (``steps=50``).

    Returns
    -------
    AuditReport
    """
    check_is_fitted(estimator)
    check_float(epsilon, "epsilon", low=0, low_open=True)
    memory_budget = memory.check_memory_budget(memory_budget)
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {sorted(BUDGETS)} or a dict, got {budget!r}")
        budget_name, params = budget, dict(BUDGETS[budget])
    elif isinstance(budget, dict):
        budget_name, params = "custom", {**BUDGETS["quick"], **budget}
    else:
        raise TypeError(f"budget must be 'quick', 'full' or a dict, got {budget!r}")
    unknown = set(budget_overrides) - set(params)
    if unknown:
        raise TypeError(f"unknown budget parameters {sorted(unknown)}; known: {sorted(params)}")
    params.update(budget_overrides)
    X = np.asarray(X)
    y = np.asarray(y)
    X_img = check_images(X)
    check_unit_interval(X_img)
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths ({len(X)} and {len(y)})")
    known = {cid for cid, _, _ in ORDER}
    if checks is not None:
        bad = set(checks) - known
        if bad:
            raise ValueError(f"unknown checks {sorted(bad)}; known: {sorted(known)}")
    X, y = _subset(X, y, n if n is not None else params["n"], random_state)
    with memory.budget_if_given(memory_budget):
        return _run_checks(estimator, X, y, epsilon, norm, params, budget_name, attacks,
                           checks, out_dir, resume, random_state, verbose, memory_budget)


def _run_checks(estimator, X, y, epsilon, norm, params, budget_name, attacks, checks, out_dir,
                resume, random_state, verbose, memory_budget):
    """The body of :func:`audit`, on validated arguments, inside its memory budget."""
    ctx = AuditContext(estimator, X, y, epsilon, norm, params, random_state=random_state,
                       extra_attacks=attacks or (), budget_name=budget_name)
    config = {
        "version": AUDIT_VERSION, "estimator": estimator_fingerprint(estimator),
        "data": array_fingerprint(np.asarray(X)), "labels": array_fingerprint(y),
        "epsilon": float(epsilon), "norm": norm, "budget": json_safe(params),
        "seed": int(random_state),
        "attacks": [repr(a) for a in (attacks or ())],
    }
    if memory_budget is not None:  # random attacks draw per batch: part of the configuration
        config["memory_budget"] = memory_budget
    cache = Path(out_dir) / "checks" if out_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    results = []
    todo = [item for item in ORDER if checks is None or item[0] in checks or item[0] in UNCACHED]
    bar = tqdm(todo, desc="audit", disable=not verbose, leave=False)
    for check_id, title, fn in bar:
        bar.set_postfix_str(check_id)
        fingerprint = _fingerprint({**config, "check": check_id})
        path = cache / f"{check_id}.json" if cache is not None else None
        if (path is not None and resume and check_id not in UNCACHED and path.exists()):
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fingerprint:
                ctx.runs.update(stored["runs"])
                ctx.violations.extend(stored["violations"])
                ctx.n_checked += stored["n_checked"]
                results.append(stored["result"])
                logger.info("%s %s (cached)", check_id, stored["result"]["status"])
                continue
        before_runs, before_v, before_n = set(ctx.runs), len(ctx.violations), ctx.n_checked
        start = time.perf_counter()
        try:
            result = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a finding, not a crash
            logger.exception("check %s raised", check_id)
            result = CheckResult(check_id, title, FAIL,
                                 f"the check raised {type(exc).__name__}: {exc}")
        result.seconds = round(time.perf_counter() - start, 2)
        result.evidence = json_safe(result.evidence)
        record = result.to_dict()
        results.append(record)
        if verbose:
            logger.info("%s %s: %s", check_id, result.status, result.message)
        if path is not None:
            new_runs = {k: ctx.runs[k] for k in ctx.runs if k not in before_runs}
            payload = {"fingerprint": fingerprint, "result": record, "runs": new_runs,
                       "violations": ctx.violations[before_v:],
                       "n_checked": ctx.n_checked - before_n}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload))
            tmp.replace(path)
    if checks is not None:
        results = [r for r in results if r["id"] in checks]
    robust = ctx.robust_at()
    low, high = wilson_interval(int(robust.sum()), ctx.n)
    headline = {
        "robust_accuracy": float(robust.mean()), "interval": [low, high],
        "clean_accuracy": float(ctx.clean_correct.mean()), "n": ctx.n,
        "epsilon": float(epsilon), "norm": norm,
        "clean_correct": ctx.clean_correct.tolist(), "robust": robust.tolist(),
    }
    manifest = {
        **threat_model.manifest(ctx), "budget": budget_name, "budget_params": json_safe(params),
        "estimator": type(estimator).__name__, "params": json_safe(
            estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}),
        "fingerprint": config, "versions": library_versions(), "seed": int(random_state),
    }
    report = AuditReport(results, headline, ctx.runs, manifest)
    if out_dir is not None:
        report.write(out_dir)
    return report
