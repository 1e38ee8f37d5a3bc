"""The ``robustlearn`` command line.

Subcommands
-----------
``robustlearn plugins [--json]``
    List every registered defense, attack, purifier and dataset, and broken plugins.
``robustlearn fit --defense NAME --dataset NAME [--set key=value ...] --out model.safetensors``
    Train a defense and save it as a safe model file (``.joblib``/``.pkl``: pickle).
``robustlearn evaluate --defense NAME | --model FILE --dataset NAME [--attack NAME ...] --out DIR``
    Evaluate a defense under attacks (by default the adaptive ladder its tags call for);
    write report.json, report.md and robustness.png. ``--scheduler tcp://HOST:PORT`` runs the
    units of work on a Dask cluster.
``robustlearn baselines [--dataset digits] [--out robustlearn-baselines]``
    Train the baseline defenses, evaluate them under the adaptive ladder, print the table,
    write the plot.
``robustlearn doctor``
    Print versions, devices, threads and the installed plugins (broken ones with their error).
``robustlearn audit --defense NAME --dataset NAME [--set ...] [--budget quick|full] --out DIR``
    Audit one defense against checks A-G; write audit.md, audit.json and audit.png.
``robustlearn benchmark --dataset NAME [--budget quick|full] [--out DIR]``
    Train and audit every installed defense; write leaderboard.md and index.html.

Every argument, defense parameter and attack spec is checked before anything is
trained; an error is one line on stderr (``-vv`` shows the traceback) and exit
status 2. Progress goes to stderr: one line per step, and a progress bar when
stderr is a terminal; ``-q`` silences both, ``-v`` adds per-epoch tables.

Heavy modules (torch, scikit-learn, Foolbox) are imported inside the commands,
so that ``robustlearn --help`` answers at once.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import os
import re
import sys
import time
from pathlib import Path

from . import __version__
from .atomic_file import atomic_path


def __getattr__(name):
    # ``robustlearn.cli.registry``, imported on first use: pluggy and the entry-point
    # machinery are not needed for ``--help``
    if name == "registry":
        from . import registry

        return registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _registry():
    return sys.modules[__name__].registry

log = logging.getLogger("robustlearn.cli")

#: Capability tag of the defenses ``robustlearn baselines`` trains by default.
BASELINE_CAPABILITY = "baseline"


class UsageError(ValueError):
    """A bad command-line argument (reported in one line, before any work)."""


def parse_assignments(assignments, option="--set") -> dict:
    """Parse ``key=value`` strings into a dict, values read as Python literals when possible.

    ``--set hidden_layer_sizes=(64,64) --set optimizer=sgd`` gives
    ``{"hidden_layer_sizes": (64, 64), "optimizer": "sgd"}``.
    """
    params = {}
    for item in assignments or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        params[key.strip()] = value
    return params


def _first_paragraph(func) -> str:
    doc = (func.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ").replace("``", "")


def _description(func) -> str:
    """A docstring as ``--help`` text: no reStructuredText backticks."""
    import inspect

    return inspect.cleandoc(func.__doc__ or "").replace("``", "")


def _check_known_params(params: dict, known, what: str) -> None:
    """Reject parameter names ``what`` does not take, suggesting the closest one."""
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"{what} has no parameter {key!r}{hint} "
                             f"(parameters: {', '.join(sorted(known))})")


# ------------------------------------------------------------------ checks before any work
def _check_positive(value, option):
    if value is not None and (isinstance(value, bool) or value < 1):
        raise UsageError(f"{option} must be a positive integer, got {value}")


_BYTE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2,
               "gi": 1024**3}


def _parse_bytes(text, option):
    """``"512MiB"``, ``"2GiB"``, ``"1GB"`` or ``"1000000"`` -> bytes (a positive int)."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]i?)?b?", str(text).strip().lower())
    size = float(match.group(1)) * _BYTE_UNITS[match.group(2) or ""] if match else 0
    if size < 1:
        raise UsageError(f"{option} must be a positive size in bytes such as 2GiB, 512MiB or "
                         f"1000000, got {text!r}")
    return int(size)


