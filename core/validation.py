"""Validation of images, labels and constructor parameters.

Every check raises a ``ValueError`` or ``TypeError`` that names the offending
parameter and what was expected, before any expensive work starts.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array, validate_data

_ACCEPTED_DTYPES = [np.float32, np.float64, np.uint8]


class ImageRangeWarning(UserWarning):
    """Float images given to a defense lie outside [0, 1] (for example in [0, 255])."""


def warn_unless_unit_interval(X, estimator, atol: float = 1e-3) -> None:
    """Warn (:class:`ImageRangeWarning`) when float images ``X`` leave [0, 1].

    Defenses still run on such input, as scikit-learn estimators do on any
    numbers, but every attack rejects it and a model trained in [0, 1] predicts
    poorly on [0, 255] images; the warning says how to fix the input.
    """
    if X.size == 0:
        return
    lo, hi = float(np.min(X)), float(np.max(X))
    if lo < -atol or hi > 1 + atol:
        hint = " (divide by 255, or pass uint8 images)" if hi > 2 else ""
        warnings.warn(
            f"{type(estimator).__name__} expects images in [0, 1], got float values in "
            f"[{lo:.4g}, {hi:.4g}]{hint}; attacks reject such input",
            ImageRangeWarning, stacklevel=3,
        )


def _sample_ndim(X) -> int:
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim
        except ValueError:  # ragged nested lists
            raise ValueError("X must be a rectangular array of images") from None
    return ndim


def check_images(X, estimator=None, *, reset: bool = False):
    """Validate images; return them as a float32 array of shape (n, C, H, W).

    Parameters
    ----------
    X : array-like of shape (n, d), (n, H, W) or (n, C, H, W)
        Floats (images are expected in [0, 1]) or ``uint8`` (divided by 255).
        Two-dimensional input is read as ``n`` flat samples.
    estimator : estimator, optional
        When given, ``n_features_in_``/``input_shape_`` are set on it
        (``reset=True``) or checked against it (``reset=False``); a fitted
        estimator also accepts any ``X`` whose samples have ``n_features_in_``
        values and reshapes them to its input shape.
    reset : bool
        Whether this call defines the input shape (``fit``) or checks it.

    Returns
    -------
    ndarray of float32, shape (n, C, H, W)
    """
    if sp.issparse(X):
        raise TypeError(
            "X is a sparse matrix; robustlearn defenses need dense image arrays "
            "(use X.toarray())."
        )
    ndim = _sample_ndim(X)
    if ndim < 2:
        # "Reshape your data" is the phrase scikit-learn's check_fit2d_predict1d looks for
        raise ValueError(
            f"X must have shape (n, d), (n, H, W) or (n, C, H, W), got {ndim} dimension(s). "
            "Reshape your data: a single image needs a leading sample axis, X[None]."
        )
    if ndim <= 2 and estimator is not None:
        # sklearn's own path keeps feature-name bookkeeping and its error messages.
        arr = validate_data(
            estimator, X, reset=reset, dtype=_ACCEPTED_DTYPES, ensure_min_samples=1
        )
    else:
        arr = check_array(X, allow_nd=True, dtype=_ACCEPTED_DTYPES, ensure_min_samples=1,
                          input_name="X")
    if arr.ndim > 4:
        raise ValueError(
            f"X must have shape (n, d), (n, H, W) or (n, C, H, W), got {arr.ndim} dimensions "
            f"{arr.shape}"
        )
    if np.iscomplexobj(arr):
        raise ValueError("X must be real-valued, got complex data")
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    arr = np.asarray(arr, dtype=np.float32)
    if scale != 1.0:
        arr = arr / np.float32(scale)
    # reshape, not arr[:, None]: indexing gives the new axis a zero stride, and torch's
    # conv kernels then take another code path (results differ in the last bits)
    if arr.ndim == 2:
        arr = np.ascontiguousarray(arr).reshape(arr.shape[0], 1, 1, arr.shape[1])
    elif arr.ndim == 3:
        arr = np.ascontiguousarray(arr).reshape(arr.shape[0], 1, *arr.shape[1:])
    if estimator is None:
        return np.ascontiguousarray(arr)
    if scale == 1.0:
        warn_unless_unit_interval(arr, estimator)
    n_features = int(np.prod(arr.shape[1:]))
    if reset:
        estimator.input_shape_ = tuple(int(s) for s in arr.shape[1:])
        estimator.n_features_in_ = n_features
        return np.ascontiguousarray(arr)
    expected = estimator.n_features_in_
    if n_features != expected:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input (images of shape {estimator.input_shape_})."
        )
    return np.ascontiguousarray(arr.reshape((arr.shape[0],) + tuple(estimator.input_shape_)))


def check_unit_interval(X, name: str = "X", atol: float = 1e-6) -> None:
    """Raise ``ValueError`` unless every value of ``X`` lies in [0, 1] (within ``atol``)."""
    lo, hi = float(np.min(X)), float(np.max(X))
    if lo < -atol or hi > 1 + atol:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


# -- parameter checks -----------------------------------------------------------------

def check_int(value, name: str, *, low=None, high=None):
    """Check that ``value`` is an integer within [low, high] and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def check_bool(value, name: str):
    """Check that ``value`` is a bool (not merely truthy: ``1`` or ``"yes"`` are rejected)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_float(value, name: str, *, low=None, high=None, low_open=False, high_open=False):
    """Check that ``value`` is a finite real number within the given bounds; return ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_choice(value, name: str, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(str, choices))}, got {value!r}")
    return value


def check_int_tuple(value, name: str, *, low=1, allow_empty=False):
    """Check a sequence of positive ints (for example layer widths) and return a tuple."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    out = tuple(check_int(v, f"{name}[{i}]", low=low) for i, v in enumerate(value))
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return out


def check_device(value):
    """Check a device spec: ``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or a ``torch.device``."""
    import torch

    if isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise TypeError(f"device must be a str or torch.device, got {type(value).__name__}")
    if value == "auto":
        return value
    try:
        torch.device(value)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {value!r}") from exc
    return value


def check_random_state(value):
    """Check ``random_state``: None, an int, or a ``numpy.random.RandomState``."""
    if value is None or isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"random_state must be None, an int or a numpy RandomState, got {value!r}"
        )
    if value < 0 or value >= 2**32:
        raise ValueError(f"random_state must be in [0, 2**32), got {value}")
    return value
