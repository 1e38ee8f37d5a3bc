"""Batch sizes from a memory budget, so large test sets never run a device out of memory.

An attack keeps the activations of every layer for the backward pass, so its
memory grows linearly with the batch; :func:`batch_size_for_budget` picks the
largest batch whose estimated footprint fits a byte budget, from
:func:`activation_bytes_per_sample` (measured by forward hooks on one sample)
and :func:`memory_budget` (a fraction of what the device has free, or the
budget set with :func:`budget`).

Who uses it: prediction, detection and certification of every defense
(``inference_batch_size``), and every attack (its ``batch_size`` and
``memory_budget`` parameters, :class:`robustlearn.attacks.BaseAttack`), hence
:func:`robustlearn.evaluate` (its ``memory_budget`` parameter) and the audit.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import os
import threading

import torch

#: Bytes kept per activation value during an attack: the value, its gradient, and slack for
#: the temporaries of the loss and the optimiser step.
BYTES_PER_ACTIVATION = 3 * 4
#: Budget assumed when the free memory of a CPU cannot be read.
DEFAULT_CPU_BUDGET = 2 * 1024**3

# the budget set by ``budget(...)``: None is "a fraction of the device's free memory". A context
# variable: each thread has its own (joblib's threading backend runs units side by side), and
# leaving a block restores exactly what it replaced.
_configured_budget = contextvars.ContextVar("robustlearn_memory_budget", default=None)


def check_memory_budget(value, name="memory_budget"):
    """Check a memory budget: None, or a positive number of bytes; return it as int (or None).

    Parameters
    ----------
    value : int or None
    name : str
        Parameter name used in error messages.

    Returns
    -------
    int or None
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None or a number of bytes (an int), got "
                        f"{type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive number of bytes or None, got {value}")
    return int(value)


@contextlib.contextmanager
def budget(nbytes):
    """Within this block, batches are sized to ``nbytes`` instead of half the free memory.

    Applies to everything that calls :func:`memory_budget` in this thread:
    prediction and detection of every defense, and every attack whose own
    ``memory_budget`` parameter is None (so an evaluation or an audit run in
    the block). :func:`robustlearn.evaluate` takes ``memory_budget=`` and sets
    it inside each unit of work, which also reaches joblib and Dask workers.

    Parameters
    ----------
    nbytes : int or None
        Bytes a batch may use; None restores the default (half the free memory).

    Examples
    --------
    >>> from robustlearn.memory import budget, memory_budget
    >>> with budget(256 * 1024**2):
    ...     memory_budget("cpu")
    268435456
    """
    nbytes = check_memory_budget(nbytes, "nbytes")
    token = _configured_budget.set(nbytes)
    try:
        yield nbytes
    finally:
        _configured_budget.reset(token)


def budget_if_given(nbytes):
    """:func:`budget` for a given ``nbytes``; with None, the enclosing budget stays in force.

    What a function taking a ``memory_budget=None`` parameter wants (``evaluate``, ``audit``),
    where :func:`budget` with None would reset an enclosing block to the default.

    Parameters
    ----------
    nbytes : int or None

    Returns
    -------
    context manager
    """
    return budget(nbytes) if nbytes is not None else contextlib.nullcontext()


def _available_cpu_bytes():
    """Memory the kernel can give without swapping (``MemAvailable``, which counts reclaimable
    page cache; "free" pages alone are small on any machine that has read files)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_budget(device="cpu", fraction=0.5) -> int:
    """Bytes a batch may use on ``device``: ``fraction`` of its free memory.

    Inside a :func:`budget` block, the budget set there instead.

    Parameters
    ----------
    device : str or torch.device
    fraction : float, default=0.5
        Share of the free memory to use (the rest is left to other tensors,
        the allocator's fragmentation and other processes).

    Returns
    -------
    int
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    configured = _configured_budget.get()
    if configured is not None:
        return configured
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        free = _available_cpu_bytes()
    except (AttributeError, ValueError, OSError):
        free = DEFAULT_CPU_BUDGET / fraction
    return int(free * fraction)


def activation_bytes_per_sample(module, input_shape, device=None) -> int:
    """Bytes one sample costs in a forward-and-backward pass through ``module``.

    Counts the input and the output of every leaf submodule for one sample
    (forward hooks, no gradient), times :data:`BYTES_PER_ACTIVATION`. Parameters are
    not counted: they do not grow with the batch.
    """
    if device is None:
        device = next(iter(module.parameters()), torch.empty(0)).device
    was_training = module.training
    module.eval()
    try:
        return forward_bytes_per_sample([module], module, input_shape, device)
    finally:
        module.train(was_training)


def forward_bytes_per_sample(modules, forward, input_shape, device="cpu") -> int:
    """Bytes one sample costs in a forward-and-backward pass of ``forward``.

    Like :func:`activation_bytes_per_sample`, for any function of a batch
    (an attack surface: a purifier then a classifier, several draws of a
    stochastic defense, the iterations of a fixed-point loop) whose layers are
    the leaf submodules of ``modules``: every call of a layer during one
    forward pass on a zero sample counts, so a surface that averages ``k``
    draws costs ``k`` times one draw, as it does in the backward pass.

    Parameters
    ----------
    modules : iterable of torch.nn.Module
        Every network ``forward`` runs.
    forward : callable
        Maps a batch of shape ``(n, *input_shape)`` on ``device`` to an output.
    input_shape : tuple of int
    device : str or torch.device, default="cpu"

    Returns
    -------
    int
    """
    counted = [int(torch.Size(input_shape).numel())]
    # the hooks sit on shared modules: another thread attacking the same network (evaluate's
    # units under a threading backend) must not be counted as this pass's layers
    measuring = threading.get_ident()

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and threading.get_ident() == measuring:
            counted.append(output.numel())

    # leaves only: a container's output is its last child's, already counted
    leaves = {id(m): m for module in modules for m in module.modules()
              if next(m.children(), None) is None}
    handles = [m.register_forward_hook(hook) for m in leaves.values()]
    try:
        with torch.no_grad():
            forward(torch.zeros((1,) + tuple(input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return int(sum(counted)) * BYTES_PER_ACTIVATION


def batch_size_for_budget(bytes_per_sample, budget_bytes, *, minimum=1, maximum=None) -> int:
    """The largest batch whose ``bytes_per_sample * batch`` fits ``budget_bytes``.

    Parameters
    ----------
    bytes_per_sample : int
        From :func:`activation_bytes_per_sample` (or a measurement).
    budget_bytes : int
        From :func:`memory_budget`.
    minimum : int, default=1
        Never below this (one sample must run even when the budget is tight).
    maximum : int, optional
        Never above this (the caller's configured batch size).

    Returns
    -------
    int
    """
    if bytes_per_sample <= 0:
        raise ValueError(f"bytes_per_sample must be positive, got {bytes_per_sample!r}")
    size = max(int(minimum), int(budget_bytes // bytes_per_sample))
    return size if maximum is None else max(int(minimum), min(size, int(maximum)))


def inference_batch_size(module, input_shape, device, maximum) -> int:
    """``maximum``, lowered so that a batch takes at most half the free memory of ``device``.

    The estimate is an optimisation: when a module cannot run on a zero image
    (a network with data-dependent control flow, say), ``maximum`` is used.
    """
    try:
        per_sample = activation_bytes_per_sample(module, input_shape, device)
    except Exception:  # noqa: BLE001 - any module error only disables the cap
        return int(maximum)
    return batch_size_for_budget(per_sample, memory_budget(device), maximum=maximum)
