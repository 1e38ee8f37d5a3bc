"""The ``robustlearn`` command line.

Subcommands
-----------
``robustlearn plugins``
    List every registered defense, attack, purifier and dataset, and broken plugins.
``robustlearn fit --defense NAME --dataset NAME [--set key=value ...] --out model.joblib``
    Train a defense and save it with joblib.
``robustlearn evaluate --defense NAME | --model FILE --dataset NAME --attack NAME ... --out DIR``
    Evaluate a defense under attacks; write report.json, report.md and robustness.png.
``robustlearn baselines [--dataset digits] [--out robustlearn-baselines]``
    Train the baseline defenses, evaluate them under FGSM and PGD, print the table, write the plot.
``robustlearn audit --defense NAME --dataset NAME [--set ...] [--budget quick|full] --out DIR``
    Audit one defense against checks A-G; write audit.md, audit.json and audit.png.
``robustlearn benchmark --dataset NAME [--budget quick|full] [--out DIR]``
    Train and audit every installed defense; write leaderboard.md and index.html.

Each subcommand's help comes from the docstring of the function that runs it.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from pathlib import Path

from . import registry
from .validation import check_int


def parse_assignments(assignments) -> dict:
    """Parse ``key=value`` strings into a dict, values read as Python literals when possible.

    ``--set hidden_layer_sizes=(64,64) --set optimizer=sgd`` gives
    ``{"hidden_layer_sizes": (64, 64), "optimizer": "sgd"}``.
    """
    params = {}
    for item in assignments or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        params[key.strip()] = value
    return params


def _first_paragraph(func) -> str:
    doc = (func.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ")


def cmd_plugins(args) -> int:
    """List registered defenses, attacks, purifiers and datasets, and any broken plugin."""
    reg = registry.get_registry()
    rows = [("name", "kind", "distribution", "version", "status", "description")]
    for kind in registry.KINDS:
        for entry in registry.list_registrations(kind):
            rows.append((entry.name, kind, entry.distribution, entry.version, "ok",
                         entry.description))
    for broken in reg.broken:
        rows.append((broken.plugin, "plugin", broken.distribution, broken.version, "broken",
                     broken.error))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:5], widths)]
        print("  ".join(cells + [str(row[5])]).rstrip())
    return 0


def _atomic_dump(obj, out: Path) -> None:
    import joblib

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name + ".", suffix=".part")
    os.close(fd)
    try:
        joblib.dump(obj, tmp)
        os.replace(tmp, out)
    except BaseException:
        os.remove(tmp)
        raise


def cmd_fit(args) -> int:
    """Train a registered defense on a dataset's training split and save it with joblib."""
    from .datasets import load

    params = parse_assignments(args.set)
    params.setdefault("random_state", args.seed)
    params.setdefault("verbose", args.verbose)
    estimator = registry.make_defense(args.defense, **params)
    estimator._validate_params()  # fail on bad --set values before loading data
    X, y = load(args.dataset, "train", n=args.n, data_dir=args.data_dir, random_state=args.seed)
    start = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    X_test, y_test = load(args.dataset, "test", data_dir=args.data_dir)
    accuracy = estimator.score(X_test, y_test)
    _atomic_dump(estimator, Path(args.out))
    print(f"{args.defense} on {args.dataset}: test accuracy {accuracy:.4f} "
          f"({len(X)} training samples, {seconds:.1f} s); saved to {args.out}")
    return 0


#: Attacks of the main job (and the default of ``evaluate``): single-step FGSM, and PGD with
#: 40 steps of 2.5 epsilon / 40, the step rule of Madry et al. (ICLR 2018); Foolbox's default
#: step (epsilon / 30) leaves PGD weaker than FGSM on the digits baselines.
DEFAULT_ATTACKS = ("fgsm", "linf-pgd:steps=40,rel_stepsize=0.0625")


