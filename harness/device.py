"""Resolve a device name (`train.device`, `bench --device`) to a torch.device.

A leaf module (it imports nothing from the harness) so that the configuration (spec) can
check a device without importing the training loop, which itself depends on the spec.
"""
from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device.

    Raises ValueError (naming `train.device`) for a string torch does not parse, or for a CUDA
    device on a machine without CUDA."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"train.device: not a device: {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={device} but CUDA is not available here (use cpu or auto)")
    return parsed
