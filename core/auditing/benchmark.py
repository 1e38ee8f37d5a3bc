"""``robustlearn benchmark``: every registered defense, trained and audited under one protocol.

Each defense the registry knows (built-in and third-party plugins alike) is
trained on the dataset's training split, audited on its test split with
:func:`robustlearn.audit`, and ranked by its per-example worst-case robust
accuracy; the leaderboard is written as markdown and as an HTML page with every
defense's plot, each row linking to its audit.
"""

from __future__ import annotations

import html
import json
import logging
import time
import traceback
from pathlib import Path

from .. import registry
from .runner import audit

logger = logging.getLogger("robustlearn.audit")

#: Default radius of the threat model per dataset (linf on [0, 1] images).
DEFAULT_EPSILON = {"digits": 0.1, "mnist": 0.3, "fashion-mnist": 0.1, "cifar10": 8 / 255}


def training_params(name, train, overrides=None) -> dict:
    """Parameters a defense is trained with: its defaults, or its fast ``_test_params``.

    ``train="quick"`` uses the class attribute ``_test_params`` (the fast
    configuration the estimator checks use), ``"defaults"`` the documented
    defaults; ``overrides`` (``--set``) win either way.
    """
    params = {}
    if train == "quick":
        factory = registry.get_registry().get("defense", name).factory
        params.update(getattr(factory, "_test_params", {}) or {})
    elif train != "defaults":
        raise ValueError(f"train must be 'quick' or 'defaults', got {train!r}")
    params.update(overrides or {})
    return params


