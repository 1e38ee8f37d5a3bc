"""The estimator contract every defense follows.

A defense is a scikit-learn classifier. ``fit`` validates its input and
parameters, builds the defense's torch module (which returns logits) and trains
it with a skorch :class:`~robustlearn.training.DefenseNet`; prediction goes
through :meth:`BaseDefense.logits`, the differentiable map from images in
[0, 1] to logits that covers the *whole* prediction function, and is what every
attack uses.

Writing a defense means subclassing :class:`BaseDefense` and implementing

``_build_module(self, input_shape, n_classes) -> torch.nn.Module``
    the network, returning logits;

and optionally

``_training_loss(self, module, X, y) -> (loss, logits)``
    the training objective (default: cross-entropy);
``_forward(self, x) -> logits``
    inference through the fitted module, if it is more than ``module_(x)``
    (iterations, solvers, voting);
``_train(self, net, X, y)``
    the training schedule, if it has phases (default: ``net.fit(X, y)``);
``_detect_score(self, x) -> scores`` and ``_calibrate_detector(self, X)``
    a detector of the defense's own;
``__robustlearn_tags__``
    capability tags;
``attack_surfaces(self) -> {name: Surface}``
    extra adaptive-attack surfaces (BPDA, EOT, transfer), on top of the base ones;
``_certified_radius(self, x) -> radii``
    a certificate, with the ``certified`` tag (see :mod:`robustlearn.certification`).
``_export_fitted_state(self)`` and ``_import_fitted_state(self, state)``
    fitted state beyond ``module_`` (checkpoints, extra networks, objects) as
    plain data, for safe model files (see :mod:`robustlearn.model_file`).

Each subclass lists its own parameters in its ``__init__`` and passes the
shared ones on with ``**kwargs`` (``super().__init__(**kwargs)``): the
parameters scikit-learn sees are the union of every ``__init__`` signature from
the subclass up to :class:`BaseDefense`, plus skorch-style routed parameters
(``optimizer__weight_decay``, ``callbacks__progress__...``,
``iterator_train__...``) that reach the training engine. A subclass adds checks
for its own parameters in ``_validate_params``.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from .certification import margin_radius
from .detection import calibrate_threshold, max_softmax_score
from .device import resolve_device
from .memory import inference_batch_size
from .seeding import seed_from, torch_seed
from .surfaces import Surface
from .tags import DefenseTags
from .training import DefenseNet, FittedNetMixin, build_net, check_training_params
from .validation import check_float, check_images

#: Prefixes of parameters routed to the skorch training engine, as skorch routes them.
ROUTED_PREFIXES = ("optimizer__", "callbacks__", "iterator_train__", "iterator_valid__")


def _check_routed(cls, key):
    if not key.startswith(ROUTED_PREFIXES):
        raise TypeError(
            f"{cls.__name__}.__init__() got an unexpected parameter {key!r}; routed training "
            f"parameters start with one of {ROUTED_PREFIXES}"
        )


class BaseDefense(ClassifierMixin, FittedNetMixin, BaseEstimator):
    """Base class of robustlearn defenses: a scikit-learn classifier trained with skorch.

    Parameters
    ----------
    max_epochs : int, default=20
        Training epochs (0 is rejected).
    batch_size : int, default=64
        Mini-batch size for training; inference uses batches of at least 256.
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    calibration_fraction : float, default=0.1
        Fraction of the training data held out (stratified) to calibrate the
        detector threshold; 0 calibrates on the training data itself. Small
        training sets (fewer than 10 held-out samples) calibrate on the training data.
    detect_tpr : float, default=0.95
        Fraction of in-distribution samples ``detect`` must accept.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, shuffling and any randomness of training;
        with an int, fitting on CPU is bitwise reproducible.
    verbose : int, default=0
        0 is silent; 1 shows one progress bar over the epochs (when stderr is a
        terminal) and logs the start and end of training to the ``robustlearn``
        logger; 2 also prints skorch's per-epoch table and per-batch bars.
    callbacks : list of skorch callbacks or (name, callback) pairs, optional
        Extra skorch callbacks for training (``EarlyStopping``,
        ``LRScheduler``, ``Checkpoint``, ...), as skorch takes them.
    **kwargs
        skorch-style routed parameters: ``optimizer__<name>`` (e.g.
        ``optimizer__weight_decay=5e-5``), ``callbacks__<callback>__<name>``,
        ``iterator_train__<name>``; grid search reaches them like any other.

    Attributes
    ----------
    classes_ : ndarray
        Class labels seen in ``fit``.
    n_features_in_ : int
        Values per sample (pixels times channels).
    input_shape_ : tuple of int
        Per-sample shape (C, H, W) the module takes.
    net_ : DefenseNet
        The fitted skorch net (``net_.history`` holds the training curve).
    module_ : torch.nn.Module
        The fitted torch module.
    detect_threshold_ : float
        Scores above it are flagged by ``detect``.
    """

    #: Defaults of routed training parameters that a subclass documents as part of its
    #: best configuration (e.g. ``{"optimizer__weight_decay": 5e-5}``); routed parameters
    #: given explicitly override them. Kept out of ``__init__`` so that the estimator still
    #: sets nothing but its parameters there (scikit-learn's contract).
    _routed_defaults: dict = {}

    def __init__(
        self,
        *,
        max_epochs=20,
        batch_size=64,
        lr=1e-3,
        optimizer="adam",
        calibration_fraction=0.1,
        detect_tpr=0.95,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        **kwargs,
    ):
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.calibration_fraction = calibration_fraction
        self.detect_tpr = detect_tpr
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        # stored as given (scikit-learn's contract: __init__ never validates); fit rejects
        # names that are not routed with a TypeError naming them
        for key, value in kwargs.items():
            setattr(self, key, value)

    # ------------------------------------------------------------ parameters
    @classmethod
    def _get_param_names(cls):
        """Parameters of this class's ``__init__`` and of every ``__init__`` its ``**kwargs``
        reach up to :class:`BaseDefense` (a subclass that lists every parameter itself, with
        no ``**kwargs``, has exactly its own signature, as in plain scikit-learn)."""
        names = set()
        for klass in cls.__mro__:
            if "__init__" not in vars(klass) or not issubclass(klass, BaseDefense):
                continue
            init = inspect.signature(klass.__init__).parameters.values()
            names.update(p.name for p in init if p.name != "self"
                         and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
            if klass is BaseDefense or not any(p.kind == p.VAR_KEYWORD for p in init):
                break
        return sorted(names)

    def _extra_params(self) -> dict:
        """Keyword parameters beyond the declared ones (routed ones, or mistakes ``fit`` names)."""
        # BaseDefense's own names count as declared even when a subclass with an explicit
        # signature does not expose them (its get_params must not grow a `callbacks` it lacks)
        declared = set(self._get_param_names()) | set(BaseDefense._get_param_names())
        return {k: v for k, v in vars(self).items()
                if k not in declared and not k.startswith("_") and not k.endswith("_")}

    def _routed_params(self) -> dict:
        return {k: v for k, v in self._extra_params().items() if k.startswith(ROUTED_PREFIXES)}

    def get_params(self, deep=True):
        """Parameters of this defense, the routed ``optimizer__*`` etc. included."""
        return {**super().get_params(deep=deep), **self._extra_params()}

    def set_params(self, **params):
        """Set parameters, accepting routed ``optimizer__*``/``callbacks__*`` names too."""
        extra = self._extra_params()
        for key in [k for k in params if k.startswith(ROUTED_PREFIXES) or k in extra]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)

    # ------------------------------------------------------------------ hooks
    def _build_module(self, input_shape, n_classes):  # pragma: no cover - abstract
        """Return a ``torch.nn.Module`` mapping (n, C, H, W) images to (n, n_classes) logits."""
        raise NotImplementedError(f"{type(self).__name__} must implement _build_module")

    def _validate_params(self):
        """Check the shared parameters; subclasses extend this for their own."""
        for key in self._extra_params():
            _check_routed(type(self), key)
        check_training_params(self)
        check_float(self.calibration_fraction, "calibration_fraction", low=0, high=0.5)
        check_float(self.detect_tpr, "detect_tpr", low=0, high=1, low_open=True)

    def _training_loss(self, module, X, y):
        """Training objective on one batch: ``(loss, logits)``; default cross-entropy."""
        logits = module(X)
        return torch.nn.functional.cross_entropy(logits, y), logits

    def _forward(self, x):
        """Logits of the fitted defense for a batch on its device (override for inner loops)."""
        return self.module_(x)

    def _train(self, net, X, y):
        """Run the training schedule on tensors ``X``, ``y`` (override for phases)."""
        net.fit(X, y)

    def _detect_score(self, x):
        """Suspicion scores for a batch (higher = more suspicious); default max-softmax."""
        return max_softmax_score(self._forward(x))

    def __robustlearn_tags__(self) -> DefenseTags:
        return DefenseTags()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.__robustlearn_tags__().stochastic
        return tags

    # --------------------------------------------------------------- fitting
    def fit(self, X, y):
        """Train the defense on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)
            Images in [0, 1] (floats) or ``uint8``.
        y : array-like of shape (n,)
            Class labels of any type scikit-learn accepts (at least two classes).

        Returns
        -------
        self
        """
        self._validate_params()
        X, y_encoded = self._validate_training_data(X, y)
        seed = seed_from(self.random_state)
        device = resolve_device(self.device)
        X_train, y_train, X_cal = self._calibration_split(X, y_encoded, seed)
        with torch_seed(seed):
            module = self._build_module(self.input_shape_, len(self.classes_))
            self.net_ = self._make_net(module, device)
            self._train(
                self.net_,
                torch.from_numpy(X_train),
                torch.from_numpy(y_train.astype(np.int64)),
            )
        self.module_ = self.net_.module_
        self.module_.eval()
        self._calibrate_detector(X_cal)
        return self

    def _validate_training_data(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        X = check_images(X, self, reset=True)
        y = column_or_1d(np.asarray(y) if not hasattr(y, "shape") else y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        encoder = LabelEncoder()
        y_encoded = encoder.fit_transform(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only one class ({self.classes_[0]!r}); a classifier needs at least two "
                "classes"
            )
        return X, y_encoded

    def _calibration_split(self, X, y, seed):
        n_cal = int(round(self.calibration_fraction * len(X)))
        if n_cal < 10 or len(X) - n_cal < 2 * len(self.classes_):
            return X, y, X
        stratify = y if np.bincount(y).min() >= 2 and n_cal >= len(self.classes_) else None
        X_train, X_cal, y_train, _ = train_test_split(
            X, y, test_size=n_cal, stratify=stratify, random_state=seed % (2**31)
        )
        return X_train, y_train, X_cal

    def _make_net(self, module, device):
        return build_net(
            self, DefenseNet, module, objective=self._training_loss, device=device,
            criterion=torch.nn.CrossEntropyLoss, classes=np.arange(len(self.classes_)),
            routed={**self._routed_defaults, **self._routed_params()},
        )

    def _calibrate_detector(self, X_cal):
        scores = self._batched(self._detect_score, X_cal)
        self.detect_threshold_ = calibrate_threshold(scores, self.detect_tpr)

    def calibrate_detector(self, X):
        """Recalibrate ``detect_threshold_`` on in-distribution images held out from training.

        ``fit`` calibrates on its held-out ``calibration_fraction`` of the training
        data. Call this instead when you hold out your own in-distribution images
        (for example to train on every labelled image with
        ``calibration_fraction=0``), or after changing a parameter that changes
        the scores (such as ``max_iter`` of an iterative defense). Afterwards
        ``detect`` accepts a fraction ``detect_tpr`` of ``X``. Never calibrate on
        out-of-distribution or test data.

        Parameters
        ----------
        X : array-like of images
            In-distribution images the model was not trained on.

        Returns
        -------
        self
        """
        self._calibrate_detector(self._checked(X))
        return self

    # ------------------------------------------------------------- inference
    @property
    def device_(self) -> torch.device:
        """Device the fitted module lives on."""
        check_is_fitted(self)
        return next(iter(self.module_.parameters()), torch.empty(0)).device

    def _as_batch(self, x):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        x = x.to(self.device_, dtype=torch.float32)
        if tuple(x.shape[1:]) != tuple(self.input_shape_):
            x = x.reshape((x.shape[0],) + tuple(self.input_shape_))
        return x

    def logits(self, x):
        """Differentiable logits of the whole prediction function.

        Parameters
        ----------
        x : torch.Tensor of shape (n, C, H, W)
            Or any shape with ``n_features_in_`` values per sample.
            Images in [0, 1], on any device; gradients flow back to ``x``.

        Returns
        -------
        torch.Tensor of shape (n, n_classes), on ``device_``
        """
        check_is_fitted(self)
        self.module_.eval()
        return self._forward(self._as_batch(x))

    def detection_logits(self, x, scale=100.0):
        """Differentiable two-way logits of the detector, ``[accepted, flagged]``.

        ``scale * [t - s, s - t]`` with ``s`` the suspicion score of
        :meth:`detect_score` and ``t`` = ``detect_threshold_``: the input is
        flagged exactly when the second logit is larger. This is what a
        detector-aware attack differentiates (for example
        :class:`robustlearn.attacks.DetectorAwarePGD`, or an untargeted attack
        on label 1 that hides out-of-distribution inputs).

        Parameters
        ----------
        x : torch.Tensor
            Images in [0, 1], as for :meth:`logits`.
        scale : float, default=100.0
            Sharpness of the two logits.

        Returns
        -------
        torch.Tensor of shape (n, 2), on ``device_``
        """
        check_is_fitted(self)
        self.module_.eval()
        margin = self._detect_score(self._as_batch(x)) - float(self.detect_threshold_)
        return scale * torch.stack([-margin, margin], dim=1)

    def attack_surfaces(self) -> dict:
        """Typed differentiable maps an attacker may target, by name.

        ``"default"`` is :meth:`logits`, the whole prediction function
        (``kind="exact"``), and ``"detector"`` is :meth:`detection_logits`, the
        defense's detector (``kind="detector"``). Defenses with inner loops,
        randomness or a static base add their adaptive surfaces here (kinds
        ``"bpda"``, ``"eot"``, ``"transfer"``); this is the one place a defense
        declares its adaptive-attack hooks, and evaluation reads their
        ``kind`` to choose adaptive attacks.

        Returns
        -------
        dict of str to :class:`robustlearn.Surface`
            Each maps a tensor batch of images in [0, 1] to logits.
        """
        return {
            "default": Surface(self.logits, "exact", "the whole prediction function (logits)"),
            "detector": Surface(self.detection_logits, "detector",
                                "two logits [accepted, flagged] of the detector"),
        }

    # ---------------------------------------------------------- certification
    def _certified_radius(self, x):
        """Per-sample certified radius of a batch (defenses tagged ``certified`` implement it)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not certify robustness (its certified tag is None)"
        )

    def certified_radius(self, X):
        """Lower bound, per sample, on the radius within which the prediction provably holds.

        No perturbation of the tag's norm (``certified``) smaller than the
        radius changes the predicted class. Only defenses whose tags set
        ``certified`` implement it.

        Parameters
        ----------
        X : array-like of images in [0, 1]

        Returns
        -------
        ndarray of float64, shape (n,)

        Raises
        ------
        NotImplementedError
            If the defense does not certify.
        """
        if self.__robustlearn_tags__().certified is None:
            self._certified_radius(None)
        X = self._checked(X)
        return self._batched(self._certified_radius, X).astype(np.float64)

    def certify(self, X, y, epsilon):
        """Boolean per sample: correctly classified and certified at radius ``epsilon``.

        Parameters
        ----------
        X : array-like of images in [0, 1]
        y : array-like of shape (n,)
            True labels.
        epsilon : float
            Radius in the norm of the ``certified`` tag.

        Returns
        -------
        ndarray of bool, shape (n,)
        """
        check_float(epsilon, "epsilon", low=0)
        y = np.asarray(y)
        radius = self.certified_radius(X)
        if y.shape != radius.shape:
            raise ValueError(f"y must have shape {radius.shape}, got {y.shape}")
        return (self.predict(X) == y) & (radius > float(epsilon))

    def _lipschitz_radius(self, x, lipschitz):
        """Certified radius from this batch's logits and pairwise Lipschitz constants."""
        return margin_radius(self._forward(x), lipschitz)

    def _batched(self, fn, X):
        """Apply a tensor function to a validated array in batches without gradients."""
        device = self.device_
        # never more than half the free memory of the device (full test sets on small GPUs)
        batch = inference_batch_size(self.module_, self.input_shape_, device,
                                     maximum=max(int(self.batch_size), 256))
        outputs = []
        with torch.no_grad():
            self.module_.eval()
            for start in range(0, len(X), batch):
                xb = torch.from_numpy(X[start : start + batch]).to(device)
                outputs.append(fn(xb).detach().cpu().numpy())
        return np.concatenate(outputs, axis=0)

    def _checked(self, X):
        check_is_fitted(self)
        return check_images(X, self, reset=False)

    def predict_proba(self, X):
        """Class probabilities (softmax of ``logits``), shape (n, n_classes)."""
        X = self._checked(X)
        # float64 softmax: float32 underflows to probability 0 for logit gaps over ~104,
        # and log(predict_proba) would then disagree with predict_log_proba.
        proba = self._batched(lambda xb: torch.softmax(self._forward(xb).double(), dim=1), X)
        return proba.astype(np.float64)

    def predict_log_proba(self, X):
        """Log class probabilities, shape (n, n_classes)."""
        X = self._checked(X)
        logp = self._batched(lambda xb: torch.log_softmax(self._forward(xb).double(), dim=1), X)
        return logp.astype(np.float64)

    def predict(self, X):
        """Predicted class labels, shape (n,)."""
        X = self._checked(X)
        logits = self._batched(self._forward, X)
        return self.classes_[np.argmax(logits, axis=1)]

    def detect_score(self, X):
        """Suspicion score per sample (higher = more likely out-of-distribution or adversarial)."""
        X = self._checked(X)
        return self._batched(self._detect_score, X).astype(np.float64)

    def detect(self, X):
        """Boolean per sample: True where the detector flags the input."""
        return self.detect_score(X) > self.detect_threshold_


#: Parameters every defense takes, with their defaults (documented in :class:`BaseDefense`),
#: read from its signature, where they are written.
COMMON_PARAMS = {
    p.name: p.default for p in inspect.signature(BaseDefense.__init__).parameters.values()
    if p.kind == p.KEYWORD_ONLY
}
