"""Safe model files: ``robustlearn.save`` and ``robustlearn.load``.

A model file is a `safetensors <https://github.com/huggingface/safetensors>`_
file: tensors with a JSON header. Loading it never unpickles and never imports
a module by a name read from the file; the estimator's class is found through
the plugin registry by the name it was registered under, so only code the user
installed runs. The file holds

- in the header metadata, under ``"robustlearn"``, one JSON document: the
  format version, the registered kind and name, the constructor parameters
  (``get_params(deep=False)``), the fitted attributes and the device the
  model was fitted on;
- as tensors, the ``state_dict`` of the fitted ``module_`` (keys
  ``module.<name>``) and every numeric array attribute (keys
  ``attr.<name>``).

Loading makes the estimator with ``make(kind, name, **params)``, sets the
fitted attributes, rebuilds the network with the estimator's own
``_build_module(input_shape_, n_classes)`` and loads the state dict into it,
refusing any tensor whose name or shape differs from what that network expects.

What is not saved: private attributes (leading underscore; caches that
``_build_module`` rebuilds), the skorch ``net_`` (its training history
included) and optimizer state. A loaded model predicts, is attacked and
evaluated exactly like the saved one; to continue training, refit.

Fitted state that is not plain data
-----------------------------------
A defense or purifier (a third-party plugin's too) whose fitted attributes
include objects (extra networks, checkpoints, a dataclass, a random-draw
counter) implements two methods, and the format stores that state as JSON and
tensors like everything else:

``_export_fitted_state(self) -> dict``
    ``{attribute name: plain data}`` for the fitted attributes (trailing
    underscore) the generic encoding cannot hold; plain data is what
    :func:`save` stores anywhere: None, bool, int, float, str, tuples, lists,
    dicts with str keys, numpy arrays and scalars, torch tensors (a
    ``state_dict()`` is such a dict). These attributes are written in the
    header's ``"state"`` section, not in ``"attributes"``.
``_import_fitted_state(self, state)``
    Called by :func:`load` with the decoded dict (tensors on the CPU) after
    the parameters and the other fitted attributes are set and ``module_`` is
    rebuilt, loaded and on its device; it must set every attribute of
    ``state``, rebuilding networks with the estimator's own code and loading
    their weights with :func:`load_module_state` (which refuses a tensor of
    the wrong name or shape), and validating every other value. A
    ``TypeError``, ``ValueError``, ``KeyError``, ``IndexError`` or
    ``AttributeError`` it raises becomes a :class:`ModelFileError`.

A file with a ``"state"`` section is written as format version 2, so that a
robustlearn that does not know the section refuses it (asking to upgrade)
instead of loading half a model; every other file stays version 1.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from . import registry
from .atomic_file import atomic_path

#: Newest layout :func:`save` writes and :func:`load` reads. Version 2 adds the ``"state"``
#: section written by a defense's ``_export_fitted_state``; a file without one is version 1.
FORMAT_VERSION = 2
#: Version of files without a ``"state"`` section (readable by every robustlearn).
_PLAIN_VERSION = 1
#: Hooks of an estimator whose fitted state is not plain data (module docstring).
EXPORT_HOOK = "_export_fitted_state"
IMPORT_HOOK = "_import_fitted_state"
FORMAT_NAME = "robustlearn-model"
_SAVED_KINDS = ("defense", "purifier")
#: Array dtypes stored as JSON lists (labels); numeric arrays go to tensors.
_JSON_ARRAY_KINDS = "USO"
_TENSOR_ARRAY_KINDS = "biuf"
#: A header larger than this is not a model file (safetensors itself caps it at 100 MB).
_MAX_HEADER_BYTES = 100_000_000


class ModelFileError(ValueError):
    """A file is not a robustlearn model file, is damaged, or cannot be loaded here."""


# ---------------------------------------------------------------------- encoding
class _Encoder:
    """Turns parameters and attributes into JSON values, collecting numeric arrays as tensors."""

    def __init__(self):
        self.tensors = {}

    def encode(self, value, where):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            return value
        if isinstance(value, np.generic):
            return {"__numpy_scalar__": value.item(), "dtype": value.dtype.str}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: only dicts with str keys can be saved")
            return {"__dict__": {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, torch.Tensor):
            key = f"attr.{where}"
            self.tensors[key] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": key, "shape": list(value.shape), "torch": True}
        if isinstance(value, np.ndarray):
            return self._encode_array(value, where)
        hint = ""
        if hasattr(value, "get_params"):
            hint = (" Nested estimators are not part of the safe format; save the parts "
                    "separately, or use pickle/joblib for files you only share with yourself.")
        elif isinstance(value, torch.nn.Module):
            hint = (" A torch module is code, not data: a defense keeps its network in "
                    "module_, rebuilt by _build_module; a wrapped user module is saved with "
                    "torch.save(module.state_dict()) and wrapped again after loading.")
        elif isinstance(value, np.random.RandomState):
            hint = " Use an int random_state (or None) to save the model."
        raise TypeError(
            f"{where} = {type(value).__name__} cannot be stored in a safe model file.{hint}"
        )

    def _encode_array(self, array, where):
        if array.dtype.kind in _TENSOR_ARRAY_KINDS:
            key = f"attr.{where}"
            # safetensors has no uint16/32/64 in every torch; int64 holds the values used here
            self.tensors[key] = torch.from_numpy(np.ascontiguousarray(array).copy())
            return {"__tensor__": key, "shape": list(array.shape), "dtype": array.dtype.str}
        if array.dtype.kind in _JSON_ARRAY_KINDS:
            items = array.tolist()
            flat = array.ravel().tolist()
            if array.dtype.kind == "O" and not all(
                isinstance(v, (str, bool, int, float)) for v in flat
            ):
                raise TypeError(f"{where}: object arrays must hold only str/int/float/bool")
            return {"__array__": items, "dtype": array.dtype.str, "shape": list(array.shape)}
        raise TypeError(f"{where}: arrays of dtype {array.dtype} cannot be saved")


def _decode(value, tensors, where):
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict) or len(value) == 0:
        raise ModelFileError(f"{where}: unexpected value {value!r} in the file")
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, tensors, f"{where}[{k!r}]") for k, v in value["__dict__"].items()}
    if "__device__" in value:
        return torch.device(str(value["__device__"]))
    if "__numpy_scalar__" in value:
        return _safe_dtype(value["dtype"], "biuf", where).type(value["__numpy_scalar__"])
    if "__array__" in value:
        dtype = _safe_dtype(value["dtype"], _JSON_ARRAY_KINDS, where)
        array = np.array(value["__array__"], dtype=dtype)
        _check_shape(array.shape, value.get("shape"), where)
        return array
    if "__tensor__" in value:
        key = value["__tensor__"]
        if key not in tensors:
            raise ModelFileError(f"{where}: tensor {key!r} is missing from the file")
        tensor = tensors[key]
        _check_shape(tuple(tensor.shape), value.get("shape"), where)
        if value.get("torch"):
            return tensor
        dtype = _safe_dtype(value["dtype"], _TENSOR_ARRAY_KINDS, where)
        return tensor.numpy().astype(dtype, copy=False)
    raise ModelFileError(f"{where}: unknown entry {sorted(value)} in the file")


def _safe_dtype(text, kinds, where):
    try:
        dtype = np.dtype(str(text))
    except TypeError:
        raise ModelFileError(f"{where}: unknown dtype {text!r}") from None
    if dtype.kind not in kinds:
        raise ModelFileError(f"{where}: dtype {text!r} is not allowed here")
    return dtype


def _check_shape(actual, declared, where):
    if declared is None or tuple(actual) != tuple(declared):
        raise ModelFileError(
            f"{where}: the tensor has shape {tuple(actual)} but the header declares "
            f"{declared}; the file is damaged or was tampered with"
        )


# -------------------------------------------------------------------------- save
def _registration_of(estimator):
    for kind in _SAVED_KINDS:
        for entry in registry.list_registrations(kind):
            if entry.factory is type(estimator):
                return entry
    raise TypeError(
        f"{type(estimator).__name__} is not registered as a defense or purifier; the safe "
        "format finds the class by its registered name when loading. Register it through a "
        "plugin (robustlearn.hookimpl), or use pickle/joblib for a file only you will load."
    )


def save(estimator, path) -> Path:
    """Save a fitted defense or purifier as a safe model file.

    Parameters
    ----------
    estimator : fitted estimator
        A registered defense or purifier (found in the plugin registry by its
        class) with its network in ``module_``.
    path : str or Path
        Where to write; ``.safetensors`` is the suggested suffix. Written
        through a temporary file and a rename, so a failure never leaves a
        half-written file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    TypeError
        If the estimator is not registered, or a parameter or fitted attribute
        is not plain data (the message names it).

    See Also
    --------
    load : read the file back.

    Notes
    -----
    Pickle (``joblib.dump``) keeps working and saves everything, the
    training history included; use it for files you load yourself. Use
    :func:`save` for files you share or download: loading one runs no code
    from the file.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    module = getattr(estimator, "module_", None)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{type(estimator).__name__} has no torch module_ to save")
    encoder = _Encoder()
    params = {k: encoder.encode(v, f"params.{k}")
              for k, v in estimator.get_params(deep=False).items()}
    entry = _registration_of(estimator)
    param_names = set(params)
    state = _exported_state(estimator)
    if state is not None:
        state = {k: encoder.encode(v, f"state.{k}") for k, v in state.items()}
    attributes = {}
    for name, value in vars(estimator).items():
        if (name in param_names or name.startswith("_") or name in ("net_", "module_")
                or name in (state or ())):
            continue
        if not name.endswith("_"):
            raise TypeError(
                f"{type(estimator).__name__}.{name} is neither a constructor parameter nor a "
                "fitted attribute (trailing underscore), so the safe format cannot restore it"
            )
        attributes[name] = encoder.encode(value, name)
    device = next(iter(module.parameters()), torch.empty(0)).device
    tensors = dict(encoder.tensors)
    for key, tensor in module.state_dict().items():
        tensors[f"module.{key}"] = tensor.detach().cpu().contiguous().clone()
    header = {
        "format": FORMAT_NAME,
        "format_version": _PLAIN_VERSION if state is None else FORMAT_VERSION,
        "kind": entry.kind,
        "name": entry.name,
        "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "distribution": entry.distribution,
        "distribution_version": entry.version,
        "params": params,
        "attributes": attributes,
        "fitted_device": str(device),
    }
    if state is not None:
        header["state"] = state
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"robustlearn": json.dumps(header)})
    return path


