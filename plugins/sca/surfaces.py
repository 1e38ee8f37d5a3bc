"""Adaptive-attack surfaces of the SCA defense: maps from images in [0, 1] to logits.

Robustness that grows with the number of inner steps T is the classic
signature of gradients masked by an iterative procedure (Athalye, Carlini &
Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018; the
method card's section 5). These surfaces let an attacker keep the real T-step
forward pass and replace the loop's gradient (BPDA), or differentiate the same
weights run for a different number of steps T_att.
"""

from __future__ import annotations


def deployed_T(estimator) -> int:
    """Inner steps the fitted estimator predicts with (``T_predict``, else ``T``)."""
    return int(estimator.T if estimator.T_predict is None else estimator.T_predict)


def loop_bpda_logits(estimator, x, T_backward):
    """Logits at the deployed T; each layer's loop differentiated as ``T_backward`` steps.

    ``T_backward=0`` is the identity through the loop (the gradient of ReLU(W_f x + b_f)).
    """
    return estimator.module_(estimator._as_batch(x), deployed_T(estimator), int(T_backward))


def network_bpda_logits(estimator, x, T_backward):
    """Logits at the deployed T with the gradient of the whole network run at ``T_backward``."""
    return estimator.module_.forward_bpda(estimator._as_batch(x), deployed_T(estimator),
                                          int(T_backward))


def unrolled_logits(estimator, x, T):
    """Logits of the same weights run for ``T`` steps, forward and backward (a transfer source)."""
    return estimator.module_(estimator._as_batch(x), int(T))
