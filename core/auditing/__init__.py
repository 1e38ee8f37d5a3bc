"""The evaluation canon as one call: :func:`audit` runs checks A-G of shared/evaluation.md.

One module per family of checks: :mod:`.threat_model` (A), :mod:`.strength`
(B), :mod:`.masking` (C), :mod:`.stochastic` (D), :mod:`.iterative` (E),
:mod:`.detection` (F), :mod:`.certified` (G); :mod:`.runner` orders and caches
them, :mod:`.report` writes the markdown, JSON and plot, and :mod:`.benchmark`
audits every registered defense into a leaderboard.
"""

from .base import BUDGETS, CheckResult
from .report import AuditReport
from .runner import ORDER, audit

__all__ = ["BUDGETS", "ORDER", "AuditReport", "CheckResult", "audit"]
