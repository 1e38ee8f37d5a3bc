"""``robustlearn doctor``: what this installation runs on, for bug reports and setup checks."""

from __future__ import annotations

import os
import platform
from importlib import metadata

#: Distributions whose versions matter to a run (the optional ones show "not installed").
PACKAGES = ("robustlearn", "torch", "numpy", "scipy", "scikit-learn", "skorch", "foolbox",
            "pluggy", "joblib", "safetensors", "matplotlib", "dask", "distributed")


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    """Python and package versions, by name."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    found.update({name: _version(name) for name in PACKAGES})
    return found


def devices() -> list:
    """One line per device torch can use: the CPU, each CUDA device with its memory, MPS."""
    import torch

    lines = [f"cpu: {os.cpu_count()} logical cores"]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            lines.append(f"cuda:{index}: {props.name}, {total / 2**30:.1f} GiB "
                         f"({free / 2**30:.1f} GiB free), capability {props.major}.{props.minor}")
    else:
        built = torch.version.cuda or "none"
        lines.append(f"cuda: not available (torch built for CUDA {built})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        lines.append("mps: available")
    return lines


def threads() -> dict:
    """Torch's thread pools and the environment variables that size them."""
    import torch

    found = {"torch intra-op": torch.get_num_threads(),
             "torch inter-op": torch.get_num_interop_threads()}
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        found[variable] = os.environ.get(variable, "unset")
    return found


def plugins() -> list:
    """One line per plugin: what it registered, or the error it was skipped with."""
    from . import registry

    reg = registry.get_registry()
    by_plugin = {}
    for kind in registry.KINDS:
        for entry in registry.list_registrations(kind):
            key = (entry.plugin, entry.distribution, entry.version)
            by_plugin.setdefault(key, []).append(f"{kind} {entry.name}")
    lines = [f"{plugin} ({dist} {version}): ok, {', '.join(things)}"
             for (plugin, dist, version), things in sorted(by_plugin.items())]
    lines += [f"{b.plugin} ({b.distribution} {b.version}): BROKEN, {b.error}"
              for b in reg.broken]
    return lines


def report() -> str:
    """The whole diagnosis as text: versions, devices, threads, plugins."""
    sections = [
        ("versions", [f"{k}: {v}" for k, v in versions().items()]),
        ("devices", devices()),
        ("threads", [f"{k}: {v}" for k, v in threads().items()]),
        ("plugins", plugins()),
    ]
    return "\n".join(f"{title}\n" + "\n".join(f"  {line}" for line in lines)
                     for title, lines in sections)
