"""Plots of robustness reports (matplotlib)."""

from __future__ import annotations

import textwrap

import numpy as np


def _figure(n_axes: int):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting a robustness report needs matplotlib (a dependency of robustlearn): "
            "pip install matplotlib"
        ) from exc
    # A bare Figure needs no pyplot backend, so plotting works headless and in threads.
    fig = Figure(figsize=(5.0 * n_axes, 4.0), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, n_axes, squeeze=False)[0]))


#: How each norm group is written on the x axis.
_NORM_LABELS = {"linf": "L\u221e", "l2": "L2", "l1": "L1", "l0": "L0"}


def _curve(ax, epsilons, data, band=True, **style):
    line = ax.plot(epsilons, data["accuracy"], **style)[0]
    if band:
        # light bands, drawn without edges, so that overlapping ones stay readable
        ax.fill_between(epsilons, data["ci_low"], data["ci_high"], color=line.get_color(),
                        alpha=0.12, linewidth=0)
    return line


def _short_label(row, taken) -> str:
    """A short legend label for an attack row: its name, the surface when not the default.

    The full parameters are in the report; a legend holding them covers the curves.
    """
    label = row["name"]
    surface = (row.get("params") or {}).get("surface")
    if surface and surface != "default":
        label += f" ({surface})"
    if label in taken:
        taken[label] += 1
        label += f" #{taken[label]}"
    else:
        taken[label] = 1
    return label


def _subject(report) -> str:
    """What was evaluated, for a title: the dataset and the defense (or the model's class)."""
    meta = report.metadata or {}
    name = meta.get("defense") or report.estimator_name
    return f"{meta['dataset']}: {name}" if meta.get("dataset") else name


def _decorate(ax, title, confidence, group):
    from matplotlib.ticker import PercentFormatter

    norm = _NORM_LABELS.get(group, group)
    ax.set_xlabel(f"\u03b5 ({norm} radius, images in [0, 1])")
    ax.set_ylabel("robust accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="best", framealpha=0.9,
              title=f"bands: Wilson {round(100 * confidence)} % intervals",
              title_fontsize="x-small")


def plot_report(report, path=None, ax=None):
    """Robust accuracy against epsilon: one line per attack plus the worst case.

    Each norm group of the report gets its own axes (their epsilons are not
    comparable), with the per-attack curves as thin dashed lines and the
    per-example worst case as a thick line in a Wilson band. Legend labels are
    short (attack name, and the surface when it is not the default); the full
    parameters are in the report. The title names the dataset and the defense
    from the report's metadata, the x axis the norm, the y axis is in percent.

    Parameters
    ----------
    report : RobustnessReport
    path : str or Path, optional
        Where to save the figure (format from the suffix, e.g. ``.png``).
    ax : matplotlib Axes or sequence of Axes, optional
        Axes to draw into, one per norm group; a single Axes takes every
        group. By default a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = list(report.worst_case)
    if ax is None:
        fig, axes = _figure(len(groups))
    else:
        axes = list(np.atleast_1d(ax))
        if len(axes) == 1:
            axes = axes * len(groups)
        elif len(axes) != len(groups):
            raise ValueError(f"ax must hold 1 or {len(groups)} axes (one per norm group)")
        fig = axes[0].figure
    by_key = {a["key"]: a for a in report.attacks}
    eps = report.epsilons
    for axis, group in zip(axes, groups):
        worst = report.worst_case[group]
        taken = {}
        for key in worst["attacks"]:
            row, label = by_key[key], _short_label(by_key[key], taken)
            if row["name"].startswith("detector-aware") and row.get("correct_or_flagged"):
                # an attack on classifier and detector together is scored by what a
                # detecting defense promises: correct, or flagged
                row = {"accuracy": row["correct_or_flagged"]}
                label = f"{label}: correct or flagged"
            # per-attack curves without bands: only the headline's interval is drawn
            _curve(axis, eps, row, band=False, linestyle="--", marker="o", markersize=3,
                   linewidth=1.2, label=label, zorder=3)
        # drawn beneath the attacks: it coincides with the strongest attack's curve
        _curve(axis, eps, worst, color="0.2", marker="s", markersize=5, linewidth=3,
               label="worst case per example", zorder=2)
        _decorate(axis, f"{_subject(report)}, n = {report.n_examples}", report.confidence,
                  group)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_comparison(reports, path=None, ax=None, group=None):
    """Worst-case robust accuracy of several estimators on one axes.

    Parameters
    ----------
    reports : dict of str to RobustnessReport
        Label of each estimator and its report (same epsilons not required).
    path : str or Path, optional
        Where to save the figure.
    ax : matplotlib Axes, optional
        Axes to draw into; by default a new figure is made.
    group : str, optional
        Norm group to compare (default: the first group of the first report).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not reports:
        raise ValueError("reports must not be empty")
    first = next(iter(reports.values()))
    group = group or next(iter(first.worst_case))
    if ax is None:
        fig, (ax,) = _figure(1)
    fig = ax.figure
    for label, report in reports.items():
        if group not in report.worst_case:
            raise ValueError(f"report {label!r} has no {group!r} worst case")
        _curve(ax, report.epsilons, report.worst_case[group], marker="o", linewidth=2,
               label=label)
    taken = {}
    by_key = {a["key"]: a for a in first.attacks}
    attacks = ", ".join(_short_label(by_key[k], taken) if k in by_key else k
                        for k in first.worst_case[group]["attacks"])
    dataset = first.metadata.get("dataset")
    # two lines, the attack list wrapped: a long one-line title is clipped by the figure
    title = (f"{dataset}: " if dataset else "") + f"worst case per example, n = {first.n_examples}"
    title += "\n" + textwrap.fill(f"over {attacks}", width=60)
    _decorate(ax, title, first.confidence, group)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