def benchmark(dataset, *, defenses=None, budget="quick", epsilon=None, norm="linf",
              train=None, params=None, out_dir="robustlearn-benchmark", data_dir=None,
              train_n=None, n=None, random_state=0, verbose=0, checks=None, resume=True):
    """Train and audit every registered defense; write the leaderboard.

    Parameters
    ----------
    dataset : str
        A registered dataset.
    defenses : list of str, optional
        Default every registered defense.
    budget : {"quick", "full"}
    epsilon : float, optional
        Default :data:`DEFAULT_EPSILON` of the dataset.
    train : {"quick", "defaults"}, optional
        Default ``"quick"`` under the quick budget, else ``"defaults"``.
    params : dict of str to dict, optional
        Per-defense parameter overrides.
    out_dir : str or Path
        Receives ``leaderboard.md``, ``index.html``, ``leaderboard.json`` and one
        folder per defense with its audit.

    Returns
    -------
    list of dict
        One row per defense, best robust accuracy first.
    """
    from ..datasets import load

    names = list(defenses) if defenses else registry.list_defenses()
    epsilon = DEFAULT_EPSILON.get(dataset, 0.1) if epsilon is None else float(epsilon)
    train = train or ("quick" if budget == "quick" else "defaults")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load(dataset, "train", n=train_n, data_dir=data_dir, random_state=random_state)
    X_test, y_test = load(dataset, "test", data_dir=data_dir)
    rows = []
    for name in names:
        row = {"defense": name, "link": f"{name}/audit.md"}
        try:
            p = training_params(name, train, (params or {}).get(name))
            row["params"] = {k: repr(v) for k, v in p.items()}
            estimator = registry.make_defense(name, random_state=random_state, **p)
            # wall-clock and CPU seconds: on a shared machine the wall clock also counts the
            # time spent waiting for a core; with one thread the CPU time is what the run
            # takes on an idle one (a CI runner, say)
            start, cpu = time.perf_counter(), time.process_time()
            estimator.fit(X, y)
            row["fit_seconds"] = round(time.perf_counter() - start, 1)
            row["fit_cpu_seconds"] = round(time.process_time() - cpu, 1)
            start, cpu = time.perf_counter(), time.process_time()
            report = audit(estimator, X_test, y_test, epsilon, norm=norm, budget=budget,
                           n=n, out_dir=out / name, resume=resume,
                           random_state=random_state, verbose=verbose, checks=checks)
            row["audit_seconds"] = round(time.perf_counter() - start, 1)
            row["audit_cpu_seconds"] = round(time.process_time() - cpu, 1)
            row.update(clean=report.headline["clean_accuracy"],
                       robust=report.headline["robust_accuracy"],
                       interval=report.headline["interval"], n=report.headline["n"],
                       status=report.status, counts=report.counts(),
                       flagged=[f"{c['id']} {c['status']}" for c in report.checks
                                if c["status"] in ("FAIL", "WARN")])
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the board
            logger.exception("benchmark of %s failed", name)
            row.update(status="ERROR", error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc())
        rows.append(row)
    rows.sort(key=lambda r: -r.get("robust", -1.0))
    meta = {"dataset": dataset, "epsilon": epsilon, "norm": norm, "budget": budget,
            "train": train, "seed": random_state}
    (out / "leaderboard.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (out / "leaderboard.md").write_text(leaderboard_markdown(rows, meta))
    (out / "index.html").write_text(leaderboard_html(rows, meta))
    return rows


def _fmt(row, key):
    return f"{row[key]:.1%}" if key in row else "-"


def leaderboard_markdown(rows, meta) -> str:
    lines = [
        f"# Audited leaderboard: {meta['dataset']}, {meta['norm']} epsilon = {meta['epsilon']:g}",
        "",
        f"Budget `{meta['budget']}`, defenses trained with `{meta['train']}` parameters, seed "
        f"{meta['seed']}. Robust accuracy is the per-example worst case over every attack the "
        "audit ran; the interval is a 95% Wilson interval.",
        "",
        "| rank | defense | clean | robust (worst case) | 95% interval | n | audit | flagged | "
        "fit s | audit s | fit CPU s | audit CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        interval = (f"[{r['interval'][0]:.1%}, {r['interval'][1]:.1%}]" if "interval" in r
                    else r.get("error", "-").replace("|", "/")[:80])
        lines.append(
            f"| {i} | {r['defense']} | {_fmt(r, 'clean')} | {_fmt(r, 'robust')} | {interval} | "
            f"{r.get('n', '-')} | [{r['status']}]({r['link']}) | "
            f"{', '.join(r.get('flagged', [])) or '-'} | {r.get('fit_seconds', '-')} | "
            f"{r.get('audit_seconds', '-')} | {r.get('fit_cpu_seconds', '-')} | "
            f"{r.get('audit_cpu_seconds', '-')} |")
    return "\n".join(lines) + "\n"


def leaderboard_html(rows, meta) -> str:
    esc = html.escape
    body = [f"<h1>Audited leaderboard: {esc(meta['dataset'])}, {esc(meta['norm'])} "
            f"epsilon = {meta['epsilon']:g}</h1>",
            f"<p>Budget <code>{esc(meta['budget'])}</code>; robust accuracy is the "
            "per-example worst case over every attack the audit ran.</p>",
            "<table><tr><th>rank</th><th>defense</th><th>clean</th><th>robust</th>"
            "<th>status</th><th>flagged</th></tr>"]
    for i, r in enumerate(rows, 1):
        body.append(
            f"<tr><td>{i}</td><td>{esc(r['defense'])}</td><td>{_fmt(r, 'clean')}</td>"
            f"<td>{_fmt(r, 'robust')}</td><td><a href=\"{esc(r['link'])}\">{esc(r['status'])}"
            f"</a></td><td>{esc(', '.join(r.get('flagged', [])) or r.get('error', '-'))}</td>"
            "</tr>")
    body.append("</table>")
    for r in rows:
        if "robust" in r:
            body.append(f"<h2 id=\"{esc(r['defense'])}\">{esc(r['defense'])}</h2>"
                        f"<p><a href=\"{esc(r['link'])}\">audit</a></p>"
                        f"<img src=\"{esc(r['defense'])}/audit.png\" width=\"560\">")
    style = ("body{font-family:sans-serif;max-width:960px;margin:auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:4px 8px}")
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>robustlearn "
            f"leaderboard</title><style>{style}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