def _check_writable(path: Path, option: str, *, is_dir: bool) -> None:
    """Fail now, not after training, when ``path`` cannot be created or written."""
    if path.exists():
        if is_dir and not path.is_dir():
            raise UsageError(f"{option} {path} is a file, not a folder")
        if not is_dir and path.is_dir():
            raise UsageError(f"{option} {path} is a folder, not a file")
    parent = path if is_dir else path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: {existing} is not writable")


def _make_estimator(name: str, params: dict):
    """Make defense ``name`` with ``params`` and check them, before any data is loaded."""
    default = _registry().make_defense(name)
    if hasattr(default, "get_params"):
        _check_known_params(params, default.get_params(deep=False), f"defense {name!r}")
    estimator = _registry().make_defense(name, **params)
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None:
        validate()
    return estimator


def _defense_params(args, name, params):
    params = dict(params)
    params.setdefault("random_state", args.seed)
    params.setdefault("verbose", _estimator_verbosity(args))
    if args.device is not None:
        params.setdefault("device", args.device)
    return params


#: Suffixes of model files written and read with pickle (joblib); any other is the safe format.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def _load_model(path):
    """A fitted model: pickle for ``.joblib``/``.pkl``, else a safe model file (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--model {path}: no such file")
    try:
        if path.suffix in PICKLE_SUFFIXES:
            import joblib

            model = joblib.load(path)
        else:
            from .model_file import load

            model = load(path)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the same user error
        raise UsageError(f"--model {path} is not a model saved by robustlearn fit "
                         f"({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(model, "predict", None)):
        raise UsageError(f"--model {path} holds a {type(model).__name__}, not a fitted model")
    return model


def _load_split(args, split, n):
    """A dataset split, subsampled (stratified) to ``n`` when it is larger."""
    from .datasets import load

    try:
        return load(args.dataset, split, n=n, data_dir=args.data_dir, random_state=args.seed)
    except ValueError as exc:
        if n is None or "exceeds" not in str(exc):
            raise
    X, y = load(args.dataset, split, data_dir=args.data_dir)
    log.info("%s has %d %s images; using all of them (asked for %d)", args.dataset, len(X),
             split, n)
    return X, y


# ----------------------------------------------------------------------------- output
def _atomic_dump(obj, out: Path) -> None:
    """Write a fitted model through a temporary file: pickle for ``.joblib``/``.pkl``,
    otherwise a safe model file (:func:`robustlearn.save`)."""
    with atomic_path(out) as tmp:
        if out.suffix in PICKLE_SUFFIXES:
            import joblib

            joblib.dump(obj, tmp)
        else:
            from .model_file import save

            save(obj, tmp)


def _atomic_write_files(contents: dict, out_dir: Path) -> None:
    """Write ``{name: bytes}`` into ``out_dir``, each through a temporary file and a rename.

    Every content is produced before this is called, so a failure leaves either
    the previous files or none, never a half-written one.
    """
    for name, data in contents.items():
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as handle:
            handle.write(data)


def _figure_bytes(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- plugins
def cmd_plugins(args) -> int:
    """List registered defenses, attacks, purifiers and datasets, and any broken plugin."""
    import json

    reg = _registry().get_registry()
    records = []
    for kind in _registry().KINDS:
        for entry in _registry().list_registrations(kind):
            records.append({
                "name": entry.name, "kind": kind, "distribution": entry.distribution,
                "version": entry.version, "status": "ok",
                "capabilities": list(entry.capabilities), "description": entry.description,
                "paper": entry.paper,
            })
    for broken in reg.broken:
        records.append({
            "name": broken.plugin, "kind": "plugin", "distribution": broken.distribution,
            "version": broken.version, "status": "broken", "capabilities": [],
            "description": broken.error, "paper": "",
        })
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    columns = ("name", "kind", "distribution", "version", "status", "capabilities")
    rows = [columns] + [
        tuple(",".join(r[c]) or "-" if c == "capabilities" else str(r[c]) for c in columns)
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    descriptions = ["description"] + [r["description"] for r in records]
    for row, description in zip(rows, descriptions):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print("  ".join(cells + [description]).rstrip())
    return 0


# -------------------------------------------------------------------------------- fit
def cmd_fit(args) -> int:
    """Train a registered defense on a dataset's training split and save it.

    --out ending in .joblib or .pkl is written with pickle; any other name
    (model.safetensors) as a safe model file that robustlearn.load and
    evaluate --model read without running code from the file.
    """
    _check_positive(args.train_n, "--train-n")
    out = Path(args.out)
    _check_writable(out, "--out", is_dir=False)
    estimator = _make_estimator(args.defense,
                                _defense_params(args, args.defense, parse_assignments(args.set)))
    X, y = _load_split(args, "train", args.train_n)
    X_test, y_test = _load_split(args, "test", None)
    log.info("training %s on %d %s images", args.defense, len(X), args.dataset)
    start = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    accuracy = estimator.score(X_test, y_test)
    _atomic_dump(estimator, out)
    print(f"{args.defense} on {args.dataset}: test accuracy {accuracy:.4f} "
          f"({len(X)} training samples, {seconds:.1f} s); saved to {out}")
    return 0


# --------------------------------------------------------------------------- evaluate
#: Without --attack, the CLI runs what ``robustlearn.evaluate`` runs without attacks: the
#: adaptive ladder the defense's tags and surfaces call for (one set of defaults for both).
DEFAULT_ATTACKS_HELP = ("the adaptive ladder chosen from the defense's tags: APGD-CE, APGD-T, "
                        "Square, plus BPDA/EOT/joint/transfer attacks where they apply")


def parse_epsilons(text) -> list:
    """Parse a comma-separated list of radii: ``"0,0.05,0.1"`` gives ``[0.0, 0.05, 0.1]``."""
    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--epsilons expects comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError("--epsilons must not be empty")
    for value in values:
        if not value >= 0 or value != value or value == float("inf"):
            raise UsageError(f"--epsilons must be finite and >= 0, got {value}")
    return sorted(set(values))


def parse_attack(text):
    """Parse ``NAME`` or ``NAME:key=value,key=value`` into a name or a ``(name, params)`` pair.

    ``linf-pgd:steps=100,rel_stepsize=0.0625`` gives
    ``("linf-pgd", {"steps": 100, "rel_stepsize": 0.0625})``; values are read as
    Python literals when possible. The name and the parameter names are checked
    against the registry (``ValueError`` with a suggestion).
    """
    name, sep, raw = str(text).partition(":")
    name = name.strip()
    _registry().get_registry().get("attack", name)
    if not sep:
        return name
    params = parse_assignments((part for part in raw.split(",") if part.strip()),
                               option=f"--attack {name}:")
    default = _registry().make("attack", name)
    if hasattr(default, "get_params"):
        _check_known_params(params, default.get_params(deep=False), f"attack {name!r}")
    return name, params


def _parse_attacks(texts, estimator=None):
    """Parse ``--attack`` specs (None without any: the adaptive ladder); check them as
    ``evaluate`` will when ``estimator`` is given."""
    if not texts:
        return None
    attacks = [parse_attack(text) for text in texts]
    if estimator is not None:
        from .evaluation.attack_specs import check_attacks

        check_attacks(attacks, estimator)
    return attacks


_EVALUATION_FILES = ("evaluation.jsonl", "report.json", "report.md", "robustness.png",
                     "model.joblib")


def cmd_evaluate(args) -> int:
    """Evaluate a defense under attacks and write report.json, report.md and robustness.png.

    The defense is trained on the dataset's training split (--defense with
    --set parameters; it is saved as DIR/model.joblib so that --resume
    continues with the same model) or loaded with --model. The evaluation runs
    on --test-n stratified test examples (the whole split when it is smaller);
    its log DIR/evaluation.jsonl lets --resume continue an interrupted run, and
    --overwrite starts over.
    """
    epsilons = parse_epsilons(args.epsilons)
    _check_positive(args.batch_size, "--batch-size")
    _check_positive(args.test_n, "--test-n")
    _check_positive(args.train_n, "--train-n")
    memory_budget = _parse_bytes(args.memory_budget, "--memory-budget")
    out = Path(args.out)
    _check_writable(out, "--out", is_dir=True)
    saved = out / "model.joblib"
    if args.model and args.defense:
        raise UsageError("give --defense (train) or --model (load), not both")
    if args.resume and args.overwrite:
        raise UsageError("give --resume (continue) or --overwrite (start over), not both")
    if (out / "evaluation.jsonl").exists() and not (args.resume or args.overwrite):
        raise UsageError(f"{out} already holds an evaluation; pass --resume to continue it, "
                         "--overwrite to start over, or choose another --out")
    if args.model:
        if args.set:
            raise UsageError("--set configures --defense; a --model is used as saved")
        estimator = _load_model(args.model)
        attacks = _parse_attacks(args.attack, estimator)
        source = args.model
    elif args.defense:
        estimator = _make_estimator(
            args.defense, _defense_params(args, args.defense, parse_assignments(args.set)))
        attacks = _parse_attacks(args.attack, estimator)
        source = args.defense
    else:
        raise UsageError("give --defense NAME (train it) or --model FILE (a fitted model)")
    if args.overwrite:
        keep = Path(args.model).resolve() if args.model else None
        for name in _EVALUATION_FILES:
            path = out / name
            if path.is_file() and path.resolve() != keep:  # never the --model being evaluated
                path.unlink()
    X_test, y_test = _load_split(args, "test", None)
    if args.defense and args.resume and saved.exists():
        estimator = _load_model(saved)
        source = str(saved)
    elif args.defense:
        X, y = _load_split(args, "train", args.train_n)
        log.info("training %s on %d %s images", args.defense, len(X), args.dataset)
        estimator.fit(X, y)
        _atomic_dump(estimator, saved)
    from .evaluation import evaluate

    log.info("evaluating %s on %d %s test images under %s", source,
             min(args.test_n or len(X_test), len(X_test)), args.dataset,
             "the adaptive ladder" if attacks is None
             else ", ".join(a if isinstance(a, str) else a[0] for a in attacks))
    with _scheduler(args):
        report = evaluate(
            estimator, X_test, y_test, attacks=attacks, epsilons=epsilons, n=args.test_n,
            batch_size=args.batch_size, out_dir=out, resume=args.resume, random_state=args.seed,
            verbose=int(args.verbosity >= 1),
            metadata={"dataset": args.dataset, "model": source,
                      "defense": args.defense or type(estimator).__name__},
            n_jobs=-1 if args.scheduler else None, memory_budget=memory_budget,
        )
    markdown = report.to_markdown()
    _atomic_write_files({
        "report.json": report.to_json().encode() + b"\n",
        "report.md": markdown.encode(),
        "robustness.png": _figure_bytes(report.plot()),
    }, out)
    print(markdown)
    print(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'robustness.png'}")
    return 0


# -------------------------------------------------------------------------- baselines
def baselines_table(reports: dict, fit_seconds: dict) -> str:
    """Markdown table of worst-case robust accuracy (%) per defense and epsilon."""
    first = next(iter(reports.values()))
    group = next(iter(first.worst_case))
    header = ["defense"] + [
        "clean" if eps == 0 else f"eps={eps:g}" for eps in first.epsilons
    ] + ["fit s", "attack s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, report in reports.items():
        accuracy = report.worst_case[group]["accuracy"]
        cells = [name] + [f"{100 * a:.1f}" for a in accuracy]
        cells += [f"{fit_seconds[name]:.1f}", f"{report.compute_seconds:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    attacks = ", ".join(first.worst_case[group]["attacks"])
    lines.append("")
    lines.append(
        f"Robust accuracy (%) on {first.n_examples} test images: per example, the worst case "
        f"over {attacks} ({group}) at every radius up to eps."
    )
    return "\n".join(lines)


def baseline_defenses() -> list:
    """Registered defenses tagged ``"baseline"``, in registration order of the tag."""
    entries = _registry().get_registry().entries["defense"].values()  # registration order
    return [entry.name for entry in entries if BASELINE_CAPABILITY in entry.capabilities]


def baseline_settings(names, assignments) -> dict:
    """Parameters of each baseline: its ``_baseline_params``, then ``--set`` on top.

    ``--set key=value`` goes to every selected defense that takes ``key``;
    ``--set name.key=value`` to defense ``name`` only. A key no selected defense
    takes is an error.
    """
    settings, known = {}, {}
    for name in names:
        entry = _registry().get_registry().get("defense", name)
        settings[name] = dict(getattr(entry.factory, "_baseline_params", {}) or {})
        default = entry.factory()
        known[name] = default.get_params(deep=False) if hasattr(default, "get_params") else {}
    for key, value in parse_assignments(assignments).items():
        target, dot, param = key.rpartition(".")
        if dot:
            if target not in settings:
                raise UsageError(f"--set {key}: {target!r} is not among the defenses "
                                 f"being trained ({', '.join(names)})")
            _check_known_params({param: value}, known[target], f"defense {target!r}")
            settings[target][param] = value
            continue
        takers = [name for name in names if key in known[name]]
        if not takers:
            every = set().union(*known.values())
            _check_known_params({key: value}, every, "no defense being trained")
        for name in takers:
            settings[name][key] = value
    return settings


def cmd_baselines(args) -> int:
    """Train the baselines, evaluate them under attack, print the table, write the plot.

    The baselines are the registered defenses tagged "baseline" (mlp, cnn and
    adversarial-training over the MLP at epsilon 0.1 for the built-ins), or the
    --defense names given. Each is trained on the dataset's training split and
    evaluated on its test split under the --attack attacks at --epsilons.
    --set key=value sets a parameter of every defense that takes it,
    --set name.key=value of one. The table of worst-case robust accuracy is
    printed; --out receives baselines.md (the table and every report),
    <defense>.json (each report) and robustness.png (the worst-case curves side
    by side).
    """
    epsilons = parse_epsilons(args.epsilons)
    _check_positive(args.train_n, "--train-n")
    _check_positive(args.test_n, "--test-n")
    out = Path(args.out)
    _check_writable(out, "--out", is_dir=True)
    names = args.defense or baseline_defenses()
    if not names:
        raise UsageError('no registered defense is tagged "baseline"; name them with --defense')
    for name in names:
        _registry().get_registry().get("defense", name)
    settings = baseline_settings(names, args.set)
    estimators = {name: _make_estimator(name, _defense_params(args, name, settings[name]))
                  for name in names}
    attacks = {name: _parse_attacks(args.attack, estimator)
               for name, estimator in estimators.items()}
    from .evaluation import evaluate, plot_comparison

    X, y = _load_split(args, "train", args.train_n)
    X_test, y_test = _load_split(args, "test", None)
    reports, fit_seconds = {}, {}
    for step, (name, estimator) in enumerate(estimators.items(), start=1):
        log.info("[%d/%d] training %s on %d %s images", step, len(names), name, len(X),
                 args.dataset)
        start = time.perf_counter()
        estimator.fit(X, y)
        fit_seconds[name] = time.perf_counter() - start
        log.info("[%d/%d] evaluating %s (trained in %.1f s)", step, len(names), name,
                 fit_seconds[name])
        with _scheduler(args):
            reports[name] = evaluate(
                estimator, X_test, y_test, attacks=attacks[name], epsilons=epsilons,
                n=args.test_n, random_state=args.seed, verbose=int(args.verbosity >= 1),
                metadata={"dataset": args.dataset, "defense": name},
                n_jobs=-1 if args.scheduler else None,
            )
    table = baselines_table(reports, fit_seconds)
    contents = {
        "baselines.md": ("# Baselines on " + args.dataset + "\n\n" + table + "\n\n"
                         + "\n".join(r.to_markdown() for r in reports.values())).encode(),
        "robustness.png": _figure_bytes(plot_comparison(reports)),
    }
    for name, report in reports.items():
        contents[f"{name}.json"] = report.to_json().encode() + b"\n"
    _atomic_write_files(contents, out)
    print(table)
    print(f"\nwrote {', '.join(str(out / name) for name in contents)}")
    return 0


# ------------------------------------------------------------------------------- audit
def cmd_audit(args) -> int:
    """Audit a defense against the evaluation canon (checks A-G); write audit.md/.json/.png.

    The defense is trained on the dataset's training split (``--defense`` with
    its defaults, ``--train quick`` for its fast test configuration, ``--set``
    overrides) or loaded with ``--model``, then audited on the test split
    (``robustlearn.audit``). Each check's result is cached under
    ``DIR/checks/``, so rerunning the same command resumes where it stopped.
    """
    from .auditing import audit
    from .auditing.benchmark import DEFAULT_EPSILON, training_params
    from .datasets import load

    if bool(args.model) == bool(args.defense):
        raise UsageError("give --defense NAME (train it) or --model FILE (a fitted model)")
    out = Path(args.out)
    saved = out / "model.joblib"
    if args.model:
        estimator = _load_model(args.model)
    elif saved.exists() and not args.no_resume:
        estimator = _load_model(saved)
    else:
        params = training_params(args.defense, args.train, parse_assignments(args.set))
        params.setdefault("random_state", args.seed)
        estimator = _registry().make_defense(args.defense, **params)
        X, y = load(args.dataset, "train", n=args.train_n, data_dir=args.data_dir,
                    random_state=args.seed)
        estimator.fit(X, y)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_dump(estimator, saved)
    X_test, y_test = load(args.dataset, "test", data_dir=args.data_dir)
    epsilon = args.epsilon if args.epsilon is not None else DEFAULT_EPSILON.get(args.dataset, 0.1)
    checks = args.checks.split(",") if args.checks else None
    report = audit(estimator, X_test, y_test, epsilon, norm=args.norm, budget=args.budget,
                   n=args.n, out_dir=out, resume=not args.no_resume, random_state=args.seed,
                   verbose=int(args.verbosity >= 1), checks=checks)
    print(report.to_markdown())
    print(f"wrote {out / 'audit.md'}, {out / 'audit.json'}, {out / 'audit.png'}")
    return 0


def cmd_benchmark(args) -> int:
    """Train and audit every installed defense; write a leaderboard (markdown and HTML).

    Every defense the registry lists (third-party plugins included), or those
    named with ``--defense``, is trained (``--train quick``: its fast test
    configuration, the default under ``--budget quick``) and audited on the
    dataset's test split; ``--out`` receives ``leaderboard.md``,
    ``index.html`` (with each defense's plot) and one audit folder per defense.
    """
    from .auditing.benchmark import benchmark

    params = {}
    for item in args.set or ():
        name, sep, assignment = item.partition(":")
        if not sep:
            raise UsageError(f"benchmark --set expects DEFENSE:KEY=VALUE, got {item!r}")
        params.setdefault(name, {}).update(parse_assignments([assignment]))
    rows = benchmark(args.dataset, defenses=args.defense, budget=args.budget,
                     epsilon=args.epsilon, norm=args.norm, train=args.train, params=params,
                     out_dir=args.out, data_dir=args.data_dir, train_n=args.train_n, n=args.n,
                     random_state=args.seed, verbose=int(args.verbosity >= 1),
                     checks=args.checks.split(",") if args.checks else None,
                     resume=not args.no_resume)
    print((Path(args.out) / "leaderboard.md").read_text())
    print(f"wrote {Path(args.out) / 'leaderboard.md'} and {Path(args.out) / 'index.html'}")
    return 0 if all(r["status"] != "ERROR" for r in rows) else 1


def add_audit_parsers(add) -> None:
    """Add the ``audit`` and ``benchmark`` subcommands (``add(name, func)`` makes a subparser)."""
    def common(p):
        p.add_argument("--dataset", default="digits", help="registered dataset (default digits)")
        p.add_argument("--data-dir", default=None,
                       help="folder with the dataset files (default $ROBUSTLEARN_DATA)")
        p.add_argument("--epsilon", type=float, default=None,
                       help="radius (default per dataset: digits 0.1, mnist 0.3, ...)")
        p.add_argument("--norm", default="linf", choices=("linf", "l2"))
        p.add_argument("--budget", default="quick", choices=("quick", "full"))
        p.add_argument("--train", default=None, choices=("quick", "defaults"),
                       help="train with the defense's fast test configuration or its "
                            "defaults (default quick under --budget quick)")
        p.add_argument("--n", type=int, default=None, help="test examples (default: budget's)")
        p.add_argument("--train-n", type=int, default=None, help="training subset size")
        p.add_argument("--checks", default=None, help="comma-separated check ids (default all)")
        p.add_argument("--no-resume", action="store_true",
                       help="recompute every check even if --out holds cached results")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = add("audit", cmd_audit)
    p.add_argument("--defense", help="registered defense to train")
    p.add_argument("--model", help="fitted model written by robustlearn fit (instead of --defense)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    p.add_argument("--out", required=True, help="folder for the audit files and cache")
    common(p)

    p = add("benchmark", cmd_benchmark)
    p.add_argument("--defense", action="append", help="only these defenses (repeatable)")
    p.add_argument("--set", action="append", metavar="DEFENSE:KEY=VALUE",
                   help="parameter of one defense, repeatable")
    p.add_argument("--out", default="robustlearn-benchmark",
                   help="folder for the leaderboard and the audits")
    common(p)


# ------------------------------------------------------------------------------ doctor
def cmd_doctor(args) -> int:
    """Print versions, devices, threads and the installed plugins (broken ones with their error)."""
    from .doctor import report

    print(report())
    return 0


def _scheduler(args):
    """The Dask backend for ``--scheduler``, or a context that changes nothing."""
    import contextlib

    if not getattr(args, "scheduler", None):
        return contextlib.nullcontext()
    from .cluster import dask_backend

    return dask_backend(args.scheduler)


def _scheduler_argument(parser):
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                        help="run the units of work on this Dask scheduler (pip install "
                             "robustlearn[dask])")


# ------------------------------------------------------------------------------ parser
def _estimator_verbosity(args) -> int:
    """Estimator ``verbose``: 1 (a progress bar) by default, 2 (epoch tables) with -v."""
    return max(0, min(args.verbosity, 2))


def _common_parser(top: bool) -> argparse.ArgumentParser:
    """Options every subcommand takes, also accepted before the subcommand.

    Only the top-level parser holds the defaults: a subcommand's parser would
    otherwise reset an option given before the subcommand.
    """
    def default(value):
        return value if top else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="more output: per-epoch tables (-v), tracebacks on errors (-vv)")
    common.add_argument("-q", "--quiet", action="count", default=default(0),
                        help="no progress output, only results and errors")
    common.add_argument("--device", default=default(None),
                        help="torch device for training: auto, cpu, cuda, cuda:N "
                             "(default: each defense's own, auto)")
    common.add_argument("--threads", type=int, default=default(None),
                        help="CPU threads torch may use (default: torch's choice)")
    return common


def _data_arguments(parser, *, test_n=True):
    parser.add_argument("--dataset", default="digits", help="registered dataset (default digits)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the dataset files (default $ROBUSTLEARN_DATA)")
    parser.add_argument("--train-n", type=int, default=None,
                        help="stratified training subset size (default the whole split)")
    if test_n:
        parser.add_argument("--test-n", type=int, default=None,
                            help="stratified test subset to evaluate on (default the whole "
                                 "split; the whole split when it is smaller)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _attack_arguments(parser):
    parser.add_argument("--attack", action="append", metavar="NAME[:KEY=VALUE,...]",
                        help="registered attack with optional parameters, repeatable (default "
                             + DEFAULT_ATTACKS_HELP + ")")
    parser.add_argument("--epsilons", default="0,0.05,0.1,0.2,0.3",
                        help="comma-separated radii (default 0,0.05,0.1,0.2,0.3)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``robustlearn`` command."""
    common = _common_parser(top=False)
    parser = argparse.ArgumentParser(
        prog="robustlearn", description=_first_paragraph(sys.modules[__name__]),
        parents=[_common_parser(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"robustlearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func):
        p = sub.add_parser(name, help=_first_paragraph(func), description=_description(func),
                           parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("plugins", cmd_plugins)
    p.add_argument("--json", action="store_true", help="print the list as JSON")

    p = add("fit", cmd_fit)
    p.add_argument("--defense", required=True, help="registered defense name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    p.add_argument("--out", required=True,
                   help="where to write the fitted model: .safetensors (a safe model file) or "
                        ".joblib/.pkl (pickle); an existing file is replaced")
    _data_arguments(p, test_n=False)

    p = add("evaluate", cmd_evaluate)
    p.add_argument("--defense", help="registered defense to train")
    p.add_argument("--model", help="fitted model written by robustlearn fit: a safe model file "
                                   "(.safetensors) or a pickle (.joblib), instead of --defense")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    _attack_arguments(p)
    p.add_argument("--out", required=True, help="folder for the log and the report files")
    p.add_argument("--resume", action="store_true", help="continue the evaluation logged in --out")
    p.add_argument("--overwrite", action="store_true",
                   help="discard an evaluation already in --out and start over")
    p.add_argument("--batch-size", type=int, default=256,
                   help="examples per logged unit of work (default 256)")
    p.add_argument("--memory-budget", metavar="SIZE", default=None,
                   help="memory an attack or prediction batch may use, e.g. 2GiB or 512MiB "
                        "(default: half the device's free memory)")
    _scheduler_argument(p)
    _data_arguments(p)

    p = add("baselines", cmd_baselines)
    p.add_argument("--defense", action="append", metavar="NAME",
                   help='defense to train, repeatable (default: every defense tagged "baseline")')
    p.add_argument("--set", action="append", metavar="[DEFENSE.]KEY=VALUE",
                   help="defense parameter, repeatable")
    _attack_arguments(p)
    p.add_argument("--out", default="robustlearn-baselines",
                   help="folder for the reports and the plot, replaced on a rerun (default "
                        "robustlearn-baselines)")
    _scheduler_argument(p)
    _data_arguments(p)

    add("doctor", cmd_doctor)
    add_audit_parsers(add)
    return parser


class _OneLineFormatter(logging.Formatter):
    def format(self, record):
        return f"robustlearn: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (it may be replaced)."""

    _robustlearn_cli = True

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _configure(args) -> None:
    """Logging to stderr at the chosen verbosity, torch threads."""
    level = logging.WARNING if args.verbosity <= 0 else (
        logging.INFO if args.verbosity == 1 else logging.DEBUG)
    logger = logging.getLogger("robustlearn")
    if not any(getattr(h, "_robustlearn_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_OneLineFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    if args.threads is not None:
        _check_positive(args.threads, "--threads")
        import torch

        torch.set_num_threads(args.threads)
    if args.device is not None:
        from .validation import check_device

        try:
            check_device(args.device)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--device: {exc}") from None


def main(argv=None) -> int:
    """Entry point of the ``robustlearn`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbosity = 1 + args.verbose - args.quiet
    name = f"robustlearn {args.command}"
    try:
        _configure(args)
        return args.func(args)
    except KeyboardInterrupt:
        hint = ""
        if args.command == "evaluate":
            hint = f"; finished batches are logged in {args.out}, rerun with --resume"
        print(f"\n{name}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback with -vv
        if args.verbosity >= 3:
            raise
        known = (ValueError, TypeError, OSError, _registry().PluginError, ImportError)
        message = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        message = " ".join(message.split())
        if not isinstance(exc, known):
            message += " (run with -vv for the traceback)"
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
