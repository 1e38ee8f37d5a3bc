"""What every audit check shares: its result, the budget, and the context of attack runs.

A check is a function ``check(ctx) -> CheckResult``. It reads the estimator, the
data and the threat model from the :class:`AuditContext`, runs attacks through
:meth:`AuditContext.run_attack` (which re-checks every returned example and
records per-example correctness, so that the headline is the per-example worst
case over *every* attack any check ran), and returns PASS, WARN, FAIL or SKIP
with its evidence. Statuses follow ``shared/evaluation.md`` (Carlini et al.,
"On Evaluating Adversarial Robustness", arXiv 1902.06705, 2019, and the
sources cited per check).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..attacks import make_attack
from ..surfaces import Surface, surfaces_by_kind, surfaces_of
from ..tags import get_defense_tags

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"

#: Worst first: the order in which statuses combine.
SEVERITY = {FAIL: 3, WARN: 2, PASS: 1, SKIP: 0}

#: Relative tolerance of the independent ball check (check A2), as attacks use.
BALL_RTOL = 1e-6

#: Parameters of each budget. ``quick`` is a smoke test that runs every applicable check,
#: reduced (CI on digits in under 2 minutes per baseline); ``full`` is the protocol of
#: shared/evaluation.md.
BUDGETS = {
    "quick": dict(
        n=100, steps=50, ladder_steps=(10, 50), doubling=(50, 100), restarts=(1, 3),
        stepsizes=(0.25, 0.1), square_queries=300, noise_n=50, noise_samples=100,
        fab_steps=30, eps_factors=(0.25, 0.5, 1.0, 2.0), binarization_samples=6,
        inner_points=49, grad_points=20, grad_directions=16, eot=(1, 4, 8), repeats=5,
        trace_n=30, autoattack=False, min_examples=1000, cross_norm_targets=3,
    ),
    "full": dict(
        n=1000, steps=100, ladder_steps=(10, 100), doubling=(100, 200, 400),
        restarts=(1, 5, 10), stepsizes=(0.25, 0.1, 0.025), square_queries=5000, noise_n=200,
        noise_samples=10000, fab_steps=100, eps_factors=(0.25, 0.5, 1.0, 2.0),
        binarization_samples=512, inner_points=999, grad_points=100, grad_directions=32,
        eot=(1, 20, 50, 200), repeats=10, trace_n=200, autoattack=True, min_examples=1000,
        cross_norm_targets=9,
    ),
}


@dataclass
class CheckResult:
    """Outcome of one audit check.

    Attributes
    ----------
    id : str
        The check's identifier in shared/evaluation.md (``"B5"``).
    title : str
    status : {"PASS", "WARN", "FAIL", "SKIP"}
        SKIP: the check does not apply to this estimator (``message`` says why).
    message : str
        One line: what was found.
    evidence : dict
        The numbers behind the status (JSON-serialisable).
    reduced : str
        Empty under the full protocol, otherwise how the quick budget reduced the check.
    seconds : float
    """

    id: str
    title: str
    status: str
    message: str
    evidence: dict = field(default_factory=dict)
    reduced: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def tolerance(n: int) -> float:
    """Accuracy change treated as noise: 0.5 percentage points, or 1.5 examples of ``n``.

    The 0.5pp of shared/evaluation.md is below one example when ``n < 200``;
    on the quick budget a change of one example is not evidence of anything.
    """
    return max(0.005, 1.5 / max(int(n), 1))


class AuditContext:
    """Estimator, data, threat model, budget and every attack run so far.

    Parameters
    ----------
    estimator : fitted classifier
    X, y : ndarray
        The audited examples (images in [0, 1]) and their labels.
    epsilon : float
    norm : {"linf", "l2"}
    budget : dict
        One of :data:`BUDGETS` (possibly with overrides).
    random_state : int
    extra_attacks : list
        Attacks named by the caller, run by check B1 and traced by B5.
    """

    def __init__(self, estimator, X, y, epsilon, norm, budget, random_state=0,
                 extra_attacks=(), progress=None, budget_name="quick"):
        self.estimator = estimator
        self.X = X
        self.y = np.asarray(y)
        self.n = len(X)
        self.epsilon = float(epsilon)
        self.norm = norm
        self.budget = budget
        self.budget_name = budget_name
        #: adversarial examples of the main runs, in memory only (for F1 and D4)
        self.adv_cache = {}
        #: facts checks share within one run (e.g. whether the forward pass is random)
        self.memo = {}
        self.random_state = int(random_state)
        self.extra_attacks = list(extra_attacks)
        self.tags = get_defense_tags(estimator)
        self.progress = progress
        #: key -> {"eps": [...], "correct": [[bool]*n per eps], "group": norm, "kind": str}
        self.runs = {}
        #: A2 violations found by the independent validity check
        self.violations = []
        self.n_checked = 0
        self.clean_pred = self.predict(X)
        self.clean_correct = self.clean_pred == self.y

    # ------------------------------------------------------------------ helpers
    def seed(self, key) -> int:
        """A seed per attack run, derived from ``random_state`` and the run's key."""
        return (zlib.crc32(str(key).encode()) + 7919 * self.random_state) % (2**31 - 1)

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.estimator.predict(X))

    def surfaces(self, kind):
        return surfaces_by_kind(self.estimator, kind) if hasattr(
            self.estimator, "attack_surfaces") else {}

    @property
    def differentiable(self) -> bool:
        return hasattr(self.estimator, "attack_surfaces") and self.tags.gradient_attacks

    def eot_params(self, name) -> dict:
        """EOT for a defense tagged stochastic: the budget's second EOT setting.

        That is 20 samples under ``full``, as AutoAttack's "rand" version uses,
        and 4 under ``quick``; check D2 sweeps the others.
        """
        if not self.tags.stochastic or name in ("square", "fgsm"):
            return {}
        eot = self.budget["eot"]
        return {"eot_samples": int(eot[1] if len(eot) > 1 else eot[0])}

    def make(self, name, **params):
        return make_attack(name, estimator=params.pop("estimator", self.estimator), **params)

    def validate(self, key, X, adv, eps, norm):
        """Check A2: every returned example finite, in [0, 1] and in the ball, recomputed here."""
        x = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        a = np.asarray(adv, dtype=np.float64).reshape(len(adv), -1)
        self.n_checked += len(a)
        bad = ~np.isfinite(a).all(axis=1) | (a.min(axis=1) < 0) | (a.max(axis=1) > 1)
        if eps is not None and norm in ("linf", "l2"):
            d = a - x
            dist = np.abs(d).max(axis=1) if norm == "linf" else np.linalg.norm(d, axis=1)
            bad |= dist > eps * (1 + BALL_RTOL)
        if bad.any():
            self.violations.append({"attack": key, "epsilon": eps, "count": int(bad.sum())})

    def run_attack(self, key, attack, epsilons, X=None, y=None, idx=None, record=True,
                   kind="white-box"):
        """Run ``attack.generate`` at ``epsilons``, check validity, record correctness.

        Parameters
        ----------
        key : str
            Name of the run in the report.
        attack : BaseAttack
        epsilons : list of float
        idx : ndarray of int, optional
            Subset of the audited examples (default all).
        record : bool
            Count the run in the headline worst case (only runs against the
            audited estimator's own prediction may).

        Returns
        -------
        adv : ndarray (len(epsilons), m, ...)
        correct : ndarray of bool (len(epsilons), m)
        """
        idx = np.arange(self.n) if idx is None else np.asarray(idx)
        X = self.X[idx] if X is None else X
        y = self.y[idx] if y is None else y
        start = time.perf_counter()
        adv = attack.generate(X, y, epsilons=list(epsilons))
        norm = getattr(attack, "norm", None)
        correct = np.zeros((len(epsilons), len(X)), dtype=bool)
        for k, eps in enumerate(epsilons):
            self.validate(key, X, adv[k], eps, norm)
            correct[k] = self.predict(adv[k]) == np.asarray(y)
        if record:
            full = np.ones((len(epsilons), self.n), dtype=bool)
            full[:, idx] = correct
            self.runs[key] = {"eps": [None if e is None else float(e) for e in epsilons],
                              "correct": full.tolist(), "group": norm or "corruption",
                              "kind": kind, "n": int(len(idx)),
                              "seconds": round(time.perf_counter() - start, 2)}
        return adv, correct

    def record(self, key, eps, correct, norm, kind, n=None):
        """Record a run made outside :meth:`run_attack` (noise, repeated inference)."""
        correct = np.atleast_2d(np.asarray(correct, dtype=bool))
        self.runs[key] = {"eps": [float(e) for e in eps], "correct": correct.tolist(),
                          "group": norm, "kind": kind, "n": int(n or self.n), "seconds": 0.0}

    def robust_at(self, eps=None, keys=None, group=None) -> np.ndarray:
        """Per-example worst case at ``eps`` over recorded runs (all radii <= eps)."""
        eps = self.epsilon if eps is None else eps
        group = group or self.norm
        robust = self.clean_correct.copy()
        for key, run in self.runs.items():
            if keys is not None and key not in keys:
                continue
            if run["group"] != group:
                continue
            for e, row in zip(run["eps"], run["correct"]):
                if e is not None and e <= eps * (1 + 1e-9):
                    robust &= np.asarray(row, dtype=bool)
        return robust

    def white_box_keys(self):
        return [k for k, r in self.runs.items() if r["kind"] == "white-box"]


