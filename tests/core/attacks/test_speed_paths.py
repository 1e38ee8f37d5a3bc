"""Shortcuts that make attacks cheaper without changing what they find.

- :meth:`Victim.channels_last` runs a convolutional victim in channels-last
  memory layout and leaves the estimator exactly as it was;
- FAB with ``stop_at`` stops iterating on an image once it is fooled within
  the bound, which is all AutoAttack asks of it.
"""

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn.attacks.fab import fab
from robustlearn.attacks.victim import Victim


@pytest.fixture(scope="module")
def fitted_cnn(digits):
    X, y, _, _ = digits
    return robustlearn.make_defense("cnn", channels=(8,), hidden=32, max_epochs=10,
                                    random_state=0, device="cpu").fit(X, y)


def _images(victim, X):
    return torch.from_numpy(np.ascontiguousarray(
        X.reshape((len(X),) + victim.input_shape), dtype=np.float32))


def test_channels_last_switches_the_layout_and_restores_the_estimator(fitted_cnn, digits_test):
    assert fitted_cnn.score(*digits_test) > 0.8  # the victim learned
    victim = Victim(fitted_cnn)
    x = _images(victim, digits_test[0][:40])
    conv = next(m for m in fitted_cnn.module_.modules() if isinstance(m, torch.nn.Conv2d))
    grad = torch.zeros_like(conv.weight)  # a gradient left by training must survive too
    conv.weight.grad = grad
    params = {name: (p.detach().clone(), p.stride(), p.requires_grad)
              for name, p in fitted_cnn.module_.named_parameters()}
    with torch.no_grad():
        before = victim.logits(x)
    with victim.channels_last(x):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            inside = victim.logits(x)
    torch.testing.assert_close(inside, before, rtol=1e-4, atol=1e-4)
    for name, p in fitted_cnn.module_.named_parameters():
        value, stride, requires_grad = params[name]
        assert torch.equal(p.detach(), value) and p.stride() == stride
        assert p.requires_grad == requires_grad
    assert conv.weight.grad is grad and grad.stride() == conv.weight.stride()
    conv.weight.grad = None


def test_channels_last_leaves_networks_without_convolutions_alone(fitted_mlp, digits_test):
    victim = Victim(fitted_mlp)
    x = _images(victim, digits_test[0][:10])
    pointers = [p.data_ptr() for p in fitted_mlp.module_.parameters()]
    with victim.channels_last(x.view(len(x), 1, 8, 8)):
        assert [p.data_ptr() for p in fitted_mlp.module_.parameters()] == pointers


def test_channels_last_autoattack_matches_the_original_layout(fitted_cnn, digits_test):
    X, y = digits_test[0][:60], digits_test[1][:60]
    attack = robustlearn.make_attack("autoattack", epsilon=0.1, estimator=fitted_cnn, steps=20,
                                     n_target_classes=2, n_queries=100, random_state=0)
    adv = attack.transform(X, y)
    robust = (fitted_cnn.predict(adv) == y).mean()
    assert robust < fitted_cnn.score(X, y)  # the attack worked
    # every returned image that fools was checked in the original layout
    clean_ok = fitted_cnn.predict(X) == y
    changed = np.any(adv != X, axis=tuple(range(1, X.ndim)))
    assert np.all(fitted_cnn.predict(adv[changed & clean_ok]) != y[changed & clean_ok])


def test_fab_stop_at_fools_the_same_images_within_the_bound(fitted_mlp, digits_test):
    victim = Victim(fitted_mlp)
    X, y = digits_test
    x = _images(victim, X[:80])
    labels = torch.from_numpy(victim.encode(y[:80]))
    with torch.no_grad():
        correct = victim.logits(x).argmax(1) == labels
    x, labels = x[correct], labels[correct]
    with victim.frozen():
        _, dist_full = fab(victim.logits, x, labels, norm="linf", steps=30)
        x_stop, dist_stop = fab(victim.logits, x, labels, norm="linf", steps=30, stop_at=0.1)
    within = dist_full <= 0.1
    assert 0 < int(within.sum()) < len(x)  # some images fooled within the bound, some not
    torch.testing.assert_close(within, dist_stop <= 0.1)
    # images never fooled within the bound follow the same trajectory: same result
    torch.testing.assert_close(dist_stop[~within], dist_full[~within])
    with torch.no_grad():
        fooled = victim.logits(x_stop[within]).argmax(1) != labels[within]
    assert bool(fooled.all())
