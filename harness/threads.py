"""How many CPU threads torch uses for a run (train.threads; 0 = automatic)."""
from __future__ import annotations

import os

import torch


def automatic(device: torch.device) -> int:
    """The automatic thread count (see the module docstring for the measurements behind it)."""
    if device.type != "cpu":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch.get_num_threads(), cores // 2))


def apply(threads: int, device: torch.device) -> int:
    """Set torch's intra-op threads: `threads`, or automatic when 0; returns the count."""
    count = threads or automatic(device)
    if count != torch.get_num_threads():
        torch.set_num_threads(count)
    return count
