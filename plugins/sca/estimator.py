"""SCAClassifier: the Self-Consistent Activation defense as a scikit-learn classifier."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from robustlearn.defense import BaseDefense
from robustlearn.surfaces import Surface
from robustlearn.tags import DefenseTags
from robustlearn.validation import check_choice, check_float, check_int

from . import surfaces
from .layer import INNER_GRADIENTS, PREDICTORS
from .network import SCANetwork


class SCAClassifier(BaseDefense):
    """Self-Consistent Activation network (Shah & Raj, arXiv 2308.03956).

    ``(x - 0.5) / 0.5``, then ``n_layers`` SCA layers of ``width`` units (each
    takes T clipped gradient steps on the energy
    ``E(h) = 1/2 ||h - g_C(h)||^2 + lambda/2 ||x - (B h + b_B)||^2``, see
    :class:`~robustlearn.plugins.sca.SCALayer`), dropout, and a linear head.
    Trained with cross-entropy by backpropagation through the T unrolled steps;
    the lateral weights C (the inter-neuron covariability) are learned, then
    fixed at prediction time. No adversarial training.

    The defaults are the paper's main (F)MNIST model as the authors' code sets
    it: n = 2048, T = 16, eta = 0.25, lambda = 0.3, ReLU predictor, dropout
    0.2, Adam with lr 1e-3, weight decay 5e-5, batch 256, up to 100 epochs
    (the authors stop early on a validation split; add skorch's
    ``EarlyStopping`` through ``callbacks`` for that).

    Parameters
    ----------
    width : int, default=2048
        Units of each SCA layer.
    T : int, default=16
        Inner steps during training (and prediction, unless ``T_predict`` is set);
        0 gives the same-width feed-forward MLP.
    eta : float, default=0.25
        Inner step size.
    lambda_ : float, default=0.3
        Weight of the input-reconstruction term of the energy.
    g : {"relu", "linear", "tanh", "sigmoid"}, default="relu"
        Nonlinearity of the lateral predictor g_C(h) = g(C h + c).
    dropout : float, default=0.2
        Dropout after each SCA layer.
    n_layers : int, default=1
        Stacked SCA layers.
    T_predict : int or None, default=None
        Inner steps at prediction time (and in the default attack surface);
        None uses ``T``. Set it after fitting to sweep T on a trained model.
    clip : float, default=10.0
        Largest l_inf norm of an inner gradient, per sample (the paper's 10).
    inner_gradient : {"auto", "closed-form", "gram", "autograd"}, default="auto"
        How dE/dh is computed; identical values up to float rounding. ``"auto"``
        takes, per call, whichever closed form needs fewer multiply-accumulates
        (see :class:`robustlearn.plugins.sca.SCALayer`).
    max_epochs, batch_size : int, default=100, 256
    **kwargs
        Shared training parameters, see :class:`robustlearn.BaseDefense`;
        ``optimizer__weight_decay`` defaults to the paper's 5e-5 (pass it to change it).

    Attributes
    ----------
    module_ : SCANetwork
        The fitted network.
    classes_, n_features_in_, input_shape_, net_, detect_threshold_
        See :class:`robustlearn.BaseDefense`.

    Examples
    --------
    >>> import robustlearn
    >>> X, y = robustlearn.load_dataset("digits", "train")
    >>> clf = robustlearn.make_defense("sca", width=32, T=2, max_epochs=2, random_state=0)
    >>> clf.fit(X, y).predict(X[:3]).shape
    (3,)
    """

    _test_params = dict(width=32, T=2, max_epochs=30, batch_size=32, lr=3e-3)
    _routed_defaults = {"optimizer__weight_decay": 5e-5}

    def __init__(
        self,
        width=2048,
        T=16,
        eta=0.25,
        lambda_=0.3,
        g="relu",
        dropout=0.2,
        n_layers=1,
        T_predict=None,
        clip=10.0,
        inner_gradient="auto",
        *,
        max_epochs=100,
        batch_size=256,
        **kwargs,
    ):
        self.width = width
        self.T = T
        self.eta = eta
        self.lambda_ = lambda_
        self.g = g
        self.dropout = dropout
        self.n_layers = n_layers
        self.T_predict = T_predict
        self.clip = clip
        self.inner_gradient = inner_gradient
        super().__init__(max_epochs=max_epochs, batch_size=batch_size, **kwargs)

    # ------------------------------------------------------------------ hooks
    def _validate_params(self):
        super()._validate_params()
        check_int(self.width, "width", low=1)
        check_int(self.T, "T", low=0)
        if self.T_predict is not None:
            check_int(self.T_predict, "T_predict", low=0)
        check_float(self.eta, "eta", low=0, low_open=True)
        check_float(self.lambda_, "lambda_", low=0)
        check_choice(self.g, "g", PREDICTORS)
        check_float(self.dropout, "dropout", low=0, high=1, high_open=True)
        check_int(self.n_layers, "n_layers", low=1)
        check_float(self.clip, "clip", low=0, low_open=True)
        check_choice(self.inner_gradient, "inner_gradient", INNER_GRADIENTS)

    def _build_module(self, input_shape, n_classes):
        return SCANetwork(
            input_shape, n_classes, width=int(self.width), n_layers=int(self.n_layers),
            dropout=float(self.dropout), T=int(self.T), eta=float(self.eta),
            lambda_=float(self.lambda_), g=self.g, clip=float(self.clip),
            inner_gradient=self.inner_gradient,
        )

    def _forward(self, x):
        return self.module_(x, surfaces.deployed_T(self))

    def __robustlearn_tags__(self):
        return DefenseTags(iterative=True)

    # ---------------------------------------------------------------- public
    def attack_surfaces(self):
        """Differentiable maps an attacker may target, by name.

        ``"default"``
            :meth:`logits`: the deployed T steps, differentiated exactly through
            every unrolled step (the clipping scale held constant, as in training).
        ``"bpda-identity"``
            the deployed T steps forward; each layer's loop is the identity on
            the backward pass (the gradient of ReLU(W_f x + b_f)).
        ``"bpda-T0"``
            the deployed network forward, the whole network at T = 0 backward
            (equal to ``"bpda-identity"`` for one layer; differs when stacked).
        ``"bpda-T1"``
            the deployed T steps forward, each loop differentiated as one step.
        ``"transfer-T1"``
            the same weights run for one step, forward and backward (transfer source).

        :meth:`attack_surface_at` builds the same surfaces for any T_att.

        Returns
        -------
        dict of str to :class:`robustlearn.Surface`
        """
        check_is_fitted(self)
        return {
            **super().attack_surfaces(),
            "bpda-identity": self.attack_surface_at(0),
            "bpda-T0": Surface(
                partial(surfaces.network_bpda_logits, self, T_backward=0), "bpda",
                "the deployed network forward, the network at T=0 backward"),
            "bpda-T1": self.attack_surface_at(1),
            "transfer-T1": self.attack_surface_at(1, forward="T_att"),
        }

    def attack_surface_at(self, T_att, forward="deployed"):
        """A surface whose gradient runs ``T_att`` inner steps instead of the deployed T.

        Parameters
        ----------
        T_att : int
            Inner steps differentiated by the attacker.
        forward : {"deployed", "T_att"}, default="deployed"
            ``"deployed"``: the value is the deployed model's logits and only the
            backward pass uses T_att (kind ``"bpda"``); ``"T_att"``: the model is
            run at T_att both ways (kind ``"transfer"``: the adversarial images
            are then judged by the deployed model).

        Returns
        -------
        robustlearn.Surface
        """
        check_is_fitted(self)
        T_att = check_int(T_att, "T_att", low=0)
        check_choice(forward, "forward", ("deployed", "T_att"))
        if forward == "T_att":
            return Surface(partial(surfaces.unrolled_logits, self, T=T_att), "transfer",
                           f"the same weights run at T={T_att}, forward and backward")
        return Surface(partial(surfaces.loop_bpda_logits, self, T_backward=T_att), "bpda",
                       f"the deployed T forward, each inner loop differentiated at T={T_att}")

    def _inputs_and_T(self, X, T):
        """Checked images, and the inner steps asked for (the deployed T when None)."""
        X = self._checked(X)
        return X, (surfaces.deployed_T(self) if T is None else check_int(T, "T", low=0))

    def hidden_activations(self, X, T=None):
        """Activity of the last SCA layer, shape (n, width), float32.

        Parameters
        ----------
        X : array-like of images
        T : int, optional
            Inner steps (defaults to the deployed T).
        """
        X, T = self._inputs_and_T(X, T)
        self.module_.eval()
        with torch.no_grad():
            return self._batched(lambda xb: self.module_.hidden(xb, T), X).astype(np.float32)

    def energy_trajectory(self, X, T=None):
        """Mean energy E(h_t) of the first SCA layer at t = 0..T, shape (T + 1,).

        Parameters
        ----------
        X : array-like of images
        T : int, optional
            Inner steps (defaults to the deployed T).
        """
        X, T = self._inputs_and_T(X, T)
        layer = self.module_.sca[0]
        with torch.no_grad():
            x = self.module_.normalize(self._as_batch(X)).flatten(1)
            return np.array([float(layer.energy(h, x).mean())
                             for h in layer.trajectory(x, T)])
