"""Units of work of :func:`robustlearn.evaluate`: the clean pass or one attack on one batch.

Every unit has its own seed (:func:`unit_seed`), so units give the same
records run here one after another, by joblib workers, or resumed from a log.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from .. import memory
from ..seeding import torch_seed
from .journal import encode_bits


def unit_seed(seed, unit, batch) -> int:
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


def run_clean(estimator, xb, yb, detector, seed, draws=1):
    start = time.perf_counter()
    with torch_seed(seed):
        correct, flagged = _predict_rows(estimator, xb[None], yb, detector, draws)
    return {
        "correct": [encode_bits(correct[0])],
        "flagged": None if flagged is None else [encode_bits(flagged[0])],
        "seconds": time.perf_counter() - start,
    }


def run_attack(spec, estimator, xb, yb, epsilons, detector, seed, draws=1):
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


def run_unit(specs, estimator, xb, yb, unit, epsilons, detector, seed, draws=1,
             memory_budget=None):
    """One unit of work: the clean pass (``unit`` 0) or attack ``unit`` on one batch."""
    # set here, in the process that runs the unit: a joblib or Dask worker has its own memory
    with memory.budget_if_given(memory_budget):
        if unit == 0:
            return run_clean(estimator, xb, yb, detector, seed, draws)
        return run_attack(specs[unit - 1], estimator, xb, yb, epsilons, detector, seed, draws)


def parallel_units(todo, n_jobs, specs, estimator, X, y, starts, batch_size, epsilons,
                   detector, seed, draws=1, memory_budget=None):
    """Records of the units ``todo`` computed by joblib workers, yielded in the order of ``todo``.

    Each unit has its own seed, so the records equal those of a sequential run;
    under ``joblib.parallel_backend("dask")`` the workers are a Dask cluster's.
    """
    from joblib import Parallel, delayed

    def task(batch, unit):
        lo = starts[batch]
        xb, yb = X[lo:lo + batch_size], y[lo:lo + batch_size]
        return delayed(run_unit)(specs, estimator, xb, yb, unit, epsilons, detector,
                                 unit_seed(seed, unit, batch), draws, memory_budget)

    return iter(Parallel(n_jobs=n_jobs, return_as="generator")(task(b, u) for b, u in todo))
