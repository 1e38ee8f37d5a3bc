"""Reproducible randomness: one integer seed per fit, scoped torch RNG state."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state


def seed_from(random_state) -> int:
    """Draw a 32-bit seed from ``random_state`` (None, int or RandomState), as scikit-learn does."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextlib.contextmanager
def torch_seed(seed: int):
    """Run a block with torch's global CPU (and CUDA) RNG seeded, restoring the state afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np_state = np.random.get_state()
        try:
            yield
        finally:
            np.random.set_state(np_state)
