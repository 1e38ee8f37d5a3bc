"""Seconds per fine-tuning epoch of the attractor network: exact versus power L_eigen.

Both estimators fine-tune the same pre-trained network on the same 1000 MNIST
digits (100 per class, fixed seed) at the same mini-batch and L_eigen
sub-batch; epochs alternate between the two (interleaved) and the ratio of
the medians is reported. Target (issue 4): ``power`` at least 20x faster.

Usage::

    python benchmarks/bench_attractor.py --data-dir ../shared/data [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import robustlearn
from robustlearn.plugins.attractor import AttractorClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--eigen-batch-size", type=int, default=16)
    parser.add_argument("--methods", nargs="+", default=["exact", "power", "stochastic"])
    args = parser.parse_args(argv)

    X, y = robustlearn.load_dataset("mnist", "train", data_dir=args.data_dir)
    rng = np.random.RandomState(0)
    index = np.concatenate([rng.choice(np.flatnonzero(y == c), args.n_train // 10,
                                       replace=False) for c in range(10)])
    X, y = X[index], y[index]
    base = AttractorClassifier(max_epochs=1, finetune_epochs=0, batch_size=args.batch_size,
                               eigen_batch_size=args.eigen_batch_size, attractor_check_size=1,
                               calibration_fraction=0.0, device="cpu", random_state=0)
    base.fit(X, y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    nets = {}
    for method in args.methods:
        clf = copy.deepcopy(base)
        clf._objective.eigen_method = method
        clf._objective.eigen_active = True
        clf.net_.partial_fit(Xt[: args.batch_size], yt[: args.batch_size], epochs=1)  # warm-up
        nets[method] = clf
    seconds = {m: [] for m in args.methods}
    for _ in range(args.repeats):
        for method, clf in nets.items():
            start = time.perf_counter()
            clf.net_.partial_fit(Xt, yt, epochs=1)
            seconds[method].append(time.perf_counter() - start)
    print(f"torch threads {torch.get_num_threads()}, {len(X)} digits, batch {args.batch_size}, "
          f"L_eigen sub-batch {args.eigen_batch_size}, {args.repeats} interleaved epochs each")
    for method, values in seconds.items():
        print(f"{method:>10}: median {np.median(values):.2f} s/epoch  "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    if "exact" in seconds and "power" in seconds:
        ratio = np.median(seconds["exact"]) / np.median(seconds["power"])
        print(f"exact / power: {ratio:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
