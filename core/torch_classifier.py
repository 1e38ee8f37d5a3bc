"""Any PyTorch model as a defense: :func:`wrap`, :class:`TorchClassifier`, :func:`load_pretrained`.

``wrap(module, ...)`` is the first step of ART's ``PyTorchClassifier(model, ...)``
here: it returns a fitted :class:`TorchClassifier`, a :class:`BaseDefense`
whose network is the user's ``nn.Module`` (with an optional input
normalisation in front), so every attack, scorer, ``evaluate`` and the audit
reach it through the same ``logits`` and ``attack_surfaces`` as a built-in
defense. ``fit`` fine-tunes a copy of the module. :func:`load_pretrained` reads
a state dict from disk (RobustBench's layout: weights plus an architecture
name) into an architecture a registered defense builds.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_consistent_length, column_or_1d

from .defense import BaseDefense
from .device import resolve_device
from .networks import Normalize
from .tags import DefenseTags
from .validation import check_images


class Preprocessed(torch.nn.Module):
    """``model(normalize(x))``: keeps the normalisation inside what attacks differentiate."""

    def __init__(self, normalize, model):
        super().__init__()
        self.normalize = normalize
        self.model = model

    def forward(self, x):
        return self.model(self.normalize(x))


def _image_shape(shape, name="input_shape"):
    """(C, H, W) from (d,), (H, W) or (C, H, W), as ``check_images`` lays images out."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if not 1 <= len(shape) <= 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (C, H, W), (H, W) or (d,) positive ints, got {shape}")
    return (1,) * (3 - len(shape)) + shape


