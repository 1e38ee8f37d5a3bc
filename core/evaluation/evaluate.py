"""``robustlearn.evaluate``: robust accuracy of a fitted estimator under many attacks and radii."""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d
from tqdm.auto import tqdm

from .. import memory, registry
from ..seeding import seed_from, torch_seed
from ..tags import get_defense_tags
from ..validation import (
    check_float,
    check_images,
    check_int,
    check_random_state,
    check_unit_interval,
)
from .intervals import wilson_interval
from .journal import EvaluationJournal, decode_bits, encode_bits
from .ladder import adaptive_attacks, missing_adaptive_attacks
from .provenance import array_fingerprint, estimator_fingerprint, json_safe, library_versions
from .report import RobustnessReport
from .worst_case import attack_group, robust_correct, worst_case_correct

log = logging.getLogger(__name__)

#: Audit check A4 (docs/reports.md): fewer examples than this make a headline number too uncertain.
MIN_HEADLINE_EXAMPLES = 1000

#: Rise of a per-attack curve (in accuracy) that is reported as non-monotone.
MONOTONICITY_TOLERANCE = 0.005

_SEED_RULE = ("unit seed = numpy SeedSequence([random_state, unit, batch]), unit 0 = clean pass, "
              "unit i = i-th attack")


class _AttackSpec:
    """One resolved attack: its transformer and how the report names it."""

    def __init__(self, attack, name, params):
        self.attack = attack
        self.name = name
        self.params = params
        self.norm = getattr(attack, "norm", None)
        self.group = attack_group(self.norm)
        self.is_minimization = bool(getattr(attack, "is_minimization", False))
        self.needs_gradient = bool(getattr(attack, "needs_gradient", False))
        self.key = name


#: Attack parameters evaluate sets itself (radii per call, the victim, per-unit seeds).
_SET_BY_EVALUATE = ("epsilon", "estimator", "random_state")


def _changed_params(attack, params) -> dict:
    """Parameters of an attack instance that differ from their defaults (as sklearn's repr)."""
    try:
        signature = inspect.signature(type(attack).__init__).parameters
    except (TypeError, ValueError):
        signature = {}
    changed = {}
    for key, value in params.items():
        if key in _SET_BY_EVALUATE or key == "surrogate":
            continue
        default = signature[key].default if key in signature else inspect.Parameter.empty
        if default is inspect.Parameter.empty or repr(default) != repr(value):
            changed[key] = json_safe(value)
    return changed


def _registered_name(attack) -> str:
    """Name of the registration that makes attacks like ``attack``.

    Several registrations can share a class (``apgd-ce``, ``apgd-dlr`` and
    ``apgd-t`` are all ``APGD`` with another ``loss``), so among the factories
    producing this class, pick the one whose defaults agree with most of the
    attack's parameters.
    """
    params = attack.get_params(deep=False) if hasattr(attack, "get_params") else {}
    best, best_agreement = type(attack).__name__, -1
    for entry in registry.list_registrations("attack"):
        try:
            reference = entry.factory()
        except Exception:  # noqa: BLE001 - a factory that needs arguments cannot be compared
            continue
        if type(reference) is not type(attack):
            continue
        ref_params = reference.get_params(deep=False)
        agreement = sum(1 for key, value in ref_params.items()
                        if key in params and _same(params[key], value))
        if agreement > best_agreement:
            best, best_agreement = entry.name, agreement
    return best


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects compare as different
        return False