def _exported_state(estimator):
    """The ``_export_fitted_state()`` of ``estimator`` (checked), or None without the hook."""
    export = getattr(estimator, EXPORT_HOOK, None)
    if export is None:
        return None
    state = export()
    if not isinstance(state, dict):
        raise TypeError(f"{type(estimator).__name__}.{EXPORT_HOOK}() must return a dict, got "
                        f"{type(state).__name__}")
    for name in state:
        if not _is_fitted_name(name):
            raise TypeError(f"{type(estimator).__name__}.{EXPORT_HOOK}() returned {name!r}, "
                            "which is not a fitted attribute name (trailing underscore)")
    return state


def _is_fitted_name(name):
    return (isinstance(name, str) and name.endswith("_") and not name.startswith("_")
            and name not in ("net_", "module_"))


# -------------------------------------------------------------------------- load
def read_header(path) -> dict:
    """The JSON header of a model file, read without loading any tensor.

    Raises
    ------
    ModelFileError
        If the file is not a safetensors file with a robustlearn header (a
        pickle or joblib file among them: it is never unpickled), or was
        written by a newer format version.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
        raw = handle.read(size) if 2 <= size <= _MAX_HEADER_BYTES else b""
    try:
        outer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        outer = None
    not_ours = (
        f"{path} is not a robustlearn model file (no safetensors header). robustlearn.load "
        "never unpickles; if this is a pickle/joblib file from a source you trust, load it "
        "with joblib.load"
    )
    if not isinstance(outer, dict):
        raise ModelFileError(not_ours)
    metadata = outer.get("__metadata__") or {}
    try:
        header = json.loads(metadata["robustlearn"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelFileError(not_ours.replace("no safetensors header",
                                              "a safetensors file without a robustlearn "
                                              "header")) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a robustlearn model file")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        from . import __version__

        raise ModelFileError(
            f"{path} was written in model-file format version {version}, but robustlearn "
            f"{__version__} reads versions up to {FORMAT_VERSION}; upgrade robustlearn "
            "to load it"
        )
    return header


def load(path, device=None):
    """Load a model file written by :func:`save`.

    Parameters
    ----------
    path : str or Path
    device : str, torch.device or None, default=None
        Where to put the network. None keeps the device it was fitted on when
        that device exists here and uses the CPU otherwise (a model fitted on
        CUDA loads on a machine without one).

    Returns
    -------
    estimator
        The fitted defense or purifier, with the saved parameters.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) If the file is not a robustlearn model file, comes
        from a newer format, names a defense or purifier that is not
        registered here, or holds a tensor whose name or shape differs from the
        network the registered class builds. Nothing from the file is run.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .device import resolve_device

    header = read_header(path)
    kind, name = header.get("kind"), header.get("name")
    if kind not in _SAVED_KINDS or not isinstance(name, str):
        raise ModelFileError(f"{path}: kind must be one of {_SAVED_KINDS}, got {kind!r}")
    try:
        entry = registry.get_registry().get(kind, name)
    except ValueError as exc:
        raise ModelFileError(
            f"{path} holds the {kind} {name!r} (from distribution "
            f"{header.get('distribution', '-')!r}), which is not registered here: {exc} "
            "Install the plugin that provides it."
        ) from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{path}: the tensors cannot be read ({exc})") from None
    params, attributes = header.get("params"), header.get("attributes")
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise ModelFileError(f"{path}: params and attributes must be objects")
    params = {k: _decode(v, tensors, f"params.{k}") for k, v in params.items()}
    attributes = {k: _decode(v, tensors, k) for k, v in attributes.items()}
    written_by = (f"{header.get('distribution', '-')} {header.get('distribution_version', '-')}"
                  f", installed here: {entry.distribution} {entry.version}")
    try:
        estimator = entry.factory(**params)
        # a defense's **kwargs stores any name (scikit-learn's init contract) and fit rejects
        # the ones that are not routed: reject them here, before anything is loaded
        from .defense import ROUTED_PREFIXES

        for key in getattr(estimator, "_extra_params", dict)():
            if not key.startswith(ROUTED_PREFIXES):
                raise TypeError(f"unexpected parameter {key!r}")
    except TypeError as exc:
        raise ModelFileError(f"{path}: the saved parameters do not fit the installed {kind} "
                             f"{name!r} ({exc}; written by {written_by})") from None
    state = _state_to_import(path, header, estimator, tensors, kind, name, written_by)
    for key, value in attributes.items():
        if not _is_fitted_name(key):
            raise ModelFileError(f"{path}: attribute {key!r} is not a fitted attribute")
        if key in (state or ()):
            raise ModelFileError(f"{path}: attribute {key!r} is both in 'attributes' and "
                                 "in 'state'")
        setattr(estimator, key, value)
    input_shape = tuple(getattr(estimator, "input_shape_", ()))
    classes = getattr(estimator, "classes_", None)
    try:
        module = estimator._build_module(input_shape, None if classes is None else len(classes))
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"{path}: the installed {kind} {name!r} cannot rebuild the saved "
                             f"network ({exc}; written by {written_by})") from None
    weights = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
    try:
        load_module_state(module, weights, "module")
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    if device is None:
        fitted = torch.device(header.get("fitted_device", "cpu"))
        device = fitted if fitted.type == "cpu" or _available(fitted) else torch.device("cpu")
    module.to(resolve_device(device)).eval()
    estimator.module_ = module
    if state is not None:
        _import_state(path, estimator, state, kind, name, written_by)
    return estimator