class TorchClassifier(BaseDefense):
    """A fitted classifier around an existing ``torch.nn.Module`` that returns logits.

    Usually made by :func:`wrap` (which needs no training data); ``fit``
    fine-tunes a copy of ``module`` on images in [0, 1], starting from its
    current weights.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch of shape (n, *input_shape) to logits (n, n_classes); it
        sees images in [0, 1], after ``preprocessing``.
    classes : array-like or None, default=None
        Sorted class labels in the order of the module's outputs; None means
        ``0 .. n_classes - 1`` (for :func:`wrap`) or the labels of ``y``
        (for ``fit``).
    input_shape : tuple of int or None, default=None
        Per-sample shape (C, H, W) the module takes; None (``fit`` only)
        takes the shape of the training images.
    preprocessing : tuple (mean, std) or None, default=None
        Per-channel normalisation applied inside the forward pass (so that
        attacks perturb images in [0, 1] and differentiate through it).
    max_epochs : int, default=5
        Fine-tuning epochs.
    lr : float, default=1e-4
        Fine-tuning learning rate (small: the module is already trained).
    **kwargs
        The other parameters of :class:`robustlearn.BaseDefense` (``batch_size``,
        ``optimizer``, ``calibration_fraction``, ``detect_tpr``, ``device``,
        ``random_state``, ``verbose``).

    Attributes
    ----------
    classes_, n_features_in_, input_shape_, module_, detect_threshold_
        See :class:`robustlearn.BaseDefense`. After :func:`wrap` without
        calibration images, ``detect_threshold_`` is infinite (nothing is
        flagged) until :meth:`calibrate_detector` is called.
    """

    def __init__(
        self,
        module=None,
        classes=None,
        input_shape=None,
        preprocessing=None,
        *,
        max_epochs=5,
        lr=1e-4,
        **kwargs,
    ):
        self.module = module
        self.classes = classes
        self.input_shape = input_shape
        self.preprocessing = preprocessing
        super().__init__(max_epochs=max_epochs, lr=lr, **kwargs)

    @classmethod
    def _get_param_names(cls):
        """Its own parameters and every shared one of :class:`BaseDefense` (passed as kwargs)."""
        own = BaseEstimator._get_param_names.__func__(cls)
        shared = BaseEstimator._get_param_names.__func__(BaseDefense)
        return sorted(set(own) | set(shared))

    def _validate_params(self):
        super()._validate_params()
        if not isinstance(self.module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(self.module).__name__}")
        if self.classes is not None:
            classes = np.asarray(self.classes)
            if classes.ndim != 1 or len(classes) < 2:
                raise ValueError(f"classes must be a 1-d sequence of at least two labels, got "
                                 f"{self.classes!r}")
            if len(np.unique(classes)) != len(classes) or np.any(np.sort(classes) != classes):
                raise ValueError("classes must be sorted and unique, in the order of the "
                                 "module's outputs (use integer labels 0 .. n-1 otherwise)")
        if self.input_shape is not None:
            _image_shape(self.input_shape)
        if self.preprocessing is not None:
            try:
                mean, std = self.preprocessing
                std = np.asarray(std, dtype=np.float64)
                np.asarray(mean, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError("preprocessing must be a (mean, std) pair of numbers or "
                                f"per-channel sequences, got {self.preprocessing!r}") from None
            if np.any(std <= 0) or not np.all(np.isfinite(std)):
                raise ValueError(f"preprocessing std must be positive and finite, got {std}")

    def _network(self, module):
        if self.preprocessing is None:
            return module
        mean, std = self.preprocessing
        return Preprocessed(Normalize(mean, std), module)

    def _build_module(self, input_shape, n_classes):
        network = self._network(copy.deepcopy(self.module))
        _check_outputs(network, input_shape, n_classes)
        return network

    def _validate_training_data(self, X, y):
        if self.classes is None:
            X, y_encoded = super()._validate_training_data(X, y)
        else:
            if y is None:
                raise ValueError("TorchClassifier requires y to be passed, but the target y is "
                                 "None")
            X = check_images(X, self, reset=True)
            y = column_or_1d(np.asarray(y), warn=True)
            check_consistent_length(X, y)
            self.classes_ = np.asarray(self.classes)
            unknown = np.setdiff1d(y, self.classes_)
            if len(unknown):
                raise ValueError(f"y holds labels {unknown[:5].tolist()} that are not in "
                                 f"classes={self.classes_.tolist()}")
            y_encoded = np.searchsorted(self.classes_, y)
        if self.input_shape is not None:
            shape = _image_shape(self.input_shape)
            if int(np.prod(shape)) != self.n_features_in_:
                raise ValueError(f"X has {self.n_features_in_} values per sample but "
                                 f"input_shape={tuple(self.input_shape)} holds "
                                 f"{int(np.prod(shape))}")
            self.input_shape_ = shape
            X = np.ascontiguousarray(X.reshape((len(X),) + shape))
        return X, y_encoded

    def __robustlearn_tags__(self) -> DefenseTags:
        calibrated = np.isfinite(getattr(self, "detect_threshold_", 0.0))
        return DefenseTags(has_detector=bool(calibrated))

    def _adopt(self, X_calibration=None, device=None):
        """Make this instance fitted around ``module`` itself (no copy, no training)."""
        self._validate_params()
        if self.input_shape is None:
            raise ValueError("wrap needs input_shape, the (C, H, W) shape of one image")
        if device is None:
            device = next(iter(self.module.parameters()), torch.empty(0)).device
        device = resolve_device(device)
        self.input_shape_ = _image_shape(self.input_shape)
        self.n_features_in_ = int(np.prod(self.input_shape_))
        network = self._network(self.module).to(device).eval()
        n_outputs = _check_outputs(network, self.input_shape_, None)
        if self.classes is None:
            self.classes_ = np.arange(n_outputs)
        else:
            self.classes_ = np.asarray(self.classes)
            _check_outputs(network, self.input_shape_, len(self.classes_))
        self.module_ = network
        self.device = str(device)
        self.detect_threshold_ = float("inf")
        if X_calibration is not None:
            self.calibrate_detector(X_calibration)
        return self


def _check_outputs(network, input_shape, n_classes):
    """Run one zero image through ``network``; check it gives ``n_classes`` logits."""
    device = next(iter(network.parameters()), torch.empty(0)).device
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(torch.zeros((1,) + tuple(input_shape), device=device))
    finally:
        network.train(was_training)
    if out.ndim != 2 or (n_classes is not None and out.shape[1] != n_classes):
        expected = f"(1, {n_classes})" if n_classes is not None else "(1, n_classes)"
        raise ValueError(f"the module maps one image of shape {tuple(input_shape)} to "
                         f"{tuple(out.shape)}, expected logits of shape {expected}")
    return int(out.shape[1])


def wrap(module, classes=None, input_shape=None, preprocessing=None, *, X_calibration=None,
         device=None, **params):
    """A fitted classifier around an existing PyTorch model, attackable like any defense.

    Parameters
    ----------
    module : torch.nn.Module
        Returns logits; pretrained or not. It is used as it is (not copied)
        and put in evaluation mode.
    classes : array-like or None, default=None
        Sorted labels of the module's outputs; None means ``0 .. n_outputs - 1``.
    input_shape : tuple of int
        Shape of one image the module takes, (C, H, W) (or (d,) for flat inputs).
    preprocessing : tuple (mean, std) or None, default=None
        Per-channel normalisation the module expects; it is applied inside
        the forward pass, so ``X`` and every attack stay in [0, 1].
    X_calibration : array-like of images, optional
        In-distribution images (not training data) to calibrate the
        max-softmax detector on; without them ``detect`` flags nothing and the
        tags say there is no detector.
    device : str or torch.device, optional
        Where to run; default the device the module's parameters are on.
    **params
        Other :class:`TorchClassifier` parameters (for a later ``fit``).

    Returns
    -------
    TorchClassifier
        Fitted: ``predict``, ``logits``, ``detect``, attacks and ``evaluate``
        work at once; ``fit(X, y)`` fine-tunes a copy of the module.

    Examples
    --------
    >>> import torch, robustlearn
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    >>> clf = robustlearn.wrap(net, input_shape=(1, 8, 8), preprocessing=(0.5, 0.25))
    >>> clf.classes_.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    estimator = TorchClassifier(module, classes=classes, input_shape=input_shape,
                                preprocessing=preprocessing, **params)
    return estimator._adopt(X_calibration, device)


def read_state_dict(path) -> dict:
    """Read a state dict from ``.safetensors`` or a torch file, never unpickling code.

    Torch files are read with ``torch.load(weights_only=True)``; a checkpoint
    dict holding the weights under ``"state_dict"``, ``"model_state_dict"`` or
    ``"model"`` is unwrapped, and a ``"module."`` prefix (``DataParallel``) is
    dropped, as RobustBench's loader does.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unpickling refused or file damaged
            raise ValueError(f"{path}: not a state dict readable without running code "
                             f"({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_pretrained(path, architecture, classes, input_shape, *, params=None,
                    preprocessing=None, X_calibration=None, device=None):
    """Wrap weights from disk in the network a registered defense builds.

    RobustBench-style model files are a state dict plus the name of the
    architecture; here the architecture is the network of a registered
    defense (``"mlp"``, ``"cnn"``, ...) made with ``params``.

    Parameters
    ----------
    path : str or Path
        ``.safetensors`` or a torch file (read with ``weights_only=True``).
    architecture : str
        Registered defense whose ``_build_module`` builds the network.
    classes : array-like
        Sorted labels of the network's outputs.
    input_shape : tuple of int
        (C, H, W) of one image.
    params : dict, optional
        Parameters of that defense that shape the network (for example
        ``{"channels": (32, 64), "hidden": 128}``).
    preprocessing, X_calibration, device
        As for :func:`wrap`.

    Returns
    -------
    TorchClassifier

    Raises
    ------
    ValueError
        If the weights do not match the network (names or shapes), or the file
        needs code to be unpickled.
    """
    from .registry import make_defense

    shape = _image_shape(input_shape)
    classes = np.asarray(classes)
    network = make_defense(architecture, **(params or {}))._build_module(shape, len(classes))
    state = read_state_dict(path)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit the {architecture!r} network with "
                         f"params={params!r}: {exc}") from None
    return wrap(network, classes=classes, input_shape=shape, preprocessing=preprocessing,
                X_calibration=X_calibration, device=device)
