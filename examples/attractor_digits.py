"""The attractor-network defense end to end on the embedded digits (no download).

Fits the defense with and without its eigenvalue loss, looks at the attractor
dynamics, checks the correlation detector on out-of-distribution inputs, puts
the attractor purifier in front of another classifier in a ``Pipeline``, and
evaluates both models under white-box, BPDA, gradient-free and
detector-aware attacks, with a plot of robust accuracy against epsilon.
About 30 s on two CPU cores::

    python examples/attractor_digits.py --out attractor_digits.png

See docs/defenses/attractor.md for the method and the MNIST reproduction.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.pipeline import Pipeline

import robustlearn
from robustlearn.datasets import load

#: A network sized for 8 x 8 digits (the MNIST default is 784-500-300-300-300-500-784).
NETWORK = dict(encoder_layers=(128, 64), decoder_layers=(128,), batch_size=32, lr=3e-3,
               eigen_method="power", eigen_margin=0.5, max_iter=5, device="auto")


def scramble_pixels(X, seed):
    """Out-of-distribution images: ``X`` with its pixels shuffled by one fixed permutation."""
    flat = X.reshape(len(X), -1)
    return flat[:, np.random.RandomState(seed).permutation(flat.shape[1])].reshape(X.shape)


def attacks(steps, queries):
    """The attacks of the evaluation; the report's headline is the worst case per example
    over all of them."""
    pgd = {"steps": steps, "rel_stepsize": 2.5 / steps}  # step 2.5 eps / steps (Madry et al.)
    return [
        "fgsm",
        ("linf-pgd", pgd),                                        # through the passes
        ("linf-pgd", {**pgd, "surface": "bpda-identity"}),        # BPDA through the loop
        ("square", {"n_queries": queries}),                       # gradient-free
        ("detector-aware-pgd", {"steps": steps}),                 # misclassified, not flagged
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="pre-training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--n-attack", type=int, default=300, help="test digits attacked")
    parser.add_argument("--steps", type=int, default=20, help="steps of the gradient attacks")
    parser.add_argument("--queries", type=int, default=500, help="queries of Square")
    parser.add_argument("--out", default=None, help="where to save the plot (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load("digits", "train")
    X_test, y_test = load("digits", "test")
    results = {}
    models = {}
    for name, lambda_eig in (("no L_eigen", 0.0), ("L_eigen", 1.0)):
        # a training digit counts as an attractor when the spectral radius of J_f there is
        # below 1 and one pass moves it by less than 20 % (as in the MNIST reproduction)
        clf = robustlearn.make_defense(
            "attractor", **NETWORK, lambda_eig=lambda_eig, attractor_residual_tol=0.2,
            max_epochs=args.epochs, finetune_epochs=args.finetune_epochs, random_state=args.seed,
        ).fit(X, y)
        models[name] = clf
        _, passes, residual = clf.fixed_points(X_test)
        print(f"[{name}] clean accuracy {clf.score(X_test, y_test):.3f}, "
              f"{clf.attractor_fraction_:.0%} of checked training digits are attractors "
              f"(median spectral radius {np.median(clf.train_spectral_radius_):.2f}), "
              f"median spectral norm at test digits {np.median(clf.spectral_norm(X_test)):.2f}, "
              f"median passes {np.median(passes):.0f}, converged {np.mean(residual < clf.tol):.0%}")

    X_ood = scramble_pixels(X_test, args.seed)
    for name, clf in models.items():
        print(f"[{name}] flagged: {clf.detect(X_test).mean():.1%} of test digits, "
              f"{clf.detect(X_ood).mean():.1%} of scrambled digits")

    # the attractor purifier in front of any classifier
    pipe = Pipeline([
        ("purify", robustlearn.make_purifier("attractor", **NETWORK, lambda_eig=1.0,
                                             max_epochs=args.epochs,
                                             finetune_epochs=args.finetune_epochs,
                                             random_state=args.seed)),
        ("clf", robustlearn.make_defense("mlp", hidden_layer_sizes=(64,), max_epochs=30,
                                         random_state=args.seed)),
    ]).fit(X, y)
    print(f"[purifier + mlp] clean accuracy {pipe.score(X_test, y_test):.3f}")

    for name, clf in models.items():
        report = robustlearn.evaluate(clf, X_test, y_test, attacks(args.steps, args.queries),
                                      epsilons=[0, 0.05, 0.1, 0.2], n=args.n_attack,
                                      random_state=args.seed,
                                      metadata={"model": name, "dataset": "digits"})
        results[name] = report
        print(f"\n[{name}]\n{report.to_markdown()}")
    if args.out:
        from robustlearn.evaluation.plotting import plot_comparison

        plot_comparison(results, path=args.out)
        print(f"plot written to {args.out}")
    return models, results


if __name__ == "__main__":
    main()
