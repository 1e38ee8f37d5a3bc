"""The ``robustlearn`` command line.

Subcommands
-----------
``robustlearn plugins``
    List every registered defense, attack, purifier and dataset, and broken plugins.
``robustlearn fit --defense NAME --dataset NAME [--set key=value ...] --out model.joblib``
    Train a defense and save it with joblib.
``robustlearn baselines [--dataset digits]``
    Train the baseline defenses and print their test accuracy.

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


BASELINES = ("mlp", "cnn", "adversarial-training")


def cmd_baselines(args) -> int:
    """Train the baseline defenses on a dataset and print their clean test accuracy."""
    from .datasets import load

    X, y = load(args.dataset, "train", n=args.n, data_dir=args.data_dir, random_state=args.seed)
    X_test, y_test = load(args.dataset, "test", data_dir=args.data_dir)
    print(f"| defense | test accuracy | fit seconds |\n|---|---|---|")
    for name in BASELINES:
        params = {"random_state": args.seed, "verbose": args.verbose}
        if name == "adversarial-training":
            params.update(network="mlp", epsilon=args.epsilon)
        estimator = registry.make_defense(name, **params)
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
        print(f"| {name} | {estimator.score(X_test, y_test):.4f} | {seconds:.1f} |")
    return 0


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

    p = sub.add_parser("baselines", help=_first_paragraph(cmd_baselines))
    p.add_argument("--epsilon", type=float, default=0.1,
                   help="linf radius for adversarial training (default 0.1)")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_baselines)
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
