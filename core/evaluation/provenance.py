"""What produced a report: library versions and a fingerprint of the model and data."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata

import numpy as np

_LIBRARIES = {
    "robustlearn": "robustlearn",
    "torch": "torch",
    "sklearn": "scikit-learn",
    "skorch": "skorch",
    "foolbox": "foolbox",
    "numpy": "numpy",
}


def library_versions() -> dict:
    """Versions of Python and of the libraries an evaluation depends on (None if missing)."""
    versions = {"python": platform.python_version()}
    for key, distribution in _LIBRARIES.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def array_fingerprint(array) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def estimator_fingerprint(estimator) -> str:
    """SHA-256 of a fitted estimator's learned weights.

    For estimators with a torch ``module_`` this hashes the module's state dict,
    which two bitwise-identical trainings share even though their skorch
    histories (timings) differ; other estimators are hashed with
    :func:`joblib.hash`.
    """
    module = getattr(estimator, "module_", None)
    state_dict = getattr(module, "state_dict", None)
    if state_dict is not None:
        digest = hashlib.sha256(type(estimator).__qualname__.encode())
        for name, tensor in state_dict().items():
            digest.update(name.encode())
            digest.update(array_fingerprint(tensor.detach().cpu().numpy()).encode())
        return digest.hexdigest()
    import joblib

    try:
        return joblib.hash(estimator, hash_name="sha1")
    except Exception:  # unpicklable estimators: fall back to their parameters
        return hashlib.sha256(repr(estimator).encode()).hexdigest()


def json_safe(value):
    """A JSON-serialisable stand-in for a parameter value (``repr`` for anything exotic)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if hasattr(value, "get_params"):
        return type(value).__name__
    return repr(value)