def _state_to_import(path, header, estimator, tensors, kind, name, written_by):
    """The decoded ``"state"`` section, or None; refuses a section the class cannot take."""
    hook = getattr(estimator, IMPORT_HOOK, None)
    wants = hook is not None and getattr(estimator, EXPORT_HOOK, None) is not None
    if "state" not in header:
        if wants:
            raise ModelFileError(
                f"{path}: the installed {kind} {name!r} keeps fitted state that this file does "
                f"not hold (no 'state' section; written by {written_by})"
            )
        return None
    state = header["state"]
    if header.get("format_version", 1) < 2 or not isinstance(state, dict):
        raise ModelFileError(f"{path}: invalid 'state' section")
    if not wants:
        raise ModelFileError(
            f"{path} holds fitted state for {IMPORT_HOOK}, which the installed {kind} {name!r} "
            f"does not implement (written by {written_by})"
        )
    for key in state:
        if not _is_fitted_name(key):
            raise ModelFileError(f"{path}: state entry {key!r} is not a fitted attribute")
    return {k: _decode(v, tensors, f"state.{k}") for k, v in state.items()}


def _import_state(path, estimator, state, kind, name, written_by):
    try:
        getattr(estimator, IMPORT_HOOK)(state)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ModelFileError(
            f"{path}: the saved fitted state does not fit the installed {kind} {name!r} "
            f"({type(exc).__name__}: {exc}; written by {written_by})"
        ) from None
    missing = sorted(k for k in state if k not in vars(estimator))
    if missing:
        raise ModelFileError(f"{path}: {type(estimator).__name__}.{IMPORT_HOOK} did not set "
                             f"{missing}")


def _available(device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return False


def load_module_state(module, state, where="module"):
    """Load a state dict read from a model file into a freshly built network, strictly.

    The tool for an ``_import_fitted_state`` hook that rebuilds a network of
    its own (a checkpoint, a teacher): unlike ``module.load_state_dict``, a
    tensor whose name or shape differs from what ``module`` expects is
    refused with a :class:`ModelFileError`, before anything is copied.

    Parameters
    ----------
    module : torch.nn.Module
        Built by the estimator's own code.
    state : dict of str to torch.Tensor
    where : str, default="module"
        Names the network in error messages.

    Returns
    -------
    torch.nn.Module
        ``module``, with the weights.

    Raises
    ------
    ModelFileError
    """
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelFileError(f"{where}: the weights must be a dict of named tensors")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{where}: the network tensors do not match the architecture the registered class "
            f"builds (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelFileError(
                f"{where}: tensor {key} has shape {tuple(tensor.shape)} but the "
                f"architecture expects {tuple(expected[key].shape)}; the file is damaged or "
                "was tampered with"
            )
    module.load_state_dict(state, strict=True)
    return module
