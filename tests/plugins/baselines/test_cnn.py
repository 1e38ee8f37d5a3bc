"""The ``cnn`` baseline: accuracy on digits with its defaults, and its architecture."""

import numpy as np
import pytest
import torch

import robustlearn
from robustlearn.plugins.baselines import CNNClassifier


@pytest.mark.slow
def test_default_cnn_reaches_96_percent_on_digits(digits):
    """Issue 2 evidence: ``cnn`` >= 96 % test accuracy on digits with a fixed seed."""
    X, y, X_test, y_test = digits
    est = robustlearn.make_defense("cnn", random_state=0, device="cpu").fit(X, y)
    assert est.score(X_test, y_test) >= 0.96


def test_conv_blocks_follow_channels(digits):
    X, y, _, _ = digits
    est = CNNClassifier(channels=(4, 6, 8), hidden=12, max_epochs=1, random_state=0,
                        device="cpu").fit(X[:100], y[:100])
    convs = [m for m in est.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 4, (3, 3)), (4, 6, (3, 3)), (6, 8, (3, 3))]
    linear = [m for m in est.module_.modules() if isinstance(m, torch.nn.Linear)]
    # 8x8 pooled three times: 4x4, 2x2, 1x1
    assert [(m.in_features, m.out_features) for m in linear] == [(8, 12), (12, 10)]


@pytest.mark.parametrize("shape", [(1, 1, 64), (3, 7, 5), (1, 28, 28)])
def test_odd_and_flat_input_shapes(shape):
    rng = np.random.RandomState(0)
    y = np.arange(80) % 2
    X = rng.uniform(0, 0.5, size=(80, *shape)).astype(np.float32)
    X[y == 1] += 0.5  # brighter images are class 1
    est = CNNClassifier(channels=(4, 4), hidden=8, max_epochs=10, batch_size=16, lr=1e-2,
                        random_state=0, device="cpu").fit(X, y)
    assert est.input_shape_ == shape
    assert est.score(X, y) > 0.9
