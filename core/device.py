"""Where tensors live: resolving ``device="auto"``."""

import torch


def resolve_device(device="auto") -> torch.device:
    """Return the torch device for a spec; ``"auto"`` means CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return resolved