def parse_epsilons(text) -> list:
    """Parse a comma-separated list of radii: ``"0,0.05,0.1"`` gives ``[0.0, 0.05, 0.1]``."""
    from .attacks.base import check_epsilons

    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--epsilons expects comma-separated numbers, got {text!r}") from None
    return check_epsilons(values, "--epsilons")


def _atomic_write_files(contents: dict, out_dir: Path) -> None:
    """Write ``{name: bytes}`` into ``out_dir``, each through a temporary file and a rename.

    Every content is produced before this is called, so a failure leaves either
    the previous files or none, never a half-written one.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    for name, data in contents.items():
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=name + ".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes private files; reports are not
            os.replace(tmp, out_dir / name)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def _figure_bytes(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def parse_attack(text):
    """Parse ``NAME`` or ``NAME:key=value,key=value`` into a name or a ``(name, params)`` pair.

    ``linf-pgd:steps=100,rel_stepsize=0.0625`` gives
    ``("linf-pgd", {"steps": 100, "rel_stepsize": 0.0625})``; values are read as
    Python literals when possible. The name is checked against the registry
    (``ValueError`` with a suggestion).
    """
    name, sep, raw = str(text).partition(":")
    name = name.strip()
    registry.get_registry().get("attack", name)
    if not sep:
        return name
    return name, parse_assignments(part for part in raw.split(",") if part.strip())


def _parse_attacks(texts):
    return [parse_attack(text) for text in (texts or DEFAULT_ATTACKS)]


def cmd_evaluate(args) -> int:
    """Evaluate a defense under attacks and write report.json, report.md and robustness.png.

    The defense is trained on the dataset's training split (``--defense`` with
    ``--set`` parameters; it is saved as ``DIR/model.joblib`` so that
    ``--resume`` continues with the same model) or loaded with ``--model``. The
    evaluation runs on ``--n`` stratified test examples; its log
    ``DIR/evaluation.jsonl`` lets ``--resume`` continue an interrupted run.
    """
    import joblib

    from .datasets import load
    from .evaluation import evaluate

    epsilons = parse_epsilons(args.epsilons)
    attacks = _parse_attacks(args.attack)
    check_int(args.batch_size, "--batch-size", low=1)
    out = Path(args.out)
    saved = out / "model.joblib"
    if args.model and args.defense:
        raise ValueError("give --defense (train) or --model (load), not both")
    if args.model:
        if args.set:
            raise ValueError("--set configures --defense; a --model is used as saved")
        estimator = joblib.load(args.model)
        source = args.model
    elif args.defense and args.resume and saved.exists():
        estimator = joblib.load(saved)
        source = str(saved)
    elif args.defense:
        params = parse_assignments(args.set)
        params.setdefault("random_state", args.seed)
        params.setdefault("verbose", args.verbose)
        estimator = registry.make_defense(args.defense, **params)
        estimator._validate_params()  # fail on bad --set values before loading data
        if (out / "evaluation.jsonl").exists() and not args.resume:
            raise ValueError(f"{out} already holds an evaluation; pass --resume to continue it "
                             "or choose another --out")
        X, y = load(args.dataset, "train", n=args.train_n, data_dir=args.data_dir,
                    random_state=args.seed)
        estimator.fit(X, y)
        _atomic_dump(estimator, saved)
        source = args.defense
    else:
        raise ValueError("give --defense NAME (train it) or --model FILE (a fitted model)")
    X_test, y_test = load(args.dataset, "test", n=args.n, data_dir=args.data_dir,
                          random_state=args.seed)
    report = evaluate(
        estimator, X_test, y_test, attacks=attacks, epsilons=epsilons,
        batch_size=args.batch_size, out_dir=out, resume=args.resume, random_state=args.seed,
        verbose=args.verbose, metadata={"dataset": args.dataset, "model": source},
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


BASELINES = ("mlp", "cnn", "adversarial-training")



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


def cmd_baselines(args) -> int:
    """Train the baselines, evaluate them under FGSM and PGD, print the table, write the plot.

    Each baseline (``mlp``, ``cnn``, ``adversarial-training`` over the MLP) is
    trained on the dataset's training split and evaluated on its test split
    under the ``--attack`` attacks at ``--epsilons``. The table of worst-case
    robust accuracy is printed; ``--out`` receives ``baselines.md`` (the table
    and every report), ``<defense>.json`` (each report) and ``robustness.png``
    (the worst-case curves side by side).
    """
    from .datasets import load
    from .evaluation import evaluate, plot_comparison

    epsilons = parse_epsilons(args.epsilons)
    attacks = _parse_attacks(args.attack)
    X, y = load(args.dataset, "train", n=args.n, data_dir=args.data_dir, random_state=args.seed)
    X_test, y_test = load(args.dataset, "test", data_dir=args.data_dir)
    reports, fit_seconds = {}, {}
    for name in BASELINES:
        params = {"random_state": args.seed, "verbose": args.verbose}
        if name == "adversarial-training":
            params.update(network="mlp", epsilon=args.epsilon)
        estimator = registry.make_defense(name, **params)
        start = time.perf_counter()
        estimator.fit(X, y)
        fit_seconds[name] = time.perf_counter() - start
        reports[name] = evaluate(
            estimator, X_test, y_test, attacks=attacks, epsilons=epsilons,
            random_state=args.seed, verbose=args.verbose,
            metadata={"dataset": args.dataset, "defense": name},
        )
    table = baselines_table(reports, fit_seconds)
    out = Path(args.out)
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


def cmd_audit(args) -> int:
    """Audit a defense against the evaluation canon (checks A-G); write audit.md/.json/.png.

    The defense is trained on the dataset's training split (``--defense`` with
    its defaults, ``--train quick`` for its fast test configuration, ``--set``
    overrides) or loaded with ``--model``, then audited on the test split
    (``robustlearn.audit``). Each check's result is cached under
    ``DIR/checks/``, so rerunning the same command resumes where it stopped.
    """
    import joblib

    from .audit import audit
    from .audit.benchmark import DEFAULT_EPSILON, training_params
    from .datasets import load

    if bool(args.model) == bool(args.defense):
        raise ValueError("give --defense NAME (train it) or --model FILE (a fitted model)")
    out = Path(args.out)
    saved = out / "model.joblib"
    if args.model:
        estimator = joblib.load(args.model)
    elif saved.exists() and not args.no_resume:
        estimator = joblib.load(saved)
    else:
        params = training_params(args.defense, args.train, parse_assignments(args.set))
        params.setdefault("random_state", args.seed)
        estimator = registry.make_defense(args.defense, **params)
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
                   verbose=args.verbose, checks=checks)
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
    from .audit.benchmark import benchmark

    params = {}
    for item in args.set or ():
        name, sep, assignment = item.partition(":")
        if not sep:
            raise ValueError(f"benchmark --set expects DEFENSE:KEY=VALUE, got {item!r}")
        params.setdefault(name, {}).update(parse_assignments([assignment]))
    rows = benchmark(args.dataset, defenses=args.defense, budget=args.budget,
                     epsilon=args.epsilon, norm=args.norm, train=args.train, params=params,
                     out_dir=args.out, data_dir=args.data_dir, train_n=args.train_n, n=args.n,
                     random_state=args.seed, verbose=args.verbose,
                     checks=args.checks.split(",") if args.checks else None,
                     resume=not args.no_resume)
    print((Path(args.out) / "leaderboard.md").read_text())
    print(f"wrote {Path(args.out) / 'leaderboard.md'} and {Path(args.out) / 'index.html'}")
    return 0 if all(r["status"] != "ERROR" for r in rows) else 1


def add_audit_parsers(sub) -> None:
    """Add the ``audit`` and ``benchmark`` subcommands to ``sub``."""
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
        p.add_argument("--verbose", type=int, default=0, help="1 shows progress and findings")

    p = sub.add_parser("audit", help=_first_paragraph(cmd_audit), description=cmd_audit.__doc__)
    p.add_argument("--defense", help="registered defense to train")
    p.add_argument("--model", help="fitted model saved with joblib (instead of --defense)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    p.add_argument("--out", required=True, help="folder for the audit files and cache")
    common(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("benchmark", help=_first_paragraph(cmd_benchmark),
                       description=cmd_benchmark.__doc__)
    p.add_argument("--defense", action="append", help="only these defenses (repeatable)")
    p.add_argument("--set", action="append", metavar="DEFENSE:KEY=VALUE",
                   help="parameter of one defense, repeatable")
    p.add_argument("--out", default="robustlearn-benchmark",
                   help="folder for the leaderboard and the audits")
    common(p)
    p.set_defaults(func=cmd_benchmark)


def _add_data_arguments(parser):
    parser.add_argument("--dataset", default="digits", help="registered dataset (default digits)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the dataset files (default $ROBUSTLEARN_DATA)")
    parser.add_argument("--n", type=int, default=None, help="stratified training subset size")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--verbose", type=int, default=0, help="1 shows progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``robustlearn`` command."""
    parser = argparse.ArgumentParser(
        prog="robustlearn", description=_first_paragraph(sys.modules[__name__])
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help=_first_paragraph(cmd_plugins))
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("fit", help=_first_paragraph(cmd_fit))
    p.add_argument("--defense", required=True, help="registered defense name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    p.add_argument("--out", required=True, help="where to write the fitted model (.joblib)")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("evaluate", help=_first_paragraph(cmd_evaluate),
                       description=cmd_evaluate.__doc__)
    p.add_argument("--defense", help="registered defense to train")
    p.add_argument("--model", help="fitted model saved with joblib (instead of --defense)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="defense parameter, repeatable")
    p.add_argument("--attack", action="append", metavar="NAME[:KEY=VALUE,...]",
                   help="registered attack with optional parameters, repeatable (default "
                        + " and ".join(DEFAULT_ATTACKS) + ")")
    p.add_argument("--epsilons", default="0,0.05,0.1,0.2,0.3",
                   help="comma-separated radii (default 0,0.05,0.1,0.2,0.3)")
    p.add_argument("--out", required=True, help="folder for the log and the report files")
    p.add_argument("--resume", action="store_true", help="continue the evaluation logged in --out")
    p.add_argument("--batch-size", type=int, default=256,
                   help="examples per logged unit of work (default 256)")
    p.add_argument("--dataset", default="digits", help="registered dataset (default digits)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the dataset files (default $ROBUSTLEARN_DATA)")
    p.add_argument("--n", type=int, default=None,
                   help="stratified test subset to evaluate on (default the whole test split)")
    p.add_argument("--train-n", type=int, default=None,
                   help="stratified training subset for --defense (default all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--verbose", type=int, default=0, help="1 shows progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baselines", help=_first_paragraph(cmd_baselines),
                       description=cmd_baselines.__doc__)
    p.add_argument("--epsilon", type=float, default=0.1,
                   help="linf radius for adversarial training (default 0.1)")
    p.add_argument("--attack", action="append", metavar="NAME[:KEY=VALUE,...]",
                   help="registered attack with optional parameters, repeatable (default "
                        + " and ".join(DEFAULT_ATTACKS) + ")")
    p.add_argument("--epsilons", default="0,0.05,0.1,0.2,0.3",
                   help="comma-separated evaluation radii (default 0,0.05,0.1,0.2,0.3)")
    p.add_argument("--out", default="robustlearn-baselines",
                   help="folder for the reports and the plot (default robustlearn-baselines)")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_baselines)

    add_audit_parsers(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``robustlearn`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"robustlearn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
