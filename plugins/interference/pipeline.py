"""The interference input pipeline and the joint-label arithmetic, as small pure functions.

Xiong et al., "Robust and Efficient Interference Neural Networks for Defending
Against Adversarial Attacks in ImageNet", arXiv 2310.05947 (2023), and the
authors' public CIFAR-10/MNIST scripts (github.com/xiongyunuo/INN, MIT): every
image is corrupted with white noise and salt-and-pepper noise, superposed with a
labelled background image, squashed, and classified into ``K * C`` joint classes
``C * k + y`` (background label k, class y).

Every function that draws random numbers takes an explicit ``torch.Generator``
(or None for torch's global generator, which ``fit`` seeds), so one seed fixes
a draw.
"""

from __future__ import annotations

import torch

#: Squashing nonlinearities of the authors' scripts, applied after the superposition.
SQUASHES = ("exp", "tanh", "none")


def _uniform(x, generator):
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def white_noise(x, beta, generator=None):
    """``(x + beta * U[0, 1)) / (1 + beta)``: uniform white noise that keeps x in [0, 1].

    The authors' ``(x + 0.2 U) / 1.2`` (CIFAR-10) and ``(x + 0.9 U) / 1.9`` (MNIST).
    """
    if beta == 0:
        return x
    return (x + beta * _uniform(x, generator)) / (1.0 + beta)


def salt_and_pepper(x, gamma, generator=None, straight_through=False):
    """Replace each value, with probability ``gamma``, by 0 or 1 with equal odds.

    Parameters
    ----------
    x : torch.Tensor
    gamma : float
        Replacement probability (0.2 on CIFAR-10, 0.4 on MNIST in the authors' scripts).
    generator : torch.Generator, optional
    straight_through : bool, default=False
        Forward the corrupted values but pass the gradient through as if nothing were
        replaced (BPDA, Athalye, Carlini & Wagner, ICML 2018): replaced pixels
        otherwise have zero gradient.
    """
    if gamma == 0:
        return x
    replaced = _uniform(x, generator) < gamma
    value = (_uniform(x, generator) < 0.5).to(x.dtype)
    out = torch.where(replaced, value, x)
    if straight_through:
        return x + (out - x).detach()
    return out


def squash(x, kind):
    """The authors' squashing: ``exp(x)`` (MNIST), ``tanh(1.5 (x - 0.5) + 0.5)`` (CIFAR-10)."""
    if kind == "exp":
        return torch.exp(x)
    if kind == "tanh":
        return torch.tanh(1.5 * (x - 0.5) + 0.5)
    if kind == "none":
        return x
    raise ValueError(f"squash must be one of {SQUASHES}, got {kind!r}")


def interfere(x, backgrounds, *, alpha, beta=0.0, gamma=0.0, squash_kind="exp",
              generator=None, straight_through=False):
    """The whole input pipeline, in the order of the authors' CIFAR-10 script.

    white noise, then salt-and-pepper, then ``+ alpha * background``, then the squash.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W)
        Images in [0, 1].
    backgrounds : torch.Tensor of shape (n, C, H, W)
        One background per image (already drawn).
    alpha : float
        Background coefficient (0.3 on MNIST, -0.2 on CIFAR-10 in the authors' scripts).
    beta, gamma : float
        White-noise intensity and salt-and-pepper probability (0 disables them).
    squash_kind : {"exp", "tanh", "none"}
    generator : torch.Generator, optional
    straight_through : bool
        BPDA through salt-and-pepper (see :func:`salt_and_pepper`).

    Returns
    -------
    torch.Tensor of shape (n, C, H, W)
    """
    x = white_noise(x, beta, generator)
    x = salt_and_pepper(x, gamma, generator, straight_through=straight_through)
    return squash(x + alpha * backgrounds, squash_kind)


def joint_labels(y, background_labels, n_classes):
    """Joint label ``n_classes * k + y`` of class ``y`` on a background labelled ``k``."""
    return n_classes * background_labels + y


def decode_joint(index, n_classes):
    """``(background label, class)`` of joint indices: ``divmod(index, n_classes)``."""
    return torch.div(index, n_classes, rounding_mode="floor"), index % n_classes


def class_log_proba(joint_logits, n_classes):
    """Log-probability of each class, marginalised over backgrounds.

    ``log p(y) = log sum_k softmax(joint_logits)[C k + y]``.

    Parameters
    ----------
    joint_logits : torch.Tensor of shape (n, K * n_classes)
    n_classes : int

    Returns
    -------
    torch.Tensor of shape (n, n_classes)
    """
    n = joint_logits.shape[0]
    log_joint = torch.log_softmax(joint_logits, dim=1).reshape(n, -1, n_classes)
    return torch.logsumexp(log_joint, dim=1)


def soft_vote(class_log_probas):
    """Log of the mean class probability over votes (axis 0): a soft vote.

    Parameters
    ----------
    class_log_probas : torch.Tensor of shape (votes, n, C)
    """
    votes = class_log_probas.shape[0]
    return torch.logsumexp(class_log_probas, dim=0) - torch.log(
        torch.tensor(float(votes), dtype=class_log_probas.dtype, device=class_log_probas.device)
    )


#: Weight of the soft vote that breaks ties of a hard vote (far below one vote).
TIE_BREAK = 1e-3


def hard_vote(joint_logits, n_classes):
    """Log of vote fractions of ``argmax(joint) mod C`` over votes (axis 0), as the authors vote.

    Ties are broken by the soft vote, added with weight :data:`TIE_BREAK`, which
    is also the only path a gradient can take (a hard vote is piecewise constant).

    Parameters
    ----------
    joint_logits : torch.Tensor of shape (votes, n, K * C)
    n_classes : int

    Returns
    -------
    torch.Tensor of shape (n, C)
    """
    votes, n, _ = joint_logits.shape
    winners = joint_logits.argmax(dim=2) % n_classes
    counts = torch.nn.functional.one_hot(winners, n_classes).to(joint_logits.dtype).mean(dim=0)
    soft = torch.exp(soft_vote(class_log_proba(joint_logits.flatten(0, 1), n_classes)
                               .reshape(votes, n, n_classes)))
    return torch.log(counts + TIE_BREAK * soft)
