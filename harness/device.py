"""Resolve a device name (`train.device`, `bench --device`) to a torch.device.

A leaf module (it imports nothing from the harness) so that the configuration (spec) can
check a device without importing the training loop, which itself depends on the spec.
"""
from __future__ import annotations

import torch


def parse_device(device: str) -> torch.device | None:
    """'auto' -> None, 'cpu', 'cuda' or 'cuda:N' -> torch.device, wherever it may run.
    Raises ValueError (naming `train.device`) for a string that names no such device."""
    if device == "auto":
        return None
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device: not a device: {device!r} (use auto, cpu, cuda or cuda:N)")
    return parsed


def resolve_device(device: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device.

    Raises ValueError (naming `train.device`) for a string that names no such device, or for a
    CUDA device on a machine without CUDA."""
    parsed = parse_device(device)
    if parsed is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={device} but CUDA is not available here (use cpu or auto)")
    return parsed
