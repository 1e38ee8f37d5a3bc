"""Compare robustlearn's APGD, FAB-T, Square and AutoAttack with the reference code on one model.

The reference is the authors' code as repackaged by ``pyautoattack`` (an
unofficial PyPI distribution). Install it only in a separate environment that
reuses this one's torch, never in the main one::

    python -m venv --system-site-packages /tmp/aa-env
    /tmp/aa-env/bin/pip install --no-deps pyautoattack==0.2.0
    /tmp/aa-env/bin/python benchmarks/compare_autoattack.py

The model is the ``mlp`` baseline of the test fixtures (128 hidden units, 15
epochs on the embedded digits, seed 0). The script prints, per epsilon, the
robust accuracy on the 450 digits test images after each component and after
the whole ensemble, for both implementations. ``--norm l2`` compares the l2
versions; robustlearn's Square is linf only, so its l2 ensemble lacks the l2
Square the reference runs::

    /tmp/aa-env/bin/python benchmarks/compare_autoattack.py --norm l2 --epsilons 0.5,1,1.5
"""

from __future__ import annotations

import argparse
import logging

import torch

import robustlearn
from robustlearn.datasets import load

COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")


def ours(clf, X, y, name, epsilon, seed, norm):
    if name == "fab-t":
        # as AutoAttack runs it: images fooled within epsilon are not attacked again
        attack = robustlearn.make_attack("autoattack", epsilon=epsilon, estimator=clf,
                                         random_state=seed, norm=norm, attacks=("fab-t",))
    else:
        attack = robustlearn.make_attack(name, epsilon=epsilon, estimator=clf,
                                         random_state=seed, norm=norm)
    return float((clf.predict(attack.transform(X, y)) == y).mean())


def reference(module, X, y, attacks, epsilon, seed, norm):
    from pyautoattack import AutoAttack

    version = "standard" if attacks is None else "custom"
    adversary = AutoAttack(module, eps=epsilon, norm={"linf": "Linf", "l2": "L2"}[norm],
                           seed=seed, version=version,
                           attacks=None if attacks is None else list(attacks))
    if attacks is not None:  # the standard version's settings, for single components
        adversary.apgd.n_restarts = 1
        adversary.apgd_targeted.n_target_classes = 9
        adversary.apgd_targeted.n_restarts = 1
        adversary.fab.n_restarts = 1
        adversary.fab.n_target_classes = 9
        adversary.square.n_queries = 5000
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(torch.from_numpy(X), torch.from_numpy(y),
                                                 batch_size=500)
    with torch.no_grad():
        predicted = module(x_adv).argmax(1).numpy()
    return float((predicted == y).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", default="0.05,0.1,0.15")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf")
    parser.add_argument("--attacks", default=",".join(COMPONENTS),
                        help="components compared one by one (comma-separated)")
    args = parser.parse_args(argv)
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    X_train, y_train = load("digits", "train")
    X, y = load("digits", "test")
    clf = robustlearn.make_defense("mlp", hidden_layer_sizes=(128,), max_epochs=15,
                                   random_state=0, device="cpu").fit(X_train, y_train)
    module = clf.module_.eval()
    print(f"clean accuracy {clf.score(X, y):.4f} on {len(y)} digits test images")
    print(f"{'epsilon':>8s} {'attack':>12s} {'robustlearn':>12s} {'reference':>10s}")
    for epsilon in [float(e) for e in args.epsilons.split(",")]:
        for name in [a for a in args.attacks.split(",") if a]:
            if name == "square" and args.norm != "linf":
                continue
            a = ours(clf, X, y, name, epsilon, args.seed, args.norm)
            b = reference(module, X, y, [name], epsilon, args.seed, args.norm)
            print(f"{epsilon:8.3f} {name:>12s} {a:12.4f} {b:10.4f}")
            if name == "fab-t":  # the minimization transformer: every target on every image
                attack = robustlearn.make_attack("fab-t", epsilon=epsilon, estimator=clf,
                                                 norm=args.norm)
                a = float((clf.predict(attack.transform(X, y)) == y).mean())
                print(f"{epsilon:8.3f} {'fab-t (min)':>12s} {a:12.4f} {'-':>10s}")
        a = ours(clf, X, y, "autoattack", epsilon, args.seed, args.norm)
        b = reference(module, X, y, None, epsilon, args.seed, args.norm)
        print(f"{epsilon:8.3f} {'autoattack':>12s} {a:12.4f} {b:10.4f}")


if __name__ == "__main__":
    main()