def margin_loss_and_grad(estimator, X, y, surface="default"):
    """Logit margin ``z_y - max_{j != y} z_j`` and its input gradient through a surface.

    The margin, unlike cross-entropy, has no softmax that saturates to an exactly
    zero gradient on confidently classified points, so a zero here means the
    surface itself passes no gradient.
    """
    from ..attacks.victim import Victim

    victim = Victim(estimator, surface)
    x = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(
        (len(X),) + (victim.input_shape or np.shape(X)[1:]))).to(victim.device)
    labels = torch.as_tensor(victim.encode(y)).to(victim.device)
    x.requires_grad_(True)
    with victim.frozen():
        logits = victim.logits(x)
        margin = _margin(logits, labels)
        try:
            (grad,) = torch.autograd.grad(margin.sum(), x, allow_unused=True)
        except RuntimeError:
            grad = None
    if grad is None:
        grad = torch.zeros_like(x)
    return margin.detach().cpu().numpy(), grad.detach().cpu().numpy().reshape(len(X), -1)


def _margin(logits, labels):
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.clone()
    other.scatter_(1, labels[:, None], -float("inf"))
    return true - other.max(dim=1).values


def margin_of(estimator, X, y, surface="default"):
    """Logit margin without gradient (see :func:`margin_loss_and_grad`)."""
    from ..attacks.victim import Victim

    victim = Victim(estimator, surface)
    x = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(
        (len(X),) + (victim.input_shape or np.shape(X)[1:]))).to(victim.device)
    labels = torch.as_tensor(victim.encode(y)).to(victim.device)
    with torch.no_grad():
        return _margin(victim.logits(x), labels).cpu().numpy()


