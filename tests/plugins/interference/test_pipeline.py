"""The interference pipeline and joint-label arithmetic (pure functions)."""

import pytest
import torch

from robustlearn.plugins.interference.backgrounds import make_background_bank
from robustlearn.plugins.interference.checkpoints import checkpoint_epochs
from robustlearn.plugins.interference.draws import DrawSequence
from robustlearn.plugins.interference.pipeline import (
    class_log_proba,
    decode_joint,
    hard_vote,
    interfere,
    joint_labels,
    salt_and_pepper,
    soft_vote,
    squash,
    white_noise,
)


def test_joint_labels_decode_to_background_and_class():
    y = torch.tensor([0, 3, 9, 9, 1])
    k = torch.tensor([0, 0, 5, 9, 7])
    joint = joint_labels(y, k, 10)
    assert joint.tolist() == [0, 3, 59, 99, 71]
    background, cls = decode_joint(joint, 10)
    assert background.tolist() == k.tolist() and cls.tolist() == y.tolist()


def test_class_log_proba_marginalises_over_backgrounds():
    logits = torch.randn(4, 3 * 5)
    p = torch.exp(class_log_proba(logits, 5))
    manual = torch.softmax(logits, 1).reshape(4, 3, 5).sum(1)
    assert torch.allclose(p, manual, atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-6)


def test_soft_vote_is_the_mean_probability():
    log_p = torch.log_softmax(torch.randn(6, 4, 3), dim=2)
    assert torch.allclose(torch.exp(soft_vote(log_p)), torch.exp(log_p).mean(0), atol=1e-6)


def test_hard_vote_counts_argmax_mod_classes():
    joint = torch.full((3, 1, 2 * 3), -10.0)
    joint[0, 0, 3 + 1] = 5  # background 1, class 1
    joint[1, 0, 0 + 1] = 5  # background 0, class 1
    joint[2, 0, 3 + 2] = 5  # background 1, class 2
    scores = hard_vote(joint, 3)
    assert scores.argmax(1).item() == 1
    assert torch.exp(scores)[0, 1].item() == pytest.approx(2 / 3, abs=1e-2)


def test_noise_keeps_the_unit_interval_and_replaces_the_stated_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 1, 4, 4, generator=g)
    noisy = white_noise(x, 0.9, g)
    assert noisy.min() >= 0 and noisy.max() <= 1
    sp = salt_and_pepper(x, 0.4, g)
    replaced = (sp != x).float().mean().item()
    assert replaced == pytest.approx(0.4, abs=0.02)
    assert set(torch.unique(sp[sp != x]).tolist()) <= {0.0, 1.0}


def test_salt_and_pepper_straight_through_passes_the_gradient():
    x = torch.rand(8, 1, 4, 4, requires_grad=True)
    salt_and_pepper(x, 0.5, torch.Generator().manual_seed(0)).sum().backward()
    assert (x.grad == 0).any()
    x.grad = None
    g = torch.Generator().manual_seed(0)
    salt_and_pepper(x, 0.5, g, straight_through=True).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_squashes_and_superposition():
    x = torch.full((1, 1, 2, 2), 0.5)
    b = torch.ones_like(x)
    assert torch.allclose(squash(x, "exp"), torch.exp(x))
    assert torch.allclose(squash(x, "tanh"), torch.tanh(torch.tensor(0.5)).expand_as(x))
    assert torch.allclose(interfere(x, b, alpha=0.3, squash_kind="none"), x + 0.3)
    with pytest.raises(ValueError, match="squash"):
        squash(x, "relu")


def test_background_banks():
    import numpy as np

    X = np.random.rand(6, 1, 4, 4).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    bank = make_background_bank("training", X, y, (1, 4, 4), 0)
    assert bank.n_labels == 3 and bank.labels.tolist() == y.tolist()
    bank = make_background_bank(4, X, y, (1, 4, 4), 0)
    assert bank.n_labels == 4 and bank.images.shape == (4, 1, 4, 4)
    assert 0 <= bank.images.min() and bank.images.max() <= 1
    images, labels = bank.draw(10, torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 4, 4) and labels.max() < 4
    bank = make_background_bank(X[:2].reshape(2, -1), X, y, (1, 4, 4), 0)
    assert bank.n_labels == 2 and bank.images.shape == (2, 1, 4, 4)


def test_checkpoint_epochs_and_draw_sequence():
    assert checkpoint_epochs(20, 3, 2) == [16, 18, 20]
    assert checkpoint_epochs(5, 1, 1) == [5]
    draws = DrawSequence(7)
    first = torch.rand(3, generator=draws.next_generator("cpu"))
    second = torch.rand(3, generator=draws.next_generator("cpu"))
    assert not torch.equal(first, second)
    draws.reset()
    assert torch.equal(first, torch.rand(3, generator=draws.next_generator("cpu")))
    fixed = [torch.rand(3, generator=draws.fixed_generator(0, "cpu")) for _ in range(2)]
    assert torch.equal(*fixed)
