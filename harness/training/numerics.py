"""How a run computes: its precision (`train.precision`) and determinism (`train.deterministic`).

bf16: the forward pass and the loss run under torch.autocast (bfloat16 on CPU and CUDA), the
backward outside it, parameters and optimizer state stay float32 (no loss scaling is needed:
bf16 has float32's range). Fast paths with one-dtype kernels run in float32 inside (the cell's
`float32_paths`); how far each path may drift from float32 is the cell's `bf16_tolerance`,
checked at T = 512 by tests/test_variant_long.py.

deterministic: torch.use_deterministic_algorithms(True), cuDNN deterministic, and the cuBLAS
workspace setting CUDA needs for it (CUBLAS_WORKSPACE_CONFIG=:4096:8, set before cuBLAS starts
unless already set). An operation without a deterministic implementation then raises instead
of running nondeterministically.
"""
from __future__ import annotations

import contextlib
import os

import torch


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` for precision "bf16"; a no-op context for "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def apply_determinism(deterministic: bool) -> None:
    """Switch torch's deterministic mode on or off for this process (every run sets it, so a
    sweep worker's trials do not inherit the previous trial's choice)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
