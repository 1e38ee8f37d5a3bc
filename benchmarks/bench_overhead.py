"""Overhead of the platform: ``mlp`` against the same training loop written directly in torch.

Both sides train the same architecture (784-512-512-10 ReLU MLP, the ``mlp``
default) on the same MNIST images with the same epochs, batch size, Adam and
learning rate, on the same number of torch threads, shuffling with
``torch.randperm`` every epoch; both predict the 10,000 MNIST test images in
batches of 256. The runs are interleaved (platform and plain torch alternate,
and which goes first alternates too), and the median of the per-repeat ratios
is printed, for wall time and for the process's CPU time (the one to read on a
machine shared with other jobs). Targets: fit <= 1.15x, predict <= 1.10x.

The platform's ``fit`` includes everything a user pays for: input validation,
skorch's bookkeeping, and calibrating the detector (with
``calibration_fraction=0`` it trains on all images, like the plain loop, and
calibrates on them).

Usage::

    python benchmarks/bench_overhead.py --data-dir ../shared/data --repeats 5
    python benchmarks/bench_overhead.py --profile      # where the platform spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import robustlearn
from robustlearn.datasets import load
from robustlearn.seeding import seed_from

HIDDEN = (512, 512)
PREDICT_BATCH = 256  # the platform's inference batch: max(batch_size, 256)


def default_data_dir() -> str:
    return os.environ.get("ROBUSTLEARN_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data")


# -- the plain torch side --------------------------------------------------------------------

def torch_mlp(n_inputs: int, n_classes: int) -> nn.Module:
    layers, width = [nn.Flatten()], n_inputs
    for hidden in HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def torch_fit(X, y, epochs, batch_size, lr, seed):
    # the seed the platform derives from random_state: same initial weights, same shuffles,
    # so both sides do exactly the same arithmetic and reach the same accuracy
    torch.manual_seed(seed_from(seed))
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    model = torch_mlp(X[0].numel(), int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[index]), y[index])
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def torch_predict(model, X):
    outputs = []
    with torch.no_grad():
        for start in range(0, len(X), PREDICT_BATCH):
            outputs.append(model(torch.from_numpy(X[start:start + PREDICT_BATCH])).argmax(1))
    return torch.cat(outputs).numpy()


# -- the platform side ------------------------------------------------------------------------

def platform_estimator(epochs, batch_size, lr, seed):
    return robustlearn.make_defense(
        "mlp", hidden_layer_sizes=HIDDEN, max_epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer="adam", calibration_fraction=0.0, random_state=seed, device="cpu",
    )


def platform_fit(X, y, epochs, batch_size, lr, seed):
    return platform_estimator(epochs, batch_size, lr, seed).fit(X, y)


# -- measurement ------------------------------------------------------------------------------

def warm_up(X, y, args):
    """A short fit and predict on each side, so that lazy imports are not timed."""
    for fit in (platform_fit, torch_fit):
        model = fit(X[:512], y[:512], 1, args.batch_size, args.lr, args.seed)
        if hasattr(model, "predict"):
            model.predict(X[:512])
        else:
            torch_predict(model, X[:512])


def timed(fn, *args):
    """Run ``fn(*args)``; return (wall seconds, CPU seconds of this process, result).

    CPU time is what to read on a shared machine: it does not count the time the
    process waited for a core, which wall time does and which is noise here.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run(args):
    torch.set_num_threads(args.threads)
    X, y = load("mnist", "train", n=args.n, data_dir=args.data_dir, random_state=0)
    X_test, y_test = load("mnist", "test", data_dir=args.data_dir)
    fit_args = (X, y, args.epochs, args.batch_size, args.lr, args.seed)
    print(f"mlp {HIDDEN} on {len(X)} MNIST images, {args.epochs} epochs, batch "
          f"{args.batch_size}, Adam lr {args.lr}, {args.threads} thread(s); predict "
          f"{len(X_test)} test images x {args.predict_loops}; {args.repeats} interleaved repeats",
          flush=True)
    warm_up(X, y, args)

    rows = []
    for repeat in range(args.repeats):
        sides = [("platform", platform_fit, None), ("torch", torch_fit, None)]
        if repeat % 2:
            sides.reverse()
        times = {}
        for side, fit, _ in sides:
            fit_wall, fit_cpu, model = timed(fit, *fit_args)
            if side == "platform":
                predict = model.predict
            else:
                predict = (lambda m: lambda Z: torch_predict(m, Z))(model)
            predict_wall = predict_cpu = 0.0
            for _ in range(args.predict_loops):
                wall, cpu, labels = timed(predict, X_test)
                predict_wall, predict_cpu = predict_wall + wall, predict_cpu + cpu
            times[side] = {"fit wall": fit_wall, "fit cpu": fit_cpu, "predict wall": predict_wall,
                           "predict cpu": predict_cpu,
                           "accuracy": float(np.mean(labels == y_test))}
        rows.append(times)
        p, t = times["platform"], times["torch"]
        print(f"repeat {repeat + 1}: " + ", ".join(
            f"{key} {p[key]:.2f} s vs {t[key]:.2f} s ({p[key] / t[key]:.3f}x)"
            for key in ("fit wall", "fit cpu", "predict wall", "predict cpu"))
            + f"; test accuracy {p['accuracy']:.4f} vs {t['accuracy']:.4f}", flush=True)

    print()
    print("| measure | platform (median s) | plain torch (median s) | median ratio | target |")
    print("|---|---|---|---|---|")
    ratios = {}
    for key, target in (("fit cpu", 1.15), ("fit wall", 1.15), ("predict cpu", 1.10),
                        ("predict wall", 1.10)):
        ratios[key] = statistics.median(r["platform"][key] / r["torch"][key] for r in rows)
        med_p = statistics.median(r["platform"][key] for r in rows)
        med_t = statistics.median(r["torch"][key] for r in rows)
        verdict = "met" if ratios[key] <= target else "MISSED"
        print(f"| {key} | {med_p:.3f} | {med_t:.3f} | {ratios[key]:.3f}x | <= {target:.2f}x "
              f"({verdict}) |")
    return ratios


def profile(args):
    """cProfile of one platform fit and predict, top functions by own time."""
    torch.set_num_threads(args.threads)
    X, y = load("mnist", "train", n=args.n, data_dir=args.data_dir, random_state=0)
    X_test, _ = load("mnist", "test", data_dir=args.data_dir)
    warm_up(X, y, args)
    profiler = cProfile.Profile()
    profiler.enable()
    est = platform_fit(X, y, args.epochs, args.batch_size, args.lr, args.seed)
    for _ in range(args.predict_loops):
        est.predict(X_test)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir(),
                        help="folder with mnist/ (default $ROBUSTLEARN_DATA or ../shared/data)")
    parser.add_argument("--n", type=int, default=10000, help="training images (default 10000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--predict-loops", type=int, default=5,
                        help="predict calls timed together per repeat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="profile one platform fit and predict instead of comparing")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
