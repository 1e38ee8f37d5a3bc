"""Seconds per epoch and solver iterations against tolerance for dense NEMON on MNIST.

Trains one epoch of the dense width-100 NEMON on the full 60000 MNIST
training images (batch 100, Adam 1e-3, as the authors' ``experiments.py``)
for each forward/backward tolerance, and reports wall and CPU seconds per
epoch with the mean forward and backward iterations. On a shared machine the
wall time depends on the other jobs; the CPU time of the process
(``time.process_time``) does not, and is the number compared with the
authors' ~5.1 s per epoch (issue 11, measured on this hardware).

A second table measures, on a fitted model (``--model``, a pickle written by
``benchmarks/reproduce_nemon.py``), the forward and adjoint iterations and the
residual reached for each tolerance on 1000 test images.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nemon.py \
        --data-dir ../shared/data [--tols 1e-2 1e-3 1e-4] [--model PATH]
"""

from __future__ import annotations

import argparse
import glob
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch

import robustlearn
from robustlearn.plugins.nemon import NEMONClassifier

AUTHORS_SEC_PER_EPOCH = 5.1


def mnist(split, data_dir, n=None):
    X, y = robustlearn.load_dataset("mnist", split, data_dir=data_dir)
    X = np.asarray(X, dtype=np.float32)
    X = X / 255.0 if X.max() > 1.5 else X
    return (X[:n], np.asarray(y)[:n]) if n else (X, np.asarray(y))


def epoch_time(X, y, tol, args):
    clf = NEMONClassifier(width=100, tol=tol, backward_tol=tol, max_epochs=1, batch_size=100,
                          lr=1e-3, lipschitz_reg=args.reg, calibration_fraction=0.0,
                          device="cpu", random_state=0)
    wall, cpu = time.time(), time.process_time()
    clf.fit(X, y)
    wall, cpu = time.time() - wall, time.process_time() - cpu
    h = clf.solver_history_[-1]
    return dict(tol=tol, wall_s=wall, cpu_s=cpu, fp_iter_mean=h["fp_iter_mean"],
                bw_iter_mean=h["bw_iter_mean"], fp_residual_max=h["fp_residual_max"],
                hit_max_iter=h["fp_hit_max_iter"])


def solve_table(path, args):
    with open(path, "rb") as fh:
        clf, _ = pickle.load(fh)
    X, y = mnist("test", args.data_dir, 1000)
    x = torch.from_numpy(X).reshape(-1, 1, 28, 28)
    yt = torch.from_numpy(y).long()
    module = clf.module_
    rows = []
    for tol in args.tols + [1e-5]:
        xi = x.clone().requires_grad_(True)
        t = time.process_time()
        z, info = module.solve(xi, backward="implicit", tol=tol, backward_tol=tol,
                               max_iter=2000, backward_max_iter=2000)
        loss = torch.nn.functional.cross_entropy(module.readout(z), yt)
        loss.backward()
        back = info["result"].backward_result
        rows.append(dict(tol=tol, fp_iter_mean=float(info["iterations"].float().mean()),
                         fp_iter_max=int(info["iterations"].max()),
                         fp_residual_max=float(info["residual"].max()),
                         bw_iter_mean=float(back.iterations.float().mean()),
                         bw_residual_max=float(back.residual.max() / info["alpha"]),
                         alpha=info["alpha"], cpu_s=time.process_time() - t))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--tols", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    p.add_argument("--reg", type=float, default=0.0)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--model", default=None,
                   help="fitted model pickle (default: the unregularised one in "
                        "benchmarks/results/models, if any)")
    p.add_argument("--out", default="benchmarks/results/nemon/bench.json")
    args = p.parse_args(argv)
    X, y = mnist("train", args.data_dir, args.n_train)
    torch.manual_seed(0)
    out = dict(n_train=len(X), authors_sec_per_epoch=AUTHORS_SEC_PER_EPOCH, epochs=[])
    for tol in args.tols:
        row = epoch_time(X, y, tol, args)
        row["cpu_vs_authors"] = row["cpu_s"] / AUTHORS_SEC_PER_EPOCH
        out["epochs"].append(row)
        print(json.dumps(row), flush=True)
    model = args.model or next(iter(sorted(glob.glob(
        "benchmarks/results/models/nemon-mnist-dense-[0-9a-f]*.pkl"))), None)
    if model:
        out["model"] = model
        out["solves"] = solve_table(model, args)
        for row in out["solves"]:
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