def _resolve_attack(item, estimator):
    if isinstance(item, str):
        name, params = item, {}
    elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
          and isinstance(item[1], dict)):
        name, params = item[0], dict(item[1])
    elif callable(getattr(item, "generate", None)):
        attack = copy.copy(item)
        own = attack.get_params(deep=False) if hasattr(attack, "get_params") else {}
        needs_victim = getattr(attack, "needs_victim", lambda: True)()
        if ("estimator" in own and own.get("estimator") is None
                and own.get("surrogate") is None and needs_victim
                and not hasattr(attack, "victim_")):
            attack.set_params(estimator=estimator)
        return _AttackSpec(attack, _registered_name(item), _changed_params(attack, own))
    else:
        raise TypeError(
            "each attack must be a registered name, a (name, params dict) pair or an attack "
            f"transformer with a generate method, got {item!r}"
        )
    for key in _SET_BY_EVALUATE:
        if key in params:
            raise ValueError(f"attack {name!r}: {key} is set by evaluate, do not pass it")
    registry.get_registry().get("attack", name)  # unknown names: ValueError with a suggestion
    attack = registry.make("attack", name, estimator=estimator, **params)
    return _AttackSpec(attack, name, json_safe(params))


def _resolve_attacks(attacks, estimator, tags):
    if isinstance(attacks, str) or (isinstance(attacks, tuple) and len(attacks) == 2
                                    and isinstance(attacks[1], dict)):
        attacks = [attacks]
    if not isinstance(attacks, (list, tuple)) or not attacks:
        raise ValueError(f"attacks must be a non-empty list, got {attacks!r}")
    specs = [_resolve_attack(item, estimator) for item in attacks]
    for spec in specs:
        validate = getattr(spec.attack, "_validate_params", None)
        if validate is not None:
            validate()
        if spec.needs_gradient and not tags.gradient_attacks:
            raise ValueError(
                f"attack {spec.name!r} needs gradients, but {type(estimator).__name__} declares "
                "gradient_attacks=False; use decision-based or score-based attacks"
            )
    counts = {}
    for spec in specs:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    seen = {}
    for spec in specs:
        if counts[spec.name] > 1:
            described = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()
                                  if k not in ("batch_size",))
            spec.key = f"{spec.name}({described})" if described else spec.name
        seen[spec.key] = seen.get(spec.key, 0) + 1
        if seen[spec.key] > 1:
            spec.key = f"{spec.key}#{seen[spec.key]}"
    return specs


def check_attacks(attacks, estimator):
    """Validate attack specs for ``estimator`` without running them (before training it).

    Raises the ``ValueError``/``TypeError`` that :func:`evaluate` would raise for
    an unknown attack, an unknown or bad parameter, or a parameter that
    ``evaluate`` sets itself (``epsilon``). ``estimator`` may be unfitted.
    """
    _resolve_attacks(attacks, estimator, get_defense_tags(estimator))


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


def _unit_seed(seed, unit, batch) -> int:
    return int(np.random.SeedSequence([seed, unit, batch]).generate_state(1)[0])


def _predict_rows(estimator, x, y, detector, draws=1):
    """Correctness (and detector flags) of ``x`` of shape (rows, b, ...) against ``y``.

    A stochastic defense is judged as deployed: it predicts ``draws`` times,
    and an example counts as correct only when every draw is (the worst case
    over repeated inference; Croce et al., ICML 2022).
    """
    rows, b = x.shape[:2]
    flat = x.reshape((rows * b,) + x.shape[2:])
    correct = np.ones(rows * b, dtype=bool)
    for _ in range(draws):
        correct &= np.asarray(estimator.predict(flat)) == np.tile(y, rows)
    correct = correct.reshape(rows, b)
    flagged = None
    if detector:
        flagged = np.asarray(estimator.detect(flat), dtype=bool).reshape(rows, b)
    return correct, flagged


def _check_validity(spec, x, adv, epsilons):
    from ..attacks.base import check_adversarial  # the platform's own check (audit A2)

    for k, eps in enumerate(epsilons):
        try:
            check_adversarial(x, adv[k], eps, spec.norm)
        except RuntimeError as exc:
            raise RuntimeError(f"attack {spec.key!r} at epsilon={eps}: {exc}") from None


