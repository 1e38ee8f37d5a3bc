"""A grid search over defenses on two local Dask workers against the same search run sequentially.

Eight configurations of the ``mlp`` defense (learning rate x weight decay x
seed, every one a 512-512 MLP trained for ``--epochs`` epochs, so every job
costs the same and neither worker waits for the other at the end), each
cross-validated with ``--cv`` folds on the digits training split, searched by
``GridSearchCV(..., refit=False)`` twice: with ``n_jobs=1`` in this process,
and with ``n_jobs=-1`` inside ``robustlearn.cluster.dask_backend`` on a
``LocalCluster`` of 2 worker processes with 1 thread each.

What keeps overhead out of the ratio:

- both sides use one torch thread per job (the sequential side sets it in
  this process), so the ratio measures the parallel speedup, not a change of
  thread count;
- the cluster is started, and this process and every worker have run one tiny
  fit (torch's one-time initialisation), before any clock starts: a cluster is
  started once per session in practice;
- the workers use glibc's usual allocator settings (``worker_environment``; Dask's
  default ``MALLOC_TRIM_THRESHOLD_`` made every fit in a worker cost up to twice its CPU
  time here);
- the data are scattered to the workers once per search
  (``dask_backend(..., scatter=[X, y])``), not shipped with every job;
- each job (one configuration on one fold) is a fit of a few seconds, so the
  scheduler's milliseconds per job do not count;
- ``refit=False``: refitting the best configuration is one fit in the calling
  process, the same on both sides, and no part of the search;
- the two sides alternate (``--repeats`` rounds, in the order S D, D S, S D,
  ...), so a change of the machine's load hits both; the medians are compared.

The scores of both searches are checked to be identical.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_sweep.py

Target: speedup >= 1.7x on 2 cores. On a shared machine other jobs take cores,
so the output also gives (a) the load average, (b) what the workers could gain
at all now (a fixed matmul loop on one worker alone against on every worker at
once), and (c) a CPU-time ratio: the sequential search's CPU seconds over the
busiest worker's CPU seconds in the Dask search, the speedup two uncontended
cores would give for this split of the work. (c) is not a wall-clock
measurement; the speedup is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV

import robustlearn
from robustlearn.cluster import dask_backend, worker_environment

GRID = {"lr": [1e-3, 3e-3], "optimizer__weight_decay": [0.0, 1e-4], "random_state": [0, 1]}


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


def search(X, y, cv, epochs, n_jobs):
    estimator = robustlearn.make_defense("mlp", hidden_layer_sizes=(512, 512),
                                         max_epochs=epochs, device="cpu")
    return GridSearchCV(estimator, GRID, cv=cv, n_jobs=n_jobs, refit=False).fit(X, y)


def run_sequential(X, y, args):
    cpu, start = time.process_time(), time.perf_counter()
    result = search(X, y, args.cv, args.epochs, n_jobs=1)
    return result, time.perf_counter() - start, time.process_time() - cpu


def run_dask(client, X, y, args):
    cpu = client.run(time.process_time)
    start = time.perf_counter()
    with dask_backend(client, scatter=[X, y]):
        result = search(X, y, args.cv, args.epochs, n_jobs=-1)
    wall = time.perf_counter() - start
    after = client.run(time.process_time)
    return result, wall, max(after[w] - cpu[w] for w in cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cv", type=int, default=2, help="folds per configuration (default 2)")
    parser.add_argument("--epochs", type=int, default=40,
                        help="epochs per fit (default 40: about 3 s per job on one idle core)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of (sequential, Dask), alternating their order (default 2)")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    torch.set_num_threads(1)
    X, y = robustlearn.load_dataset("digits")
    n_configs = int(np.prod([len(v) for v in GRID.values()]))
    load_before = os.getloadavg()
    seq_times, dask_times, seq_cpu, dask_cpu, same = [], [], [], [], True
    with worker_environment(), \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(torch.set_num_threads, 1)
        warm_up()
        client.run(warm_up)
        ceiling_before = parallel_ceiling(client)
        reference = None
        for round_ in range(args.repeats):
            order = ("seq", "dask") if round_ % 2 == 0 else ("dask", "seq")
            for side in order:
                if side == "seq":
                    result, wall, cpu = run_sequential(X, y, args)
                    seq_times.append(wall)
                    seq_cpu.append(cpu)
                else:
                    result, wall, cpu = run_dask(client, X, y, args)
                    dask_times.append(wall)
                    dask_cpu.append(cpu)
                scores = result.cv_results_["mean_test_score"]
                reference = scores if reference is None else reference
                same = same and np.array_equal(scores, reference)
                print(f"round {round_ + 1} {side:4s}: {wall:6.1f} s wall, {cpu:6.1f} s CPU"
                      + (" (busiest worker)" if side == "dask" else ""), flush=True)
        ceiling_after = parallel_ceiling(client)
    load_after = os.getloadavg()
    t_seq, t_dask = statistics.median(seq_times), statistics.median(dask_times)
    best = int(np.argmax(reference))
    print(f"{n_configs} configurations x {args.cv} folds = {n_configs * args.cv} jobs on digits "
          f"({len(X)} images), {args.repeats} interleaved rounds; best mean score "
          f"{reference[best]:.3f}")
    print(f"sequential (1 process, 1 torch thread): median {t_seq:.1f} s")
    print(f"dask ({args.workers} workers x 1 thread):          median {t_dask:.1f} s")
    print(f"speedup (wall clock, median over median): {t_seq / t_dask:.2f}x   "
          f"identical scores in every run: {same}")
    print(f"CPU-time ratio (sequential CPU s / busiest worker's CPU s; what {args.workers} "
          f"uncontended cores would give, not wall clock): "
          f"{statistics.median(seq_cpu) / statistics.median(dask_cpu):.2f}x")
    print(f"what {args.workers} workers could gain on this machine now (fixed matmul loop "
          f"alone vs on every worker at once): {ceiling_before:.2f}x before, "
          f"{ceiling_after:.2f}x after")
    print("load average (1, 5, 15 min): before "
          + ", ".join(f"{v:.2f}" for v in load_before) + "; after "
          + ", ".join(f"{v:.2f}" for v in load_after))


if __name__ == "__main__":
    main()
