"""Snapshots of the network at the end of chosen epochs, for voting over checkpoints.

The authors save a checkpoint every 30 of 300 epochs and vote over the last
three (CIFAR-10 script); the ImageNet paper soft-votes over K epochs.
"""

from __future__ import annotations

import copy

from skorch.callbacks import Callback


def checkpoint_epochs(max_epochs, n_checkpoints, interval):
    """Epochs (1-based) whose end is snapshotted: the last ``n_checkpoints``, ``interval`` apart.

    >>> checkpoint_epochs(20, 3, 2)
    [16, 18, 20]
    """
    epochs = [max_epochs - i * interval for i in range(n_checkpoints)]
    return sorted(e for e in epochs if e >= 1)


class CheckpointSnapshots(Callback):
    """skorch callback keeping a frozen, evaluation-mode copy of the module at given epochs.

    Parameters
    ----------
    epochs : list of int
        1-based epochs after which the module is copied.

    Attributes
    ----------
    snapshots_ : list of torch.nn.Module
        The copies, in epoch order, with ``requires_grad`` off.
    """

    def __init__(self, epochs):
        self.epochs = epochs

    def initialize(self):
        self.snapshots_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) in set(self.epochs):
            self.snapshots_.append(frozen(copy.deepcopy(net.module_)))


def frozen(module):
    """``module`` in evaluation mode with ``requires_grad`` off: a checkpoint voted over."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
