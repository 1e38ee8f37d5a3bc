"""``AttractorPurifier``: a transformer that replaces each input by its attractor."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from robustlearn.seeding import seed_from, torch_seed
from robustlearn.surfaces import Surface
from robustlearn.training import FittedNetMixin, PurifierNet, build_net, check_training_params
from robustlearn.validation import check_images

from .dynamics import iterate_to_fixed_point, straight_through
from .network import AttractorNetwork
from .objective import AttractorObjective, train_in_phases
from .params import check_attractor_params


class AttractorPurifier(TransformerMixin, FittedNetMixin, BaseEstimator):
    """Purify images by iterating an attractor autoencoder to its fixed point.

    ``fit`` trains its own autoencoder on ``X`` (reconstruction, then
    reconstruction plus L_eigen, as in :class:`AttractorClassifier` but without
    the classification head: labels are not needed); ``transform`` iterates
    x_{k+1} = f(x_k) from each input and returns the final iterates in the
    input's shape. Put it in front of any classifier::

        Pipeline([("purify", make_purifier("attractor")), ("clf", make_defense("mlp"))])

    Alipour & SeyyedSalehi, arXiv 2406.10579 (2024); the purification view is
    that of MagNet's reformer (Meng & Chen, CCS 2017).

    The defaults are the attractor classifier's documented configuration
    (``params.DOCUMENTED_CONFIGURATION``: ``power`` L_eigen, 40 + 20 epochs,
    at most 5 passes).

    Parameters
    ----------
    encoder_layers, decoder_layers, activation, output_activation
        Architecture; see :class:`AttractorClassifier`.
    lambda_eig, eigen_method, eigen_margin, eigen_batch_size, power_iterations, n_probes
        L_eigen settings; see :class:`AttractorClassifier`.
    finetune_epochs : int, default=20
        Epochs with L_eigen after ``max_epochs`` epochs of reconstruction only.
    max_iter : int, default=5
    tol : float, default=1e-4
        Stopping rule of the iterations.
    max_epochs : int, default=40
    batch_size : int, default=32
    lr : float, default=1e-3
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    device : str or torch.device, default="auto"
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
        As for :class:`robustlearn.BaseDefense`: 1 shows a progress bar over the
        epochs, 2 also skorch's per-epoch table.
    callbacks : list of skorch callbacks, optional
        Added to the training engine (the one every defense uses,
        :func:`robustlearn.training.build_net`), e.g. a learning-rate schedule.

    Attributes
    ----------
    n_features_in_ : int
    input_shape_ : tuple of int
    net_ : robustlearn.training.PurifierNet
    module_ : AttractorNetwork
    """

    _test_params = dict(
        encoder_layers=(16, 8), decoder_layers=(16,), max_epochs=20, finetune_epochs=2,
        batch_size=32, lr=3e-3, max_iter=3, eigen_method="power", power_iterations=2,
        eigen_batch_size=4,
    )

    def __init__(
        self,
        encoder_layers=(500, 300, 300),
        decoder_layers=(300, 500),
        activation="elu",
        output_activation="sigmoid",
        lambda_eig=1.0,
        eigen_method="power",
        eigen_margin=0.5,
        eigen_batch_size=16,
        power_iterations=5,
        n_probes=4,
        finetune_epochs=20,
        max_iter=5,
        tol=1e-4,
        *,
        max_epochs=40,
        batch_size=32,
        lr=1e-3,
        optimizer="adam",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.activation = activation
        self.output_activation = output_activation
        self.lambda_eig = lambda_eig
        self.eigen_method = eigen_method
        self.eigen_margin = eigen_margin
        self.eigen_batch_size = eigen_batch_size
        self.power_iterations = power_iterations
        self.n_probes = n_probes
        self.finetune_epochs = finetune_epochs
        self.max_iter = max_iter
        self.tol = tol
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def _validate_params(self):
        check_attractor_params(self)
        check_training_params(self)

    def _build_module(self, input_shape, n_classes=None):
        """The autoencoder for images of ``input_shape`` (no classification head is used)."""
        return AttractorNetwork(
            int(np.prod(input_shape)), tuple(self.encoder_layers), tuple(self.decoder_layers),
            n_classes=1, activation=self.activation, output_activation=self.output_activation,
        )

    def fit(self, X, y=None):
        """Train the autoencoder on images ``X`` (``y`` is ignored).

        Returns
        -------
        self
        """
        self._validate_params()
        X = check_images(X, self, reset=True)
        objective = AttractorObjective.from_estimator(self, lambda_cls=0.0)
        seed = seed_from(self.random_state)
        with torch_seed(seed):
            module = self._build_module(self.input_shape_)
            self.net_ = build_net(self, PurifierNet, module, objective=objective,
                                  criterion=torch.nn.MSELoss)
            self.net_.initialize()
            train_in_phases(self.net_, objective, torch.from_numpy(X), None,
                            int(self.finetune_epochs))
        self.module_ = self.net_.module_
        self.module_.eval()
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _expected_failed_checks(self):
        return {
            "check_transformer_n_iter": (
                "max_iter bounds the passes of the purifying dynamics on each input, not "
                "training iterations, so there is no n_iter_ to report after fit"
            ),
        }

    def purify_surfaces(self):
        """Differentiable image-to-image maps of the purifier, for attacks on a ``Pipeline``.

        ``"default"`` runs the dynamics with gradients through every pass
        (``kind="exact"``); ``"bpda-identity"`` runs them forward and is the
        identity backward (``kind="bpda"``). Both take and return tensors of
        any per-sample shape with ``n_features_in_`` values.

        Returns
        -------
        dict of str to :class:`robustlearn.Surface`
        """
        check_is_fitted(self)
        return {
            "default": Surface(partial(self._purify, backward="unrolled"), "exact",
                               "attractor dynamics, differentiated through every pass"),
            "bpda-identity": Surface(partial(self._purify, backward="identity"), "bpda",
                                     "attractor dynamics forward, identity backward"),
        }

    def _purify(self, x, backward):
        device = next(self.module_.parameters()).device
        flat = x.reshape(x.shape[0], -1).to(device)
        if backward == "identity":
            with torch.no_grad():
                final = iterate_to_fixed_point(self.module_.step, flat,
                                               max_iter=int(self.max_iter), tol=float(self.tol)).x
            return straight_through(final, flat).reshape(x.shape)
        final = iterate_to_fixed_point(self.module_.step, flat, max_iter=int(self.max_iter),
                                       tol=float(self.tol)).x
        return final.reshape(x.shape)

    def transform(self, X):
        """Final iterates of the dynamics from each input, with the input's shape.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)

        Returns
        -------
        ndarray of float32, same shape as ``X``
        """
        check_is_fitted(self)
        images = check_images(X, self, reset=False)
        shape = np.asarray(X).shape
        device = next(self.module_.parameters()).device
        outputs = []
        with torch.no_grad():
            for start in range(0, len(images), max(int(self.batch_size), 256)):
                xb = torch.from_numpy(images[start : start + max(int(self.batch_size), 256)])
                result = iterate_to_fixed_point(
                    self.module_.step, xb.to(device).flatten(1),
                    max_iter=int(self.max_iter), tol=float(self.tol),
                )
                outputs.append(result.x.cpu().numpy())
        return np.concatenate(outputs).reshape(shape).astype(np.float32)
