"""The robustness report: what :func:`robustlearn.evaluate` returns, and how it is read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

REPORT_FORMAT = "robustlearn.robustness-report/1"


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _interval(low, high) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


@dataclass
class RobustnessReport:
    """Robust accuracy of one estimator under several attacks and radii.

    Accuracies are fractions in [0, 1]; every curve is indexed like
    ``epsilons`` (sorted, increasing), and its intervals are Wilson score
    intervals at ``confidence`` (:func:`robustlearn.evaluation.wilson_interval`).

    Attributes
    ----------
    estimator : dict
        ``class`` (import path), ``params`` (``get_params(deep=False)``, made
        JSON-safe) and ``fingerprint`` (hash of the learned weights).
    tags : dict
        The estimator's capability tags (:class:`robustlearn.DefenseTags`).
    epsilons : list of float
        Radii evaluated; radius 0 is the clean input.
    n_examples : int
        Examples every number is measured on.
    confidence : float
        Coverage of the intervals (0.95).
    clean : dict
        ``accuracy``, ``n_correct``, ``ci_low``, ``ci_high`` on the clean
        inputs, and ``detection_rate`` (fraction flagged by the detector, None
        without one).
    attacks : list of dict
        One per attack: ``key`` (unique label), ``name``, ``params``, ``norm``,
        ``group``, ``is_minimization``, the curves ``accuracy``, ``n_correct``,
        ``ci_low``, ``ci_high``, ``detection_rate`` (fraction of adversarial
        inputs flagged, None without a detector), ``correct_or_flagged``
        (fraction robust or flagged, what a defense with a detector is judged
        by against a detector-aware attack; None without a detector; absent
        from older reports) and ``seconds`` of attack time. An example counts
        as robust to an attack at a radius when it is classified correctly both
        clean and after that attack at that radius.
        These curves are raw: a curve that rises with epsilon is a warning sign
        (weak optimisation or gradient masking), not smoothed away.
    worst_case : dict of str to dict
        The headline, one entry per group of attacks sharing a norm
        (``"linf"``, ``"l2"``, or ``"corruption"`` for attacks without a
        norm): ``attacks`` (the keys in the group), ``accuracy``,
        ``n_correct``, ``ci_low``, ``ci_high``. Per example, the minimum over
        the group's attacks and over every radius up to epsilon, then the mean
        over examples (:func:`robustlearn.evaluation.worst_case_correct`).
    wall_seconds : float
        Time of the call that produced the report (a resumed run counts only
        its own share).
    compute_seconds : float
        Attack and prediction time summed over every logged unit, resumed ones included.
    versions : dict
        Python and library versions.
    seeds : dict
        ``random_state`` of the evaluation and the rule deriving each unit's seed.
    n_batches, n_batches_resumed : int
        Batches of examples, and how many of them were read back from the log.
    notes : list of str
        Caveats the evaluation found (sample size, non-monotone curves).
    warnings : list of str
        Adaptive attacks the defense's tags call for that did not run, and
        broken certificates: shown as WARN beside the headline.
    certified : dict or None
        For a defense tagged ``certified``: its norm and certified accuracy
        per epsilon (a lower bound, beside the attacks' upper bound), and how
        many certified examples an attack broke (must be 0).
    metadata : dict
        Free-form context, e.g. the dataset name set by the CLI.
    """

    estimator: dict
    tags: dict
    epsilons: list
    n_examples: int
    confidence: float
    clean: dict
    attacks: list
    worst_case: dict
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0
    versions: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    n_batches: int = 0
    n_batches_resumed: int = 0
    notes: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    certified: dict | None = None

    # ------------------------------------------------------------ accessors
    @property
    def headline(self) -> dict:
        """Worst-case accuracy curve per norm group: ``{group: [accuracy per epsilon]}``."""
        return {group: list(curve["accuracy"]) for group, curve in self.worst_case.items()}

    @property
    def estimator_name(self) -> str:
        """Short class name of the evaluated estimator."""
        return self.estimator.get("class", "estimator").rsplit(".", 1)[-1]

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """The report as plain JSON-serialisable data (with a ``format`` field)."""
        return {"format": REPORT_FORMAT, **asdict(self)}

    def to_json(self, path=None, *, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given.

        Read it back with :meth:`from_json`.
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: dict) -> RobustnessReport:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        found = data.pop("format", None)
        if found != REPORT_FORMAT:
            raise ValueError(f"not a robustness report: format {found!r}, expected {REPORT_FORMAT}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, source) -> RobustnessReport:
        """Read a report from JSON text or from the path of a file holding it."""
        if isinstance(source, Path) or not str(source).lstrip().startswith("{"):
            source = Path(source).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(source))

    def to_frame(self):
        """The curves as a long ``pandas.DataFrame``, one row per curve and epsilon.

        Columns: ``curve`` (``"attack"`` or ``"worst case"``), ``key`` (attack
        key or group), ``group``, ``epsilon``, ``accuracy``, ``n_correct``,
        ``n``, ``ci_low``, ``ci_high``, ``detection_rate``.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "RobustnessReport.to_frame needs pandas: pip install pandas "
                "(or pip install 'robustlearn[all]')"
            ) from exc
        rows = []

        def add(curve, key, group, data):
            detection = data.get("detection_rate") or [None] * len(self.epsilons)
            for j, eps in enumerate(self.epsilons):
                rows.append(dict(
                    curve=curve, key=key, group=group, epsilon=eps,
                    accuracy=data["accuracy"][j], n_correct=data["n_correct"][j],
                    n=self.n_examples, ci_low=data["ci_low"][j], ci_high=data["ci_high"][j],
                    detection_rate=detection[j],
                ))

        for attack in self.attacks:
            add("attack", attack["key"], attack["group"], attack)
        for group, data in self.worst_case.items():
            add("worst case", group, group, data)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------- reading
    def to_markdown(self) -> str:
        """A human-readable summary: clean accuracy, one table per norm group, provenance."""
        pct = int(round(100 * self.confidence))
        clean = self.clean
        lines = [
            f"## Robustness of {self.estimator_name}",
            "",
            f"{self.n_examples} examples"
            + (f" of {self.metadata['dataset']}" if self.metadata.get("dataset") else "")
            + f". Clean accuracy {_percent(clean['accuracy'])} % "
            f"(Wilson {pct} % interval {_interval(clean['ci_low'], clean['ci_high'])}).",
        ]
        if clean.get("detection_rate") is not None:
            lines.append(
                f"The detector flags {_percent(clean['detection_rate'])} % of clean inputs."
            )
        lines += [f"**WARN**: {warning}." for warning in self.warnings]
        lines.append(
            "Accuracies in %. *Worst case*: per example, the minimum over the group's attacks "
            "and over every radius up to epsilon, averaged over examples."
        )
        by_key = {a["key"]: a for a in self.attacks}
        for group, worst in self.worst_case.items():
            members = [by_key[k] for k in worst["attacks"]]
            has_detector = any(a.get("detection_rate") is not None for a in members)
            header = ["epsilon"] + [m["key"] for m in members] + [
                "worst case", f"{pct} % interval"
            ]
            certified = (self.certified if self.certified
                         and self.certified.get("norm") == group else None)
            if certified:
                header.insert(len(members) + 3, "certified")
            if has_detector:
                header += [f"flagged: {m['key']}" for m in members]
            lines += ["", f"### {group} attacks", "", "| " + " | ".join(header) + " |",
                      "|" + "---|" * len(header)]
            for j, eps in enumerate(self.epsilons):
                cells = [f"{eps:g}"] + [_percent(m["accuracy"][j]) for m in members]
                cells += [f"**{_percent(worst['accuracy'][j])}**",
                          _interval(worst["ci_low"][j], worst["ci_high"][j])]
                if certified:
                    cells.append(_percent(certified["accuracy"][j]))
                if has_detector:
                    cells += [_percent((m.get("detection_rate") or [None] * (j + 1))[j])
                              for m in members]
                lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "### Attacks", ""]
        for attack in self.attacks:
            params = ", ".join(f"{k}={v!r}" for k, v in attack["params"].items())
            kind = "minimization" if attack.get("is_minimization") else "fixed-epsilon"
            lines.append(
                f"- `{attack['key']}`: {attack['name']}({params}), {kind}, norm "
                f"{attack['norm'] or 'none'}, {attack['seconds']:.1f} s"
            )
        if self.notes:
            lines += ["", "### Notes", ""] + [f"- {note}" for note in self.notes]
        tags = ", ".join(f"{k}={v}" for k, v in self.tags.items())
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        lines += [
            "", "### Provenance", "",
            f"- estimator: `{self.estimator.get('class')}`",
            f"- tags: {tags}",
            f"- seeds: random_state={self.seeds.get('random_state')} "
            f"({self.seeds.get('rule', '')})",
            f"- time: {self.wall_seconds:.1f} s wall, {self.compute_seconds:.1f} s compute, "
            f"{self.n_batches} batches ({self.n_batches_resumed} resumed from the log)",
            f"- versions: {versions}",
        ]
        return "\n".join(lines) + "\n"

    def plot(self, path=None, ax=None):
        """Robust accuracy against epsilon; see :func:`robustlearn.evaluation.plot_report`."""
        from .plotting import plot_report

        return plot_report(self, path=path, ax=ax)
