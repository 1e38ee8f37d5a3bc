"""The audit's report: PASS/WARN/FAIL per check, the per-example worst case, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import SEVERITY

_ICON = {"PASS": "PASS", "WARN": "WARN", "FAIL": "**FAIL**", "SKIP": "skip"}


class AuditReport:
    """Outcome of :func:`robustlearn.audit`.

    Attributes
    ----------
    checks : list of dict
        One :class:`~robustlearn.auditing.base.CheckResult` dict per check, in run order.
    headline : dict
        ``robust_accuracy`` (per-example worst case over every attack run at
        radii up to ``epsilon``), its Wilson ``interval``, ``clean_accuracy``, ``n``.
    runs : dict
        Every recorded attack run: radii, per-example correctness, kind.
    manifest : dict
        Threat model (check A0), budget and provenance.
    """

    def __init__(self, checks, headline, runs, manifest):
        self.checks = checks
        self.headline = headline
        self.runs = runs
        self.manifest = manifest

    @property
    def status(self) -> str:
        """Worst status over the checks (SKIP counts as nothing)."""
        worst = max((c["status"] for c in self.checks), key=SEVERITY.get, default="PASS")
        return "PASS" if worst == "SKIP" else worst

    def counts(self) -> dict:
        out = {s: 0 for s in SEVERITY}
        for c in self.checks:
            out[c["status"]] += 1
        return out

    def check(self, check_id) -> dict:
        for c in self.checks:
            if c["id"] == check_id:
                return c
        raise KeyError(check_id)

    def per_attack(self) -> dict:
        """Robust accuracy of each run at the audit's epsilon (runs at that radius only)."""
        eps = self.headline["epsilon"]
        clean = np.asarray(self.headline["clean_correct"], dtype=bool)
        out = {}
        for key, run in self.runs.items():
            for e, row in zip(run["eps"], run["correct"]):
                if e is not None and abs(e - eps) <= 1e-9 * max(1, eps):
                    out[key] = float((clean & np.asarray(row, dtype=bool)).mean())
        return out

    def to_dict(self) -> dict:
        return {"status": self.status, "counts": self.counts(), "headline": self.headline,
                "checks": self.checks, "runs": self.runs, "manifest": self.manifest}

    def to_json(self, path=None, indent=2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, source):
        data = json.loads(Path(source).read_text() if Path(str(source)).exists() else source)
        return cls(data["checks"], data["headline"], data["runs"], data["manifest"])

    def to_markdown(self) -> str:
        h, m = self.headline, self.manifest
        low, high = h["interval"]
        lines = [
            f"# Audit of `{m['estimator']}`",
            "",
            f"Threat model: {m['norm']} ball of radius {m['epsilon']} on [0, 1] images; "
            f"{m['attacker_knowledge']}. Budget `{m['budget']}`, {h['n']} examples.",
            "",
            f"**Robust accuracy (per-example worst case over {len(self.runs)} attack runs): "
            f"{h['robust_accuracy']:.1%}** (95% Wilson [{low:.1%}, {high:.1%}]); clean "
            f"{h['clean_accuracy']:.1%}. Overall: **{self.status}** "
            f"({', '.join(f'{v} {k}' for k, v in self.counts().items() if v)}).",
            "",
            "| check | title | status | finding | reduced (quick budget) |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            finding = c["message"].replace("|", "/")
            lines.append(f"| {c['id']} | {c['title']} | {_ICON[c['status']]} | {finding} | "
                         f"{c['reduced']} |")
        lines += ["", f"## Robust accuracy per attack at epsilon = {h['epsilon']}", "",
                  "| attack run | kind | robust accuracy |", "|---|---|---|"]
        for key, acc in sorted(self.per_attack().items(), key=lambda kv: kv[1]):
            lines.append(f"| {key} | {self.runs[key]['kind']} | {acc:.1%} |")
        lines += ["", "Evidence of every check, per-example results and provenance: "
                  "`audit.json`. Plot: `audit.png`.", ""]
        return "\n".join(lines)

    def plot(self, path=None):
        """Robust accuracy against epsilon for every run, with the per-example worst case."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        clean = np.asarray(self.headline["clean_correct"], dtype=bool)
        norm = self.manifest["norm"]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        radii = sorted({e for r in self.runs.values() if r["group"] == norm
                        for e in r["eps"] if e is not None} | {0.0})
        single = 0
        for key, run in self.runs.items():
            if run["group"] != norm:
                continue
            pts = sorted((e, float((clean & np.asarray(row, bool)).mean()))
                         for e, row in zip(run["eps"], run["correct"]) if e is not None)
            if len(pts) > 1:  # a sweep: a curve from the clean accuracy
                ax.plot(*zip(*([(0.0, float(clean.mean()))] + pts)), marker=".", lw=1,
                        label=key)
            elif pts:  # one radius: a point
                ax.scatter(*zip(*pts), s=14, alpha=0.6, color="tab:grey",
                           label=None if single else "single-radius attack runs")
                single += 1
        worst = []
        for r in radii:
            robust = clean.copy()
            for run in self.runs.values():
                if run["group"] != norm:
                    continue
                for e, row in zip(run["eps"], run["correct"]):
                    if e is not None and e <= r + 1e-12:
                        robust &= np.asarray(row, bool)
            worst.append(robust.mean())
        ax.plot(radii, worst, color="black", lw=2.5, label="worst case (per example)")
        ax.axvline(self.headline["epsilon"], color="grey", ls=":", lw=1)
        ax.set_xlabel(f"epsilon ({norm})")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{self.manifest['estimator']}: {self.status}")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig

    def write(self, out_dir):
        """Write ``audit.md``, ``audit.json`` and ``audit.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.md").write_text(self.to_markdown())
        self.to_json(out / "audit.json")
        self.plot(out / "audit.png")
        return out
