"""The shared skorch engine: defenses and purifiers are configured by one ``build_net``."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from robustlearn.training import OPTIMIZERS, DefenseNet, PurifierNet, build_net


class _Settings:
    """The shared training parameters an estimator holds."""

    def __init__(self, **params):
        defaults = dict(optimizer="adam", lr=1e-2, max_epochs=30, batch_size=32, device="cpu",
                        verbose=0, callbacks=None)
        self.__dict__.update({**defaults, **params})


class _CountEpochs(Callback):
    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


def test_purifier_net_learns_without_labels():
    torch.manual_seed(0)
    X = torch.rand(128, 8)
    X[:, 4:] = X[:, :4]  # redundant half: a 4-unit bottleneck can reconstruct it
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 8))
    before = float(((module(X) - X) ** 2).mean())
    net = build_net(_Settings(), PurifierNet, module, objective=None,
                    criterion=torch.nn.MSELoss)
    net.fit(X, None)
    after = float(((net.module_(X) - X) ** 2).mean())
    assert after < 0.2 * before


def test_build_net_reads_the_estimators_training_parameters():
    counter = _CountEpochs()
    settings = _Settings(optimizer="sgd", lr=0.5, max_epochs=3, batch_size=7,
                         callbacks=[("count", counter)])
    net = build_net(settings, DefenseNet, torch.nn.Linear(4, 2), objective=None,
                    criterion=torch.nn.CrossEntropyLoss, classes=np.arange(2),
                    routed={"optimizer__momentum": 0.9})
    X = torch.rand(20, 4)
    y = (X[:, 0] > 0.5).long()
    net.fit(X, y)
    assert net.optimizer is OPTIMIZERS["sgd"] and net.batch_size == 7
    assert net.optimizer_.param_groups[0]["momentum"] == 0.9
    assert net.optimizer_.param_groups[0]["lr"] == 0.5
    assert counter.epochs_ == 3 and len(net.history) == 3


def test_objective_receives_no_labels_in_a_purifier_net():
    seen = []

    def objective(module, X, y):
        seen.append(y)
        output = module(X)
        return ((output - X) ** 2).mean(), output

    net = build_net(_Settings(max_epochs=1), PurifierNet, torch.nn.Linear(3, 3),
                    objective=objective, criterion=torch.nn.MSELoss)
    net.fit(torch.rand(10, 3), None)
    assert seen and all(y is None for y in seen)


@pytest.mark.parametrize("verbose, names", [(0, set()), (1, {"epochs"}),
                                            (2, {"epochs", "progress"})])
def test_verbosity_adds_progress_callbacks(verbose, names):
    net = build_net(_Settings(verbose=verbose), PurifierNet, torch.nn.Linear(3, 3),
                    objective=None, criterion=torch.nn.MSELoss)
    assert {name for name, _ in net.callbacks} == names
