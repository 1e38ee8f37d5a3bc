"""The reproducible sequence of random draws behind a stochastic defense's predictions.

An interference network predicts by voting over random backgrounds, so two
calls on the same input may disagree: that randomness is the defense. To make
a run reproducible anyway, call number ``i`` (counted from the end of ``fit``,
of ``calibrate_detector`` or of ``reset_draws``) draws from a generator seeded with
``SeedSequence([seed, i])``, ``seed`` being drawn from ``random_state`` at fit
time. Two defenses fitted with the same ``random_state`` make the same
predictions call after call; one defense asked twice draws twice.
"""

from __future__ import annotations

import numpy as np
import torch


def generator_for(seed_words, device):
    """A ``torch.Generator`` on ``device`` seeded from a tuple of ints via ``SeedSequence``."""
    state = np.random.SeedSequence(list(seed_words)).generate_state(2, dtype=np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


class DrawSequence:
    """Counts the stochastic forward passes of a fitted defense and seeds each one.

    Parameters
    ----------
    seed : int
        Drawn from the defense's ``random_state`` at fit time.

    Notes
    -----
    A pickle keeps the counter, as a pickled ``RandomState`` keeps its state.
    """

    #: Stream of the fixed-randomness surface, apart from the deployed draws.
    FIXED_STREAM = 2**31

    def __init__(self, seed):
        self.seed = int(seed)
        self.calls = 0

    def next_generator(self, device):
        """The generator of the next call (and count it)."""
        generator = generator_for((self.seed, self.calls), device)
        self.calls += 1
        return generator

    def fixed_generator(self, draw, device):
        """The generator of fixed draw number ``draw`` (the same on every call)."""
        return generator_for((self.seed, self.FIXED_STREAM, int(draw)), device)

    def reset(self):
        """Restart the sequence at call 0."""
        self.calls = 0

    def to_state(self):
        """The seed and the position in the sequence, for a safe model file."""
        return {"seed": self.seed, "calls": self.calls}

    @classmethod
    def from_state(cls, state):
        """The sequence saved by :meth:`to_state`, at the same position.

        Raises
        ------
        ValueError
            If the seed or the position is not a non-negative int.
        """
        values = (state["seed"], state["calls"])
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ValueError(f"the draw seed and call count must be ints >= 0, got {values}")
        sequence = cls(values[0])
        sequence.calls = values[1]
        return sequence

    def __repr__(self):
        return f"DrawSequence(seed={self.seed}, calls={self.calls})"