def _run_clean(estimator, xb, yb, detector, seed, draws=1):
    start = time.perf_counter()
    with torch_seed(seed):
        correct, flagged = _predict_rows(estimator, xb[None], yb, detector, draws)
    return {
        "correct": [encode_bits(correct[0])],
        "flagged": None if flagged is None else [encode_bits(flagged[0])],
        "seconds": time.perf_counter() - start,
    }


def _run_attack(spec, estimator, xb, yb, epsilons, detector, seed, draws=1):
    start = time.perf_counter()
    attack = copy.copy(spec.attack)
    if hasattr(attack, "get_params") and "random_state" in attack.get_params(deep=False):
        attack.set_params(random_state=seed)
    with torch_seed(seed):
        adv = np.asarray(attack.generate(xb, yb, epsilons=list(epsilons)), dtype=np.float32)
        expected = (len(epsilons),) + xb.shape
        if adv.shape != expected:
            adv = adv.reshape(expected)
        _check_validity(spec, xb, adv, epsilons)
        correct, flagged = _predict_rows(estimator, adv, yb, detector, draws)
    return {
        "correct": [encode_bits(row) for row in correct],
        "flagged": None if flagged is None else [encode_bits(row) for row in flagged],
        "seconds": time.perf_counter() - start,
    }


def _memory_budget(nbytes):
    """The block's batches sized to ``nbytes`` (None: the default, half the free memory)."""
    return memory.budget(nbytes) if nbytes is not None else contextlib.nullcontext()


def _run_unit(specs, estimator, xb, yb, unit, epsilons, detector, seed, draws=1,
              memory_budget=None):
    """One unit of work: the clean pass (``unit`` 0) or attack ``unit`` on one batch."""
    # set here, in the process that runs the unit: a joblib or Dask worker has its own memory
    with _memory_budget(memory_budget):
        if unit == 0:
            return _run_clean(estimator, xb, yb, detector, seed, draws)
        return _run_attack(specs[unit - 1], estimator, xb, yb, epsilons, detector, seed, draws)


