"""Audit surfaces of the NEMON defense: maps from images to logits with chosen gradients.

Equilibrium models can look robust because the attack's gradient is wrong
rather than because the model is: a loose solve, a backward pass that
disagrees with the forward one, or an attacker stuck at the equilibrium.
Yang, Pang & Liu, "A Closer Look at the Adversarial Robustness of Deep
Equilibrium Models", NeurIPS 2022, recommend attacking the exact gradient
with a tight solve, the unrolled solver, and intermediate iterates; these are
those three maps, listed by :meth:`NEMONClassifier.attack_surfaces`.
"""

from __future__ import annotations


def implicit_logits(estimator, x, tol=1e-5, max_iter=2000):
    """Logits with forward and adjoint solves at ``tol`` (the exact implicit gradient)."""
    module = estimator.module_
    module.eval()
    z, _ = module.solve(estimator._as_batch(x), backward="implicit", tol=tol, backward_tol=tol,
                        max_iter=max_iter, backward_max_iter=max_iter)
    return module.readout(z)


def unrolled_logits(estimator, x):
    """Logits with autograd through every forward iteration (the estimator's ``tol``)."""
    module = estimator.module_
    module.eval()
    estimator._configure(module)
    z, _ = module.solve(estimator._as_batch(x), backward="unrolled")
    return module.readout(z)


def iterate_logits(estimator, x, k):
    """Readout of the ``k``-th averaged iterate from 0, differentiated through the ``k`` steps.

    Always the averaged iteration, whatever the model's solver: it needs tens
    of iterations, so its early iterates are a truncated solve worth attacking
    (the Jacobi iteration is within the tolerance after about five).
    """
    module = estimator.module_
    module.eval()
    estimator._configure(module)
    return module.readout(module.iterate(estimator._as_batch(x), k, method="averaged"))