def run_accuracy(ctx, key, eps=None) -> float:
    """Robust accuracy of one run at ``eps`` (default the audit's): clean and not fooled."""
    run = ctx.runs[key]
    eps = ctx.epsilon if eps is None else eps
    k = min(range(len(run["eps"])), key=lambda i: abs((run["eps"][i] or 0) - eps))
    return float((ctx.clean_correct & np.asarray(run["correct"][k], dtype=bool)).mean())


class RewrappedSurfaces:
    """A fitted estimator seen through attack surfaces that ``rewrap`` changes.

    Everything but ``attack_surfaces`` is the estimator's (prediction, tags,
    classes); ``fit`` is a no-op, so an attack can take it as its victim.
    Audit checks use it to fix a stochastic defense's randomness (D3) or to
    log every query an attack makes (B5).

    Parameters
    ----------
    estimator : fitted estimator
    rewrap : callable
        ``rewrap(fn) -> fn``: the new surface function from the old one;
        surfaces of kind ``"detector"`` are rewrapped only when
        ``detectors`` is True.
    suffix : str, default=""
        Added to every rewrapped surface's description.
    detectors : bool, default=True
    """

    def __init__(self, estimator, rewrap, suffix="", detectors=True):
        self._estimator = estimator
        self._rewrap = rewrap
        self._suffix = suffix
        self._detectors = detectors

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X=None, y=None):  # noqa: ARG002 - wraps a fitted estimator
        return self

    def attack_surfaces(self):
        out = {}
        for name, surface in surfaces_of(self._estimator).items():
            if surface.kind == "detector" and not self._detectors:
                out[name] = surface
            else:
                out[name] = Surface(self._rewrap(surface.fn), surface.kind,
                                    surface.description + self._suffix)
        return out
