"""Time robustlearn's AutoAttack (standard) against the reference implementation, interleaved.

Both attack the same fitted ``cnn`` baseline on the same MNIST test digits at
the same linf radius, one after the other in each round (so that load on a
shared machine hits both alike), on one thread; each line prints the robust
accuracy beside the wall-clock and CPU time (the CPU time of the one thread is what the
ratio compares, since it does not count time the process waited for a shared core).
The reference is the authors' code as repackaged by ``pyautoattack`` (unofficial
PyPI distribution), installed outside the project's environment, without its
dependencies, so that it reuses this torch::

    python -m pip install --no-deps --target /tmp/aa-pkgs pyautoattack==0.2.0
    OMP_NUM_THREADS=1 python benchmarks/bench_autoattack.py --reference-path /tmp/aa-pkgs

Without ``--reference-path`` only robustlearn's AutoAttack runs. ``--model PATH``
keeps the trained ``cnn`` in a model file (:func:`robustlearn.save`) and reuses
it on later runs, so that a re-measurement does not retrain it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np
import torch

import robustlearn


def ours(clf, X, y, epsilon, seed):
    attack = robustlearn.make_attack("autoattack", epsilon=epsilon, estimator=clf,
                                     random_state=seed)
    start, cpu = time.perf_counter(), time.process_time()
    adv = attack.transform(X, y)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return float((clf.predict(adv) == y).mean()), seconds, cpu


def reference(clf, X, y, epsilon, seed):
    from pyautoattack import AutoAttack

    module = clf.module_.eval()
    adversary = AutoAttack(module, eps=epsilon, norm="Linf", seed=seed, version="standard")
    adversary.verbose = False
    x = torch.from_numpy(np.asarray(X, dtype=np.float32).reshape(
        (len(X),) + tuple(clf.input_shape_)))
    start, cpu = time.perf_counter(), time.process_time()
    x_adv, _ = adversary.run_standard_evaluation(x, torch.from_numpy(y.astype(np.int64)),
                                                 batch_size=500)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with torch.no_grad():
        predicted = module(x_adv).argmax(1).numpy()
    return float((clf.classes_[predicted] == y).mean()), seconds, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n", type=int, default=100, help="test images (default 100)")
    parser.add_argument("--train-n", type=int, default=10000, help="training subset")
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None,
                        help="model file: load the cnn from it if it exists, else save it there")
    parser.add_argument("--reference-path", default=None,
                        help="folder holding pyautoattack (pip install --target)")
    args = parser.parse_args(argv)
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    if args.reference_path:
        sys.path.append(args.reference_path)
    X_train, y_train = robustlearn.load_dataset(args.dataset, "train", n=args.train_n,
                                                data_dir=args.data_dir, random_state=0)
    X, y = robustlearn.load_dataset(args.dataset, "test", n=args.n, data_dir=args.data_dir,
                                    random_state=0)
    start = time.perf_counter()
    if args.model and os.path.exists(args.model):
        clf = robustlearn.load(args.model)
        how = f"loaded from {args.model}"
    else:
        clf = robustlearn.make_defense("cnn", random_state=0, device="cpu").fit(X_train, y_train)
        if args.model:
            robustlearn.save(clf, args.model)
        how = (f"trained on {len(y_train)} {args.dataset} images in "
               f"{time.perf_counter() - start:.0f} s")
    print(f"cnn {how}; clean accuracy {clf.score(X, y):.3f} on {len(y)} "
          f"test images; linf epsilon {args.epsilon}; threads {torch.get_num_threads()}")
    print(f"{'round':>5s} {'implementation':>15s} {'robust acc':>10s} {'wall s':>8s} "
          f"{'cpu s':>8s}")
    times = {"robustlearn": [], "reference": []}
    for r in range(args.rounds):
        runs = [("robustlearn", ours)]
        if args.reference_path:
            runs.append(("reference", reference))
        for name, fn in runs:
            acc, seconds, cpu = fn(clf, X, y, args.epsilon, args.seed)
            times[name].append(cpu)
            print(f"{r:5d} {name:>15s} {acc:10.3f} {seconds:8.1f} {cpu:8.1f}", flush=True)
    if times["reference"]:
        # CPU time of the one thread: comparable even when other jobs share the cores
        ratio = np.median(times["robustlearn"]) / np.median(times["reference"])
        print(f"median CPU-time ratio robustlearn / reference: {ratio:.2f}")


if __name__ == "__main__":
    main()
