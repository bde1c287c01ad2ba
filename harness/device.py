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


def parse_devices(text: str | None, available: int) -> list[int]:
    """`--devices` -> CUDA device indices: '0,1,3' as given, '' or None -> all `available`
    (0 .. available-1; none on a machine without CUDA). Raises ValueError naming `--devices`
    for a malformed list, a repeated index or one that is not < available."""
    if not text:
        return list(range(available))
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--devices {text!r}: expected CUDA device indices such as 0,1,2") from None
    if not indices or len(set(indices)) < len(indices) or min(indices) < 0:
        raise ValueError(f"--devices {text!r}: expected distinct indices >= 0, such as 0,1,2")
    if available == 0:
        raise ValueError(f"--devices {text!r}: this machine has no CUDA device")
    missing = [i for i in indices if i >= available]
    if missing:
        raise ValueError(f"--devices {text!r}: this machine has {available} CUDA device(s) "
                         f"(0..{available - 1}); no device {missing[0]}")
    return indices


def assign_devices(workers: int, devices: list[int], requested: str = "auto") -> list[str]:
    """The `train.device` of each of `workers` worker processes: worker i runs on
    cuda:devices[i mod len(devices)] (round robin, so K >= N puts ceil(K/N) workers on the first
    devices and floor(K/N) on the rest). With no CUDA devices, or `requested` naming the CPU,
    every worker gets `requested` unchanged ('auto' then resolves to the CPU in each worker)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not devices or requested == "cpu":
        return [requested] * workers
    return [f"cuda:{devices[i % len(devices)]}" for i in range(workers)]


def see_only(gpu: str | None) -> None:
    """Make this process see only CUDA device `gpu` (a worker of `--devices`; None: no change).
    Call it before CUDA starts in the process, so that its "auto"/"cuda" is that GPU."""
    import os

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def visible_per_worker(workers: int, devices: str | None, requested: str = "auto") -> tuple[str, ...]:
    """The CUDA_VISIBLE_DEVICES value of each of `workers` worker processes (`reproduce --jobs K
    --devices ...`, `sweep --workers K --devices ...`): worker i sees only the GPU that
    assign_devices gives it, so its runs' "auto"/"cuda" is that device. () = leave every worker's
    devices alone: `requested` is the CPU, or no --devices on a machine without CUDA.
    Raises ValueError (naming `--devices`) for a bad list or one this machine cannot serve."""
    if requested == "cpu":
        return ()
    indices = parse_devices(devices, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if not indices:
        return ()
    return tuple(d.split(":")[1] for d in assign_devices(workers, indices))
