"""Writing a defense: a small iterative, stochastic defense, and the report evaluate gives it.

The class below is the one docs/writing-a-defense.md walks through (the page
shows it verbatim; tests/test_examples.py checks they agree). Run::

    python examples/noisy_equilibrium.py --epochs 15 --n 100

to train it on the embedded digits and print the robustness report of
``robustlearn.evaluate`` called without attacks: it picks the adaptive attacks
the defense's tags and surfaces call for by itself.
"""

# --8<-- [start:defense]
import torch
import torch.nn.functional as F

import robustlearn
from robustlearn import BaseDefense, DefenseTags, Surface
from robustlearn.fixed_point import fixed_point


class NoisyEquilibrium(BaseDefense):
    """Gaussian input noise, then an equilibrium layer z = tanh(0.9 W z + U x), then a readout."""

    def __init__(self, width=64, sigma=0.1, max_iter=30, **kwargs):
        self.width, self.sigma, self.max_iter = width, sigma, max_iter
        super().__init__(**kwargs)

    def _build_module(self, input_shape, n_classes):
        d = input_shape[0] * input_shape[1] * input_shape[2]
        W = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(self.width, self.width))
        return torch.nn.ModuleDict({"U": torch.nn.Linear(d, self.width), "W": W,
                                    "head": torch.nn.Linear(self.width, n_classes)})

    def _logits(self, module, x, backward="implicit", noise=True):
        x = x.flatten(1)
        if noise:
            x = x + self.sigma * torch.randn_like(x)
        u = module["U"](x)
        z, _ = fixed_point(lambda z: torch.tanh(0.9 * module["W"](z) + u), torch.zeros_like(u),
                           backward=backward, max_iter=self.max_iter, tol=1e-4, warn=False)
        return module["head"](z)

    def _training_loss(self, module, X, y):
        logits = self._logits(module, X)
        return F.cross_entropy(logits, y), logits

    def _forward(self, x):
        return self._logits(self.module_, x)

    def __robustlearn_tags__(self):
        return DefenseTags(iterative=True, stochastic=True)

    def attack_surfaces(self):
        def one_step(x):
            return self._logits(self.module_, self._as_batch(x), backward="one-step")

        def noise_free(x):
            return self._logits(self.module_, self._as_batch(x), noise=False)

        return {**super().attack_surfaces(),
                "bpda-one-step": Surface(one_step, "bpda", "one layer application backward"),
                "noise-free": Surface(noise_free, "transfer", "the network without input noise")}
# --8<-- [end:defense]


def main(argv=None):
    """Train the defense on digits, evaluate it with the default ladder, print the report."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n", type=int, default=100, help="test digits to attack")
    parser.add_argument("--epsilons", default="0,0.05,0.1")
    args = parser.parse_args(argv)
    X, y = robustlearn.load_dataset("digits", "train")
    X_test, y_test = robustlearn.load_dataset("digits", "test")
    model = NoisyEquilibrium(max_epochs=args.epochs, random_state=0).fit(X, y)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    report = robustlearn.evaluate(model, X_test, y_test, epsilons=epsilons, n=args.n)
    print(report.to_markdown())
    return model, report


if __name__ == "__main__":
    main()
