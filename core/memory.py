"""Batch sizes from a memory budget, so large test sets never run a device out of memory.

An attack keeps the activations of every layer for the backward pass, so its
memory grows linearly with the batch; :func:`batch_size_for_budget` picks the
largest batch whose estimated footprint fits a byte budget, from
:func:`activation_bytes_per_sample` (measured by forward hooks on one sample)
and :func:`memory_budget` (a fraction of what the device has free).
"""

from __future__ import annotations

import os

import torch

#: Bytes kept per activation value during an attack: the value, its gradient, and slack for
#: the temporaries of the loss and the optimiser step.
BYTES_PER_ACTIVATION = 3 * 4
#: Budget assumed when the free memory of a CPU cannot be read.
DEFAULT_CPU_BUDGET = 2 * 1024**3


def memory_budget(device="cpu", fraction=0.5) -> int:
    """Bytes a batch may use on ``device``: ``fraction`` of its free memory.

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
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
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
    counted = [int(torch.Size(input_shape).numel())]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            counted.append(output.numel())

    # leaves only: a container's output is its last child's, already counted
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros((1,) + tuple(input_shape), device=device))
    finally:
        module.train(was_training)
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
