"""Benchmark: linf-PGD through robustlearn's transformer against Foolbox, a plain loop and others.

linf-PGD (40 steps, Foolbox's default relative step 0.01/0.3, random start) on
1000 MNIST test images, against the ``mlp`` (784-512-512-10) and ``cnn``
baselines, each trained briefly here. Runs are interleaved (every repeat runs
every variant once, in a rotating order) and the medians are compared as
ratios, so drifts in machine load hit all variants alike.

Variants
--------
transformer
    ``make_attack("linf-pgd", estimator=clf)`` with its default torch backend.
transformer-foolbox
    The same transformer with ``backend="foolbox"`` (Foolbox runs the loop;
    the transformer freezes the model's parameters).
foolbox-direct
    ``foolbox.attacks.LinfPGD`` on ``foolbox.PyTorchModel(clf.module_)``, as a
    Foolbox user would call it (parameters require gradients).
foolbox-frozen
    Foolbox direct with the parameters' ``requires_grad`` switched off: shows
    how much of Foolbox's overhead is the parameter gradients that its
    ``loss.backward()`` computes.
plain-loop
    A textbook torch PGD loop (``torch.autograd.grad`` with respect to the input).
plain-backward
    The same loop taking the input gradient with ``loss.backward()``, as
    eagerpy's ``value_and_grad`` does, which also computes every parameter's
    gradient.
torchattacks, art
    Their PGD, when the package is importable (install them only in a
    benchmark environment, torchattacks with ``--no-deps``); skipped otherwise.

Usage::

    python benchmarks/bench_attacks.py [--data-dir DIR] [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import robustlearn
from robustlearn.datasets import load

REL_STEPSIZE = 0.01 / 0.3


def default_data_dir():
    env = os.environ.get("ROBUSTLEARN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def batches(X, y, batch_size):
    for start in range(0, len(X), batch_size):
        yield X[start:start + batch_size], y[start:start + batch_size]


def plain_pgd(model, x, y, epsilon, steps, step_size, backward=False):
    """Textbook linf PGD with a uniform random start."""
    x_adv = (x + torch.empty_like(x).uniform_(-epsilon, epsilon)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        if backward:
            loss.backward()
            grad = x_adv.grad
        else:
            (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return x_adv.detach()


def make_variants(clf, X, y, epsilon, steps, batch_size, report=True):
    """Map variant name -> callable returning adversarial images (numpy)."""
    import foolbox

    module = clf.module_.eval()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    step = REL_STEPSIZE * epsilon
    variants = {}

    def transformer(backend):
        attack = robustlearn.make_attack("linf-pgd", epsilon=epsilon, estimator=clf, steps=steps,
                                         backend=backend, batch_size=batch_size)
        return lambda: attack.transform(X, y)

    variants["transformer"] = transformer("torch")
    variants["transformer-foolbox"] = transformer("foolbox")

    def foolbox_direct(frozen):
        def run():
            fmodel = foolbox.PyTorchModel(module, bounds=(0, 1), device="cpu")
            attack = foolbox.attacks.LinfPGD(steps=steps, rel_stepsize=REL_STEPSIZE)
            params = list(module.parameters())
            if frozen:
                for p in params:
                    p.requires_grad_(False)
            try:
                out = []
                for xb, yb in batches(Xt, yt, batch_size):
                    _, clipped, _ = attack(fmodel, xb, yb, epsilons=epsilon)
                    out.append(clipped)
            finally:
                for p in params:
                    p.requires_grad_(True)
                    p.grad = None
            return torch.cat(out).numpy()
        return run

    variants["foolbox-direct"] = foolbox_direct(False)
    variants["foolbox-frozen"] = foolbox_direct(True)

    def plain(backward):
        def run():
            out = [plain_pgd(module, xb, yb, epsilon, steps, step, backward) for xb, yb in
                   batches(Xt, yt, batch_size)]
            for p in module.parameters():
                p.grad = None
            return torch.cat(out).numpy()
        return run

    variants["plain-loop"] = plain(False)
    variants["plain-backward"] = plain(True)

    try:
        import torchattacks
    except ImportError:
        if report:
            print("torchattacks not importable: skipped")
    else:
        atk = torchattacks.PGD(module, eps=epsilon, alpha=step, steps=steps, random_start=True)
        variants["torchattacks"] = lambda: torch.cat(
            [atk(xb, yb) for xb, yb in batches(Xt, yt, batch_size)]).numpy()
    try:
        from art.attacks.evasion import ProjectedGradientDescentPyTorch
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        if report:
            print("adversarial-robustness-toolbox (art) not importable: skipped")
    else:
        art_clf = PyTorchClassifier(module, loss=torch.nn.CrossEntropyLoss(),
                                    input_shape=X.shape[1:], nb_classes=10, clip_values=(0, 1))
        art_pgd = ProjectedGradientDescentPyTorch(art_clf, eps=epsilon, eps_step=step,
                                                  max_iter=steps, num_random_init=1,
                                                  batch_size=batch_size, verbose=False)
        variants["art"] = lambda: art_pgd.generate(X, y)
    return variants


def train(name, X, y, epochs, seed):
    params = dict(max_epochs=epochs, random_state=seed, device="cpu", lr=1e-3)
    t0 = time.perf_counter()
    clf = robustlearn.make_defense(name, **params).fit(X, y)
    print(f"trained {name} on {len(X)} images in {time.perf_counter() - t0:.1f}s")
    return clf


def bench_model(name, clf, X, y, args):
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    warm = make_variants(clf, X[:32], y[:32], args.epsilon, 2, args.batch_size, report=False)
    for run in warm.values():  # warm-up
        run()
    variants = make_variants(clf, X, y, args.epsilon, args.steps, args.batch_size)
    names = list(variants)
    times = {v: [] for v in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for variant in order:
            torch.manual_seed(r)
            t0 = clock()
            adv = variants[variant]()
            times[variant].append(clock() - t0)
            if r == 0:
                acc = (clf.predict(adv.reshape(X.shape)) == y).mean()
                times.setdefault(f"acc:{variant}", []).append(acc)
    print(f"\n{name}: linf-PGD, {args.steps} steps, eps={args.epsilon}, {len(X)} images, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, {args.repeats} repeats, "
          f"{args.clock} time")
    med = {v: statistics.median(times[v]) for v in names}
    print(f"{'variant':22s} {'median s':>9s} {'/foolbox':>9s} {'/plain':>8s} {'robust acc':>10s}")
    for v in names:
        print(f"{v:22s} {med[v]:9.3f} {med[v] / med['foolbox-direct']:9.2f} "
              f"{med[v] / med['plain-loop']:8.2f} {times[f'acc:{v}'][0]:10.3f}")
    return med


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--n", type=int, default=1000, help="test images attacked")
    parser.add_argument("--n-train", type=int, default=10000, help="training images")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--epsilon", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-repeats", type=int, default=None,
                        help="repeats for the cnn (default: --repeats)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (steadier on a shared "
                        "machine; use with --threads 1)")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--quick", action="store_true",
                        help="200 images, 2000 training images, 1 epoch, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.n_train, args.epochs, args.repeats = 200, 2000, 1, 3
    torch.set_num_threads(args.threads)
    X_train, y_train = load("mnist", "train", n=args.n_train, data_dir=args.data_dir,
                            random_state=0)
    X, y = load("mnist", "test", n=args.n, data_dir=args.data_dir, random_state=0)
    summary = {}
    for name in args.models.split(","):
        clf = train(name, X_train, y_train, args.epochs, seed=0)
        print(f"{name} clean accuracy {clf.score(X, y):.3f}")
        run_args = argparse.Namespace(**vars(args))
        if name == "cnn" and args.cnn_repeats:
            run_args.repeats = args.cnn_repeats
        summary[name] = bench_model(name, clf, X, y, run_args)
    print("\nratios (targets: transformer <= 1.05x foolbox-direct, <= 1.25x plain-loop)")
    for name, med in summary.items():
        print(f"{name}: transformer/foolbox-direct {med['transformer'] / med['foolbox-direct']:.2f}"
              f", transformer/plain-loop {med['transformer'] / med['plain-loop']:.2f}"
              f", foolbox-direct/plain-loop {med['foolbox-direct'] / med['plain-loop']:.2f}"
              f", foolbox-frozen/plain-loop {med['foolbox-frozen'] / med['plain-loop']:.2f}"
              f", plain-backward/plain-loop {med['plain-backward'] / med['plain-loop']:.2f}")


if __name__ == "__main__":
    main()
