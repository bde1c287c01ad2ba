"""How many CPU threads torch uses for a run (`train.threads`; 0 = automatic).

Torch's default is one OpenMP thread per core, and its OpenMP threads spin while they wait.
Beside other busy processes that is ruinous. Measured on the 2-core CPU machine, a 300-step
`run --variant lstm` (4.0-4.2 s of training when quiet, 1 thread), beside one / two busy torch
matmul loops: 2 spinning threads 41-154 s / 22-144 s (and 23 s to over 90 s with only other
users' load), 1 thread 5.0-12.7 s / 14.4-17.2 s, 2 threads with OMP_WAIT_POLICY=PASSIVE
5.5-9.3 s / 12.1-16.5 s (issue 12 item 9; the machine was shared, load average 3-10, so the
ranges are wide). The automatic count leaves half the cores to whatever else runs: cores // 2,
at least 1 (on 2 cores 1 thread, as fast as 2 on a quiet machine: 7.8 vs 7.9 s).
Sweeps and `reproduce --jobs K` set the count explicitly (cores // K per worker), and
`python -m harness` sets OMP_WAIT_POLICY=PASSIVE unless the environment already sets it, so
that several threads that do run sleep instead of spinning while they wait.
"""
from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def automatic() -> int:
    """cores // 2, at least 1, and never more than the process already uses (a caller that
    set fewer, e.g. a sweep worker, keeps its count)."""
    return max(1, min(torch.get_num_threads(), usable_cores() // 2))


def apply(threads: int) -> int:
    """Set torch's intra-op threads to `threads`, or the automatic count when 0; returns it."""
    count = threads or automatic()
    if count != torch.get_num_threads():
        torch.set_num_threads(count)
    return count
