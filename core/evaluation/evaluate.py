"""``robustlearn.evaluate``: robust accuracy of a fitted estimator under many attacks and radii."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d
from tqdm.auto import tqdm

from .. import memory
from ..seeding import seed_from
from ..tags import get_defense_tags
from ..validation import (
    check_float,
    check_images,
    check_int,
    check_random_state,
    check_unit_interval,
)
from .attack_specs import check_attacks, resolve_attacks
from .intervals import wilson_interval
from .journal import EvaluationJournal, decode_bits
from .ladder import adaptive_attacks, missing_adaptive_attacks
from .provenance import array_fingerprint, estimator_fingerprint, json_safe, library_versions
from .report import RobustnessReport
from .units import parallel_units, run_unit, unit_seed
from .worst_case import robust_correct, worst_case_correct

log = logging.getLogger(__name__)

#: Audit check A4 (docs/reports.md): fewer examples than this make a headline number too uncertain.
MIN_HEADLINE_EXAMPLES = 1000

#: Rise of a per-attack curve (in accuracy) that is reported as non-monotone.
MONOTONICITY_TOLERANCE = 0.005

_SEED_RULE = ("unit seed = numpy SeedSequence([random_state, unit, batch]), unit 0 = clean pass, "
              "unit i = i-th attack")

__all__ = ["check_attacks", "evaluate"]


def _check_epsilons(epsilons):
    if isinstance(epsilons, (str, bytes)) or not hasattr(epsilons, "__iter__"):
        raise TypeError(f"epsilons must be a sequence of floats, got {epsilons!r}")
    values = [check_float(e, f"epsilons[{i}]", low=0) for i, e in enumerate(epsilons)]
    if not values:
        raise ValueError("epsilons must not be empty")
    return sorted(set(values))


def _check_data(estimator, X, y):
    X = check_images(X)
    check_unit_interval(X)
    expected = getattr(estimator, "n_features_in_", None)
    features = int(np.prod(X.shape[1:]))
    if expected is not None and features != expected:
        raise ValueError(
            f"X has {features} features per sample, but {type(estimator).__name__} was fitted "
            f"on {expected}"
        )
    shape = getattr(estimator, "input_shape_", None)
    if shape:
        X = np.ascontiguousarray(X.reshape((len(X),) + tuple(shape)))
    if y is None:
        raise ValueError("evaluate needs the true labels y, got None")
    y = column_or_1d(np.asarray(y))
    check_consistent_length(X, y)
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        unknown = ~np.isin(y, classes)
        if np.any(unknown):
            bad = np.unique(y[unknown])[:5].tolist()
            raise ValueError(
                f"y holds labels {bad} that {type(estimator).__name__} was not fitted on "
                f"(classes_ = {np.asarray(classes).tolist()})"
            )
    return X, y


def _subset(X, y, n, seed, notes):
    if n >= len(X):
        if n > len(X):
            notes.append(f"n={n} was requested but only {len(X)} examples were given; all used")
        return X, y
    index = np.arange(len(X))
    try:
        chosen, _ = train_test_split(index, train_size=n, stratify=y, random_state=seed)
    except ValueError:  # a class too rare to stratify on
        chosen, _ = train_test_split(index, train_size=n, random_state=seed)
    chosen = np.sort(chosen)
    return X[chosen], y[chosen]


def _curve(correct_rows, confidence):
    n_correct = correct_rows.sum(axis=-1)
    n = correct_rows.shape[-1]
    low, high = wilson_interval(n_correct, n, confidence)
    return {
        "accuracy": (n_correct / n).tolist(),
        "n_correct": n_correct.astype(int).tolist(),
        "ci_low": np.atleast_1d(low).tolist(),
        "ci_high": np.atleast_1d(high).tolist(),
    }


def _weaker_than_single_step(rows, specs, epsilons):
    """Audit check B1: an iterative gradient attack must not be weaker than single-step FGSM.

    Carlini et al. 2019 ("Verify iterative attacks perform better than
    single-step attacks"): when one is, its step size or step count is wrong
    for this model, or the gradient is masked.
    """
    notes = []
    single = [r for r, s in zip(rows, specs) if s.name == "fgsm"]
    for reference in single:
        for row, spec in zip(rows, specs):
            if (spec.name == "fgsm" or not spec.needs_gradient or spec.is_minimization
                    or spec.group != reference["group"]):
                continue
            gap = np.subtract(row["accuracy"], reference["accuracy"])
            worse = [f"{eps:g}" for eps, g in zip(epsilons, gap) if g > MONOTONICITY_TOLERANCE]
            if worse:
                notes.append(
                    f"{row['key']} is weaker than single-step {reference['key']} at epsilon "
                    f"{', '.join(worse)} (by up to {100 * gap.max():.1f} points): give it more "
                    "steps or a larger step size; the worst case still counts both"
                )
    return notes


def _certified_curve(estimator, X, y, epsilons, tags, robust, groups):
    """Certified accuracy per epsilon, and certified examples that an attack broke."""
    if tags.certified is None or not callable(getattr(estimator, "certified_radius", None)):
        return None, []
    radius = np.asarray(estimator.certified_radius(X), dtype=np.float64)
    correct = np.asarray(estimator.predict(X)) == y
    certified = np.stack([correct & (radius > eps) for eps in epsilons])
    same_norm = [i for i, g in enumerate(groups) if g == tags.certified]
    broken = 0
    if same_norm:
        attacked = robust[same_norm].all(axis=0)  # (eps, n): survived every attack
        broken = int((certified & ~attacked).any(axis=0).sum())
    warnings = []
    if broken:
        warnings.append(
            f"{broken} examples certified robust were broken by an attack: the certificate, "
            "the solver tolerance or the attack's projection is wrong"
        )
    curve = {"norm": tags.certified, "accuracy": certified.mean(axis=1).tolist(),
             "median_radius": float(np.median(radius)) if len(radius) else 0.0,
             "broken_by_attacks": broken}
    return curve, warnings


def evaluate(estimator, X, y, attacks=None, epsilons=None, *, norm="linf", n=None,
             batch_size=256, out_dir=None, resume=False, random_state=0, confidence=0.95,
             verbose=0, metadata=None, inference_draws=5, n_jobs=None, memory_budget=None):
    """Robust accuracy of a fitted estimator under several attacks and radii.

    Every attack runs on every example at every positive epsilon; the
    headline is the *per-example* worst case: an example counts as robust at
    radius epsilon when the estimator classifies it correctly clean and
    after every attack of the same norm at every radius up to epsilon, and the
    headline accuracy is the mean of that indicator over examples (never the
    minimum of per-attack mean accuracies, which overstates robustness when
    attacks break different examples: Carlini et al., "On Evaluating
    Adversarial Robustness", arXiv 1902.06705, 2019). Taking the minimum over
    smaller radii too is sound, since a perturbation in a small ball lies in
    every larger ball of the same norm, and makes the headline non-increasing
    in epsilon; per-attack curves are reported raw.

    Attacks are grouped by their ``norm`` attribute: ``"linf"`` attacks and
    ``"l2"`` attacks give separate headline curves, since one epsilon means
    different threat models under different norms. Model-free corruptions
    count under the norm they declare (bounded noise is a valid perturbation
    of its ball), and attacks declaring no norm form their own
    ``"corruption"`` group. Radius 0 is the clean input: its row is the clean
    accuracy, and no attack runs there.

    Parameters
    ----------
    estimator : fitted classifier
        A robustlearn defense, or any fitted classifier with ``predict`` and
        ``classes_`` (gradient attacks then need ``attack_surfaces``). When its
        capability tags (:func:`robustlearn.get_defense_tags`) declare a
        detector, the fraction of clean and of adversarial inputs that
        ``detect`` flags is reported too.
    X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)
        Images in [0, 1] (or ``uint8``).
    y : array-like of shape (n,)
        True labels, among the estimator's ``classes_``.
    attacks : list, optional
        Each a registered attack name (``"linf-pgd"``), a ``(name, params)``
        pair (``("linf-pgd", {"steps": 100})``) or an attack transformer
        instance (a white-box instance without a victim gets ``estimator``;
        a transfer attack must be fitted already). Attacks of the same name
        are told apart by their parameters in the report. By default, the
        adaptive ladder the estimator's tags and surfaces call for
        (:func:`robustlearn.evaluation.adaptive_attacks`): APGD-CE, APGD-T,
        Square, and BPDA, EOT, joint detector-aware and transfer attacks where
        they apply. Named attacks that miss what the tags call for give a
        WARN beside the headline.
    epsilons : sequence of float
        Radii (finite, >= 0), in the units of each attack's norm on [0, 1]
        images; sorted and deduplicated. Required.
    norm : {"linf", "l2"}, default="linf"
        Threat model of the default ladder (ignored when ``attacks`` is given).
    n : int, optional
        Evaluate on a stratified random subset of ``n`` examples (drawn with
        ``random_state``); default all.
    batch_size : int, default=256
        Examples per unit of work: results are logged, and resumed, per
        attack and batch.
    out_dir : str or Path, optional
        Folder of the JSON-lines log ``evaluation.jsonl``: one line per
        finished (attack, batch) with per-example correctness and detector
        flags, flushed to disk at once, so an interrupted run loses at most the
        unit in flight. Without it nothing is written.
    resume : bool, default=False
        Continue the log in ``out_dir``, skipping the units it holds. The
        configuration (estimator weights, data, attacks, epsilons, batch size,
        seed) must match the logged one, otherwise ``ValueError``; with an int
        ``random_state`` the resumed report equals an uninterrupted one. An
        existing log with ``resume=False`` is an error, never overwritten.
    random_state : int, RandomState or None, default=0
        Seeds the subset and every unit of work (each gets its own seed, so
        units can run in any order and be resumed).
    confidence : float, default=0.95
        Coverage of the Wilson score intervals.
    verbose : int, default=0
        1 shows a progress bar over the units of work.
    metadata : dict, optional
        Free-form context stored in the report (the CLI stores the dataset name).
    inference_draws : int, default=5
        For a defense tagged ``stochastic``: predictions per input, an example
        counting as correct only when every draw is (the worst case over
        repeated inference). Deterministic defenses predict once.
    n_jobs : int or None, default=None
        Units of work (attack x batch) run by this many joblib workers; None
        and 1 run them here, one after another. The report is the same either
        way (every unit has its own seed). Inside
        ``with joblib.parallel_backend("dask"):`` the units run on a Dask
        cluster (see :mod:`robustlearn.cluster`).
    memory_budget : int, optional
        Bytes an attack's batch may take on the device (see
        :mod:`robustlearn.memory`); set in each unit of work, so it reaches
        joblib and Dask workers too. None: half the device's free memory.

    Returns
    -------
    RobustnessReport

    Raises
    ------
    ValueError
        Bad input, before any work: X outside [0, 1], a negative or non-finite
        epsilon, an unknown attack (with a suggestion), labels the estimator
        does not know, lengths that differ, an unfitted estimator
        (``NotFittedError``), a log that does not match.
    TypeError
        Attacks or epsilons of the wrong type.

    Examples
    --------
    >>> report = robustlearn.evaluate(model, X_test, y_test, attacks=["fgsm", "linf-pgd"],
    ...                               epsilons=[0, 0.1, 0.2])  # doctest: +SKIP
    >>> print(report.to_markdown())  # doctest: +SKIP
    """
    wall_start = time.perf_counter()
    plan = _plan(estimator, X, y, attacks, epsilons, norm=norm, n=n, batch_size=batch_size,
                 inference_draws=inference_draws, random_state=random_state,
                 memory_budget=memory_budget)
    confidence = check_float(confidence, "confidence", low=0, high=1, low_open=True,
                             high_open=True)
    verbose = check_int(verbose, "verbose", low=0)
    if n_jobs is not None and check_int(n_jobs, "n_jobs") == 0:
        raise ValueError("n_jobs must be a positive int, -1 (all cores) or None, got 0")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder of the log to continue")
    config = _config(plan, estimator)
    journal = EvaluationJournal(out_dir, config, resume) if out_dir is not None else None

    label = (metadata or {}).get("defense") or type(estimator).__name__
    log.info("evaluate %s: %d examples, %s at epsilon %s", label, len(plan.X),
             ", ".join(s.key for s in plan.specs), ", ".join(f"{e:g}" for e in plan.epsilons))
    outcome = _collect(plan, estimator, journal, n_jobs, label, verbose)
    log.info("evaluate %s: done in %.1f s", label, time.perf_counter() - wall_start)

    full_correct, full_flagged = _with_radius_zero(outcome, plan.epsilons)
    robust = robust_correct(outcome.clean_correct, full_correct)
    groups = [s.group for s in plan.specs]
    clean = _curve(outcome.clean_correct[None], confidence)
    clean = {k: v[0] for k, v in clean.items()}
    clean["detection_rate"] = float(outcome.clean_flagged.mean()) if plan.detector else None
    attack_rows = _attack_rows(plan, robust, full_flagged, outcome.seconds, confidence)
    worst = worst_case_correct(robust, groups, plan.epsilons)
    worst_rows = {
        group: {"attacks": [s.key for s in plan.specs if s.group == group],
                **_curve(worst[group], confidence)}
        for group in worst
    }
    certified, broken = _certified_curve(estimator, plan.X, plan.y, plan.epsilons, plan.tags,
                                         robust, groups)
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    return RobustnessReport(
        estimator={**config["estimator"], "params": json_safe(params)},
        tags=plan.tags.to_dict(),
        epsilons=list(plan.epsilons),
        n_examples=len(plan.X),
        confidence=confidence,
        clean=clean,
        attacks=attack_rows,
        worst_case=worst_rows,
        wall_seconds=time.perf_counter() - wall_start,
        compute_seconds=float(outcome.seconds.sum()),
        versions=library_versions(),
        seeds={"random_state": plan.seed, "rule": _SEED_RULE},
        n_batches=len(plan.starts),
        n_batches_resumed=outcome.resumed,
        notes=plan.notes + _report_notes(plan, attack_rows),
        metadata=json_safe(dict(metadata or {})),
        warnings=missing_adaptive_attacks(plan.specs, estimator, plan.tags) + broken,
        certified=certified,
    )


@dataclass
class _Plan:
    """What an evaluation will run, checked before any of it runs."""

    X: np.ndarray
    y: np.ndarray
    epsilons: list
    specs: list
    tags: object
    chosen: bool  # attacks picked from the tags (the default ladder), not named by the user
    draws: int
    detector: bool
    seed: int
    batch_size: int
    notes: list
    memory_budget: int | None = None  # bytes an attack's batch may take (None: the default)

    @property
    def attack_eps(self):
        """Positive radii: radius 0 is the clean input, where no attack runs."""
        return [e for e in self.epsilons if e > 0]

    @property
    def starts(self):
        return list(range(0, len(self.X), self.batch_size))


def _plan(estimator, X, y, attacks, epsilons, *, norm, n, batch_size, inference_draws,
          random_state, memory_budget=None):
    """Validate every input and resolve the attacks; raises before any expensive work."""
    check_is_fitted(estimator)
    X, y = _check_data(estimator, X, y)
    if epsilons is None:
        raise ValueError("epsilons must be given: the radii to evaluate, e.g. [0, 0.1, 0.2]")
    epsilons = _check_epsilons(epsilons)
    batch_size = check_int(batch_size, "batch_size", low=1)
    memory_budget = memory.check_memory_budget(memory_budget)
    inference_draws = check_int(inference_draws, "inference_draws", low=1)
    check_random_state(random_state)
    seed = (int(random_state) if isinstance(random_state, (int, np.integer))
            else seed_from(random_state))
    tags = get_defense_tags(estimator)
    chosen = attacks is None
    if chosen:
        attacks = adaptive_attacks(estimator, norm=norm, tags=tags)
    specs = resolve_attacks(attacks, estimator, tags)
    notes = []
    if n is not None:
        X, y = _subset(X, y, check_int(n, "n", low=1), seed % (2**32), notes)
    return _Plan(X=X, y=y, epsilons=epsilons, specs=specs, tags=tags, chosen=chosen,
                 draws=inference_draws if tags.stochastic else 1,
                 detector=bool(tags.has_detector) and callable(getattr(estimator, "detect", None)),
                 seed=seed, batch_size=batch_size, notes=notes, memory_budget=memory_budget)


def _config(plan, estimator) -> dict:
    """The configuration a log must match to be resumed."""
    config = {
        "estimator": {"class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                      "fingerprint": estimator_fingerprint(estimator)},
        "data": {"n": len(plan.X), "X": array_fingerprint(plan.X), "y": array_fingerprint(plan.y)},
        "attacks": [{"key": s.key, "name": s.name, "params": s.params} for s in plan.specs],
        "epsilons": plan.epsilons,
        "batch_size": plan.batch_size,
        "random_state": plan.seed,
        "detector": plan.detector,
        "inference_draws": plan.draws,
    }
    if plan.memory_budget is not None:  # random attacks draw per batch: part of the configuration
        config["memory_budget"] = plan.memory_budget
    return config


@dataclass
class _Outcome:
    """Per-example results of every unit: correctness and detector flags, clean and attacked."""

    clean_correct: np.ndarray  # (n,)
    clean_flagged: np.ndarray  # (n,)
    adv_correct: np.ndarray  # (attacks, positive epsilons, n)
    adv_flagged: np.ndarray
    seconds: np.ndarray  # (1 + attacks,): the clean pass, then each attack
    resumed: int = 0  # batches read whole from the log

    @classmethod
    def empty(cls, n_attacks, n_eps, n):
        adv = np.zeros((n_attacks, n_eps, n), dtype=bool)
        return cls(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), adv, adv.copy(),
                   np.zeros(n_attacks + 1))

    def store(self, unit, record, lo, hi):
        rows = np.array([decode_bits(r) for r in record["correct"]], dtype=bool)
        flags = (np.array([decode_bits(r) for r in record["flagged"]], dtype=bool)
                 if record.get("flagged") is not None else None)
        if unit == 0:
            self.clean_correct[lo:hi] = rows[0]
            if flags is not None:
                self.clean_flagged[lo:hi] = flags[0]
        else:
            self.adv_correct[unit - 1, :, lo:hi] = rows.reshape(-1, hi - lo)
            if flags is not None:
                self.adv_flagged[unit - 1, :, lo:hi] = flags.reshape(-1, hi - lo)
        self.seconds[unit] += record["seconds"]


def _unit_key(plan, unit):
    return "clean" if unit == 0 else plan.specs[unit - 1].key


def _collect(plan, estimator, journal, n_jobs, label, verbose) -> _Outcome:
    """Run every (batch, unit) the log does not hold yet, log it, and gather all of them."""
    n_units = len(plan.specs) + 1
    starts, attack_eps = plan.starts, plan.attack_eps
    outcome = _Outcome.empty(len(plan.specs), len(attack_eps), len(plan.X))

    def logged(batch, unit):
        return journal.get(_unit_key(plan, unit), batch) if journal is not None else None

    pending = None
    if n_jobs is not None and n_jobs != 1:
        todo = [(b, u) for b in range(len(starts)) for u in range(n_units) if logged(b, u) is None]
        if todo:
            pending = parallel_units(todo, n_jobs, plan.specs, estimator, plan.X, plan.y, starts,
                                     plan.batch_size, attack_eps, plan.detector, plan.seed,
                                     plan.draws, plan.memory_budget)
    # one bar per evaluation, on a terminal only (a log file or a pipe gets the log lines)
    progress = tqdm(total=len(starts) * n_units, desc=f"evaluate {label}", unit="unit",
                    disable=not verbose or not sys.stderr.isatty(), leave=False,
                    dynamic_ncols=True)
    try:
        for batch, lo in enumerate(starts):
            hi = min(lo + plan.batch_size, len(plan.X))
            xb, yb = plan.X[lo:hi], plan.y[lo:hi]
            batch_resumed = True
            for unit in range(n_units):
                key = _unit_key(plan, unit)
                record = logged(batch, unit)
                if record is None:
                    batch_resumed = False
                    progress.set_postfix_str(f"{key}, batch {batch + 1}/{len(starts)}")
                    seed = unit_seed(plan.seed, unit, batch)
                    if pending is not None:
                        record = next(pending)
                    else:
                        record = run_unit(plan.specs, estimator, xb, yb, unit, attack_eps,
                                          plan.detector, seed, plan.draws, plan.memory_budget)
                    record = {"unit": key, "batch": batch, "start": lo, "stop": hi,
                              "seed": seed, **record}
                    if journal is not None:
                        journal.append(record)
                outcome.store(unit, record, lo, hi)
                progress.update(1)
            outcome.resumed += int(batch_resumed and journal is not None)
    finally:
        progress.close()
    return outcome


def _with_radius_zero(outcome, epsilons):
    """(attacks, epsilons, n) correctness and flags, radius 0 being the clean input for all."""
    positive = np.array([e > 0 for e in epsilons])
    n_attacks = outcome.adv_correct.shape[0]

    def full(clean, adv):
        rows = np.repeat(clean[None, None, :], len(epsilons), axis=1)
        rows = np.repeat(rows, n_attacks, axis=0)
        rows[:, positive] = adv
        return rows

    return (full(outcome.clean_correct, outcome.adv_correct),
            full(outcome.clean_flagged, outcome.adv_flagged))


def _attack_rows(plan, robust, flagged, seconds, confidence):
    """The report's row for each attack: its raw curve, detection and time."""
    rows = []
    for i, spec in enumerate(plan.specs):
        rows.append({
            "key": spec.key, "name": spec.name, "params": spec.params, "norm": spec.norm,
            "group": spec.group, "is_minimization": spec.is_minimization,
            **_curve(robust[i], confidence),
            "detection_rate": flagged[i].mean(axis=1).tolist() if plan.detector else None,
            # the accuracy of a defense with a detector: correct, or caught by the detector
            "correct_or_flagged": ((robust[i] | flagged[i]).mean(axis=1).tolist()
                                   if plan.detector else None),
            "seconds": float(seconds[i + 1]),
        })
    return rows


def _report_notes(plan, attack_rows):
    """Notes for the reader: non-monotone curves, weak attacks, small n, how attacks were chosen."""
    notes = []
    for row in attack_rows:
        rises = np.diff(row["accuracy"])
        if np.any(rises > MONOTONICITY_TOLERANCE):
            notes.append(
                f"{row['key']}: robust accuracy rises with epsilon (by up to "
                f"{100 * rises.max():.1f} points): the attack is not converging at some radii "
                "(weak optimisation or gradient masking)"
            )
    notes += _weaker_than_single_step(attack_rows, plan.specs, plan.epsilons)
    if len(plan.X) < MIN_HEADLINE_EXAMPLES:
        notes.append(
            f"{len(plan.X)} examples: fewer than {MIN_HEADLINE_EXAMPLES}, the size an audit asks "
            "for a headline number; read the intervals"
        )
    if plan.tags.stochastic:
        notes.append(f"the estimator is stochastic: every accuracy is the worst case over "
                     f"{plan.draws} predictions per input")
    if plan.chosen:
        notes.append("attacks chosen from the estimator's tags and surfaces: "
                     + ", ".join(s.key for s in plan.specs))
    return notes
