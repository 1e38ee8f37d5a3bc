"""A grid search over defenses on two local Dask workers against the same search run sequentially.

Eight configurations of the ``mlp`` defense (learning rate x hidden width x
epochs), each cross-validated with ``--cv`` folds on the digits training split,
searched by ``GridSearchCV`` twice: with ``n_jobs=1`` in this process, and with
``n_jobs=-1`` inside ``robustlearn.cluster.dask_backend`` on a
``LocalCluster`` of 2 worker processes with 1 thread each. Both sides use one
torch thread per task (the sequential side sets it in this process), so the
ratio measures the parallel speedup, not a change of thread count. The
cluster is started, and this process and every worker have run one tiny fit
(torch's one-time initialisation), before the clock starts: a cluster is
started once per session in practice. The scores of both searches are checked
to be identical.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_sweep.py

Target: speedup >= 1.7x on 2 cores. On a shared machine other jobs take cores:
the last line prints what the workers could gain at all (a fixed matmul loop on
one worker alone against on every worker at once), before and after the
searches, to read the speedup against.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.cluster import dask_backend

GRID = {"lr": [1e-3, 3e-3], "hidden_layer_sizes": [(256,), (512,)], "max_epochs": [60, 90]}


def warm_up():
    """One tiny fit: the first fit of a process pays torch's one-time initialisation."""
    X, y = robustlearn.load_dataset("digits")
    robustlearn.make_defense("mlp", max_epochs=1, device="cpu").fit(X[:200], y[:200])


def matmul_work():
    """A fixed CPU-bound torch workload (one thread)."""
    a = torch.randn(384, 384, generator=torch.Generator().manual_seed(0))
    for _ in range(600):
        a @ a


def parallel_ceiling(client):
    """Speedup two workers can get on this machine now: the same fixed workload on one worker
    alone and on every worker at once (a shared machine gives less than its core count)."""
    workers = sorted(client.scheduler_info()["workers"])

    def wall(on):
        start = time.perf_counter()
        client.gather([client.submit(matmul_work, workers=[w], pure=False) for w in on])
        return time.perf_counter() - start

    alone, together = wall(workers[:1]), wall(workers)
    return len(workers) * alone / together


def search(X, y, cv, n_jobs):
    estimator = robustlearn.make_defense("mlp", random_state=0, device="cpu")
    start = time.perf_counter()
    result = GridSearchCV(estimator, GRID, cv=cv, n_jobs=n_jobs).fit(X, y)
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cv", type=int, default=2, help="folds per configuration (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    torch.set_num_threads(1)
    X, y = robustlearn.load_dataset("digits")
    n_configs = int(np.prod([len(v) for v in GRID.values()]))
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        warm_up()
        client.run(warm_up)
        ceiling_before = parallel_ceiling(client)
        sequential, t_seq = search(X, y, args.cv, n_jobs=1)
        with dask_backend(client):
            on_dask, t_dask = search(X, y, args.cv, n_jobs=-1)
        ceiling_after = parallel_ceiling(client)
    same = np.array_equal(sequential.cv_results_["mean_test_score"],
                          on_dask.cv_results_["mean_test_score"])
    print(f"{n_configs} configurations x {args.cv} folds on digits ({len(X)} images)")
    print(f"sequential (1 process, 1 torch thread): {t_seq:.1f} s")
    print(f"dask ({args.workers} workers x 1 thread):          {t_dask:.1f} s")
    print(f"speedup: {t_seq / t_dask:.2f}x   identical scores: {same}   "
          f"best: {sequential.best_params_} ({sequential.best_score_:.3f})")
    print(f"what {args.workers} workers could gain on this machine now (fixed matmul loop "
          f"alone vs on every worker at once): {ceiling_before:.2f}x before, "
          f"{ceiling_after:.2f}x after")


if __name__ == "__main__":
    main()
