"""The skorch training engine behind every defense and purifier.

:class:`DefenseNet` is a skorch ``NeuralNetClassifier`` whose training step
asks the defense for its loss (cross-entropy plus the defense's own terms), so
skorch keeps callbacks, history and progress bars while the defense owns the
objective; :class:`PurifierNet` is the same engine for estimators trained
without labels (purifiers, autoencoders). :func:`build_net` configures either
from an estimator's shared training parameters, so defenses and purifiers get
the same optimizers, callbacks, progress bars and routed ``optimizer__*``
settings. :class:`TensorBatchIterator` serves mini-batches by slicing tensors,
avoiding the per-sample collation of a ``DataLoader`` on small images.
"""

from __future__ import annotations

import logging
import sys

import torch
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import Callback, ProgressBar
from skorch.dataset import unpack_data
from skorch.utils import to_device

from .validation import check_choice, check_device, check_float, check_int, check_random_state

log = logging.getLogger(__name__)

#: Optimizers a defense's or purifier's ``optimizer`` parameter names.
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


class EpochProgress(Callback):
    """One progress bar over the epochs of a training run, naming the model.

    Shown only when stderr is a terminal (a log file gets the start and end
    lines of the ``robustlearn`` logger instead); the bar shows the epoch, the
    training loss and the time left.

    Parameters
    ----------
    description : str
        What is training, e.g. ``"fit MLPClassifier"``.
    """

    def __init__(self, description="fit"):
        self.description = description

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        from tqdm.auto import tqdm

        self.start_ = len(net.history)
        # a continued run (partial_fit, a second training phase) has no known length here
        total = None if self.start_ else net.max_epochs
        self.bar_ = tqdm(total=total, desc=self.description, unit="epoch",
                         leave=False, disable=not sys.stderr.isatty(), dynamic_ncols=True)
        log.info("%s: %s on %d samples", self.description,
                 f"{total} epochs" if total else "more epochs", len(X) if X is not None else 0)

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("train_loss")
        if loss is not None:
            self.bar_.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.bar_.close()
        epochs = len(net.history) - self.start_
        seconds = sum(row.get("dur", 0.0) for row in net.history[self.start_:])
        loss = net.history[-1].get("train_loss") if len(net.history) else None
        log.info("%s: %d epochs in %.1f s, final loss %s", self.description, epochs, seconds,
                 "-" if loss is None else f"{loss:.4g}")


class TensorBatchIterator:
    """Mini-batches of a skorch ``Dataset`` holding tensors, by slicing.

    Parameters
    ----------
    dataset : skorch.dataset.Dataset
        Its ``X`` and ``y`` are tensors of equal length (``y`` may be None).
    batch_size : int
    shuffle : bool
        Draw a fresh permutation from torch's global RNG at every epoch (seeded by
        the defense's ``random_state``).
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, **_ignored):
        self.X = dataset.X
        self.y = dataset.y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self):
        n = len(self.X)
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                index = slice(start, start + self.batch_size)
            else:
                index = order[start : start + self.batch_size]
            yb = self.y[index] if self.y is not None else torch.zeros(0)
            yield self.X[index], yb


class _ObjectiveStep:
    """Training step whose loss comes from ``training_objective(module, X, y)``."""

    def __init__(self, *args, training_objective=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.training_objective = training_objective

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi = to_device(Xi, self.device)
        yi = to_device(yi, self.device) if self._labelled else None
        if self.training_objective is None:
            y_pred = self.infer(Xi)
            loss = self.get_loss(y_pred, Xi if yi is None else yi, X=Xi, training=True)
        else:
            loss, y_pred = self.training_objective(self.module_, Xi, yi)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}


class DefenseNet(_ObjectiveStep, NeuralNetClassifier):
    """skorch classifier whose loss comes from ``training_objective(module, X, y)``.

    Parameters
    ----------
    training_objective : callable
        ``training_objective(module, X, y) -> (loss, logits)``; defaults to
        cross-entropy of ``module(X)``.
    *args, **kwargs
        Passed to :class:`skorch.NeuralNetClassifier`.
    """

    _labelled = True


class PurifierNet(_ObjectiveStep, NeuralNet):
    """skorch net trained without labels: its loss is ``training_objective(module, X, None)``.

    Parameters
    ----------
    training_objective : callable
        ``training_objective(module, X, None) -> (loss, output)``; defaults to
        the criterion between ``module(X)`` and ``X`` (an autoencoder's
        reconstruction error).
    *args, **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    _labelled = False