def _parallel_units(todo, n_jobs, specs, estimator, X, y, starts, batch_size, epsilons,
                    detector, seed, draws=1, memory_budget=None):
    """Records of the units ``todo`` computed by joblib workers, yielded in the order of ``todo``.

    Each unit has its own seed, so the records equal those of a sequential run;
    under ``joblib.parallel_backend("dask")`` the workers are a Dask cluster's.
    """
    from joblib import Parallel, delayed

    def task(batch, unit):
        lo = starts[batch]
        xb, yb = X[lo:lo + batch_size], y[lo:lo + batch_size]
        return delayed(_run_unit)(specs, estimator, xb, yb, unit, epsilons, detector,
                                  _unit_seed(seed, unit, batch), draws, memory_budget)

    return iter(Parallel(n_jobs=n_jobs, return_as="generator")(task(b, u) for b, u in todo))


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
    check_is_fitted(estimator)
    X, y = _check_data(estimator, X, y)
    if epsilons is None:
        raise ValueError("epsilons must be given: the radii to evaluate, e.g. [0, 0.1, 0.2]")
    epsilons = _check_epsilons(epsilons)
    batch_size = check_int(batch_size, "batch_size", low=1)
    memory_budget = memory.check_memory_budget(memory_budget)
    inference_draws = check_int(inference_draws, "inference_draws", low=1)
    confidence = check_float(confidence, "confidence", low=0, high=1, low_open=True,
                             high_open=True)
    verbose = check_int(verbose, "verbose", low=0)
    if n_jobs is not None and check_int(n_jobs, "n_jobs") == 0:
        raise ValueError("n_jobs must be a positive int, -1 (all cores) or None, got 0")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder of the log to continue")
    check_random_state(random_state)
    seed = seed_from(random_state) if not isinstance(random_state, (int, np.integer)) \
        else int(random_state)
    tags = get_defense_tags(estimator)
    chosen = attacks is None
    if chosen:
        attacks = adaptive_attacks(estimator, norm=norm, tags=tags)
    specs = _resolve_attacks(attacks, estimator, tags)
    draws = inference_draws if tags.stochastic else 1
    notes = []
    if n is not None:
        X, y = _subset(X, y, check_int(n, "n", low=1), seed % (2**32), notes)
    detector = bool(tags.has_detector) and callable(getattr(estimator, "detect", None))
    attack_eps = [e for e in epsilons if e > 0]
    n_examples = len(X)

    config = {
        "estimator": {"class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                      "fingerprint": estimator_fingerprint(estimator)},
        "data": {"n": n_examples, "X": array_fingerprint(X), "y": array_fingerprint(y)},
        "attacks": [{"key": s.key, "name": s.name, "params": s.params} for s in specs],
        "epsilons": epsilons,
        "batch_size": batch_size,
        "random_state": seed,
        "detector": detector,
        "inference_draws": draws,
    }
    if memory_budget is not None:  # random attacks draw per batch: part of the configuration
        config["memory_budget"] = memory_budget
    journal = EvaluationJournal(out_dir, config, resume) if out_dir is not None else None

    starts = list(range(0, n_examples, batch_size))
    clean_correct = np.zeros(n_examples, dtype=bool)
    clean_flagged = np.zeros(n_examples, dtype=bool)
    adv_correct = np.zeros((len(specs), len(attack_eps), n_examples), dtype=bool)
    adv_flagged = np.zeros_like(adv_correct)
    seconds = np.zeros(len(specs) + 1)
    resumed = 0
    parallel = n_jobs is not None and n_jobs != 1
    todo = [(batch, unit) for batch in range(len(starts)) for unit in range(len(specs) + 1)
            if journal is None or journal.get("clean" if unit == 0 else specs[unit - 1].key,
                                              batch) is None] if parallel else []
    pending = _parallel_units(todo, n_jobs, specs, estimator, X, y, starts, batch_size,
                              attack_eps, detector, seed, draws, memory_budget) if todo else None
    # one bar per evaluation, on a terminal only (a log file or a pipe gets the log lines)
    label = (metadata or {}).get("defense") or type(estimator).__name__
    log.info("evaluate %s: %d examples, %s at epsilon %s", label, n_examples,
             ", ".join(s.key for s in specs), ", ".join(f"{e:g}" for e in epsilons))
    progress = tqdm(total=len(starts) * (len(specs) + 1), desc=f"evaluate {label}",
                    unit="unit", disable=not verbose or not sys.stderr.isatty(), leave=False,
                    dynamic_ncols=True)
    try:
        for batch, lo in enumerate(starts):
            hi = min(lo + batch_size, n_examples)
            xb, yb = X[lo:hi], y[lo:hi]
            batch_resumed = True
            for unit in range(len(specs) + 1):
                key = "clean" if unit == 0 else specs[unit - 1].key
                record = journal.get(key, batch) if journal is not None else None
                if record is None:
                    batch_resumed = False
                    progress.set_postfix_str(f"{key}, batch {batch + 1}/{len(starts)}")
                    unit_seed = _unit_seed(seed, unit, batch)
                    if pending is not None:
                        record = next(pending)
                    else:
                        record = _run_unit(specs, estimator, xb, yb, unit, attack_eps,
                                           detector, unit_seed, draws, memory_budget)
                    record = {"unit": key, "batch": batch, "start": lo, "stop": hi,
                              "seed": unit_seed, **record}
                    if journal is not None:
                        journal.append(record)
                rows = np.array([decode_bits(r) for r in record["correct"]], dtype=bool)
                flags = (np.array([decode_bits(r) for r in record["flagged"]], dtype=bool)
                         if record.get("flagged") is not None else None)
                if unit == 0:
                    clean_correct[lo:hi] = rows[0]
                    if flags is not None:
                        clean_flagged[lo:hi] = flags[0]
                else:
                    adv_correct[unit - 1, :, lo:hi] = rows.reshape(len(attack_eps), hi - lo)
                    if flags is not None:
                        adv_flagged[unit - 1, :, lo:hi] = flags.reshape(len(attack_eps), hi - lo)
                seconds[unit] += record["seconds"]
                progress.update(1)
            resumed += int(batch_resumed and journal is not None)
    finally:
        progress.close()

    log.info("evaluate %s: done in %.1f s", label, time.perf_counter() - wall_start)
    # Radius 0 is the clean input for every attack.
    positive = np.array([e > 0 for e in epsilons])
    full_correct = np.repeat(clean_correct[None, None, :], len(epsilons), axis=1)
    full_correct = np.repeat(full_correct, len(specs), axis=0)
    full_correct[:, positive] = adv_correct
    full_flagged = np.repeat(clean_flagged[None, None, :], len(epsilons), axis=1)
    full_flagged = np.repeat(full_flagged, len(specs), axis=0)
    full_flagged[:, positive] = adv_flagged

    robust = robust_correct(clean_correct, full_correct)
    groups = [s.group for s in specs]
    worst = worst_case_correct(robust, groups, epsilons)

    clean = _curve(clean_correct[None], confidence)
    clean = {k: v[0] for k, v in clean.items()}
    clean["detection_rate"] = float(clean_flagged.mean()) if detector else None
    attack_rows = []
    for i, spec in enumerate(specs):
        row = {"key": spec.key, "name": spec.name, "params": spec.params, "norm": spec.norm,
               "group": spec.group, "is_minimization": spec.is_minimization,
               **_curve(robust[i], confidence),
               "detection_rate": full_flagged[i].mean(axis=1).tolist() if detector else None,
               # the accuracy of a defense with a detector: correct, or caught by the detector
               "correct_or_flagged": ((robust[i] | full_flagged[i]).mean(axis=1).tolist()
                                      if detector else None),
               "seconds": float(seconds[i + 1])}
        attack_rows.append(row)
        rises = np.diff(row["accuracy"])
        if np.any(rises > MONOTONICITY_TOLERANCE):
            notes.append(
                f"{spec.key}: robust accuracy rises with epsilon (by up to "
                f"{100 * rises.max():.1f} points): the attack is not converging at some radii "
                "(weak optimisation or gradient masking)"
            )
    notes += _weaker_than_single_step(attack_rows, specs, epsilons)
    worst_rows = {
        group: {"attacks": [s.key for s in specs if s.group == group],
                **_curve(worst[group], confidence)}
        for group in worst
    }
    if n_examples < MIN_HEADLINE_EXAMPLES:
        notes.append(
            f"{n_examples} examples: fewer than {MIN_HEADLINE_EXAMPLES}, the size an audit asks "
            "for a headline number; read the intervals"
        )
    if tags.stochastic:
        notes.append(f"the estimator is stochastic: every accuracy is the worst case over "
                     f"{draws} predictions per input")
    if chosen:
        notes.append("attacks chosen from the estimator's tags and surfaces: "
                     + ", ".join(s.key for s in specs))
    warnings = missing_adaptive_attacks(specs, estimator, tags)
    certified, broken = _certified_curve(estimator, X, y, epsilons, tags, robust, groups)
    warnings += broken
    params = estimator.get_params(deep=False) if hasattr(estimator, "get_params") else {}
    return RobustnessReport(
        estimator={**config["estimator"], "params": json_safe(params)},
        tags=tags.to_dict(),
        epsilons=list(epsilons),
        n_examples=n_examples,
        confidence=confidence,
        clean=clean,
        attacks=attack_rows,
        worst_case=worst_rows,
        wall_seconds=time.perf_counter() - wall_start,
        compute_seconds=float(seconds.sum()),
        versions=library_versions(),
        seeds={"random_state": seed, "rule": _SEED_RULE},
        n_batches=len(starts),
        n_batches_resumed=resumed,
        notes=notes,
        metadata=json_safe(dict(metadata or {})),
        warnings=warnings,
        certified=certified,
    )
