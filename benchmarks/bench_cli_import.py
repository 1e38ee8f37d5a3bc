"""Time for ``robustlearn --help`` to answer, against an empty Python start-up.

Runs ``python -c pass``, ``python -m robustlearn --help`` and the installed
``robustlearn --help`` script, interleaved, ``--repeats`` times each, in fresh
processes, and reports the medians and the ratio of each to ``python -c pass``.
Torch, scikit-learn and Foolbox are imported only by the commands that need
them, so the help should cost little more than Python's own start-up.

Usage::

    python benchmarks/bench_cli_import.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def _seconds(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m robustlearn --help": [sys.executable, "-m", "robustlearn", "--help"],
    }
    script = shutil.which("robustlearn")
    if script:
        commands["robustlearn --help"] = [script, "--help"]
    for command in commands.values():  # warm the file cache
        _seconds(command)
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(_seconds(command))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':32s} {'median s':>9s} {'ratio':>6s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32s} {median:9.3f} {median / base:6.2f}x")


if __name__ == "__main__":
    main()