def check_training_params(estimator) -> None:
    """Validate the shared training parameters of a defense or purifier.

    ``max_epochs``, ``batch_size``, ``lr``, ``optimizer``, ``device``,
    ``random_state``, ``verbose`` and ``callbacks``: what :func:`build_net`
    and the seeding of ``fit`` read. Raises ``ValueError`` or ``TypeError``
    naming the parameter; ``fit`` calls it before any work.

    Parameters
    ----------
    estimator : estimator
        Holds the parameters above.
    """
    check_int(estimator.max_epochs, "max_epochs", low=1)
    check_int(estimator.batch_size, "batch_size", low=1)
    check_float(estimator.lr, "lr", low=0, low_open=True)
    check_choice(estimator.optimizer, "optimizer", OPTIMIZERS)
    check_device(estimator.device)
    check_random_state(estimator.random_state)
    check_int(estimator.verbose, "verbose", low=0)
    callbacks = estimator.callbacks
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"callbacks must be a list of skorch callbacks, got {type(callbacks).__name__}"
        )


def build_net(estimator, net_class, module, *, objective, criterion, device=None,
              description=None, routed=None, **extra):
    """A skorch net configured from an estimator's shared training parameters.

    Reads ``optimizer``, ``lr``, ``max_epochs``, ``batch_size``, ``device``,
    ``verbose`` and ``callbacks`` (when the estimator has it) from
    ``estimator``: ``verbose=1`` shows one bar over the epochs (on a terminal)
    and a log line, ``verbose=2`` adds skorch's per-epoch table and per-batch
    bars. Mini-batches are shuffled tensor slices (:class:`TensorBatchIterator`)
    and there is no internal validation split (defenses hold out their own
    calibration data).

    Parameters
    ----------
    estimator : estimator
        Holds the training parameters above (already validated).
    net_class : {DefenseNet, PurifierNet} or a subclass
    module : torch.nn.Module
    objective : callable or None
        The training objective (see :class:`DefenseNet`).
    criterion : type
        skorch's criterion (used when ``objective`` is None and for scoring).
    device : torch.device, optional
        Default: ``estimator.device`` resolved (``"auto"`` is CUDA when available).
    description : str, optional
        Name on the progress bar; default ``"fit <class name>"``.
    routed : dict, optional
        skorch-routed parameters (``optimizer__weight_decay``, ...).
    **extra
        Further keyword arguments of ``net_class`` (e.g. ``classes``).

    Returns
    -------
    skorch.NeuralNet
        Not initialised yet.
    """
    from .device import resolve_device

    verbose = int(estimator.verbose)
    callbacks = []
    if verbose:
        callbacks.append(("epochs", EpochProgress(description
                                                  or f"fit {type(estimator).__name__}")))
    if verbose >= 2:
        callbacks.append(("progress", ProgressBar()))
    callbacks += list(getattr(estimator, "callbacks", None) or [])
    return net_class(
        module=module,
        criterion=criterion,
        optimizer=OPTIMIZERS[estimator.optimizer],
        lr=estimator.lr,
        max_epochs=estimator.max_epochs,
        batch_size=estimator.batch_size,
        train_split=None,
        iterator_train=TensorBatchIterator,
        iterator_train__shuffle=True,
        iterator_valid=TensorBatchIterator,
        callbacks=callbacks,
        device=str(device if device is not None else resolve_device(estimator.device)),
        verbose=int(verbose >= 2),
        training_objective=objective,
        **extra,
        **dict(routed or {}),
    )


class FittedNetMixin:
    """Fitted-state and pickling for estimators whose torch module lives in a skorch ``net_``.

    ``module_`` is an alias of ``net_.module_``: it is left out of the pickle
    (skorch pickles the module, mapping CUDA tensors to the CPU when loaded on a
    machine without CUDA) and restored, in eval mode, on load. An estimator
    without ``net_`` (loaded from a safe model file, or wrapping a user's
    module) pickles ``module_`` itself.
    """

    def __sklearn_is_fitted__(self):
        return hasattr(self, "module_")

    def __getstate__(self):
        state = self.__dict__.copy()
        if "net_" in state:
            state.pop("module_", None)
        return state

    def to(self, device):
        """Move the fitted network to ``device`` and make it the ``device`` parameter.

        The PyTorch idiom, for a fitted estimator: ``clf.to("cuda")`` after
        fitting on the CPU, or ``clf.to("cpu")`` before sharing a model fitted
        on a GPU. ``set_params(device=...)`` alone, as in scikit-learn and
        skorch, only chooses the device of the next ``fit``.

        Parameters
        ----------
        device : str or torch.device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.

        Returns
        -------
        self
        """
        from sklearn.utils.validation import check_is_fitted

        from .device import resolve_device

        check_is_fitted(self)
        target = resolve_device(device)
        self.module_.to(target)
        if "net_" in self.__dict__:
            self.net_.device = str(target)
        self.device = str(target) if device != "auto" else device
        return self

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "net_" in state:
            self.module_ = self.net_.module_
            self.module_.eval()
