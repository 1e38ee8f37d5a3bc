"""Robustness evaluation: worst-case reports over attacks and epsilons.

:func:`evaluate` runs attacks against a fitted estimator and returns a
:class:`RobustnessReport`; the report's headline is the per-example worst case
over attacks (:mod:`.worst_case`), with Wilson intervals (:mod:`.intervals`), and
an evaluation with an output folder can be resumed from its log (:mod:`.journal`).
"""

from .evaluate import evaluate
from .intervals import wilson_interval
from .ladder import adaptive_attacks, missing_adaptive_attacks
from .plotting import plot_comparison, plot_report
from .report import RobustnessReport
from .worst_case import robust_correct, worst_case_correct

__all__ = [
    "RobustnessReport",
    "adaptive_attacks",
    "evaluate",
    "missing_adaptive_attacks",
    "plot_comparison",
    "plot_report",
    "robust_correct",
    "wilson_interval",
    "worst_case_correct",
]
