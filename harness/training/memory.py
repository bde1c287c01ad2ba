"""The memory a run needs, estimated before anything is allocated, and the check that refuses a
run that cannot fit (`train.memory_check`).

The estimate, in bytes, for B = train.batch_size sequences of T = the task's longest sequence:
  parameters  P x 4 x (weights + gradients + the optimizer's slots (adam/adamw 2, rmsprop 1,
              sgd 0) + the best-validation copy), P counted on a model built on torch's `meta`
              device (shapes only: nothing is allocated, whatever the sizes)
  activations B x T x layers x directions x 3 (G + S) x 4, what the unrolled sequence keeps
              for the backward pass: G = the width of the cell's input projection (its gate
              pre-activations, e.g. 4H for an LSTM; see projection_width), S = the sizes of its
              state tensors
  data        the training batch and one evaluation chunk (tasks.base.EVAL_CHUNK sequences):
              (B + chunk) x T x (float inputs x 4, or an int64 id + its embedding x 4)
Measured on a 2-core CPU (adding task, B = 64, T = 2000, H = 256, peak RSS growth of a run):
LSTM on torch's fused path 2.26 GB for an estimate of 2.37 GB; the GRU's fast path 5.5 GB
(estimate 1.6 GB), the SimpleRNN's 1.3 GB (0.8 GB). So it refuses what cannot fit, not all
that will not. It is compared with what the device has free (psutil's available RAM on the
CPU, torch.cuda.mem_get_info on a GPU), with a margin (MARGIN).
"""
from __future__ import annotations

import dataclasses

import torch
from torch.overrides import TorchFunctionMode

from harness.config import ConfigError
from harness.device import resolve_device

FLOAT = 4  # bytes per float32 element: the dtype every run trains in
SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}  # optimizer state per parameter
MARGIN = 0.9  # refuse above this share of the free memory: the estimate leaves things out


@dataclasses.dataclass(frozen=True)
class Estimate:
    parameters: int  # bytes: weights, gradients, optimizer state and the best-validation copy
    activations: int  # bytes kept for the backward pass of one training batch
    data: int  # bytes: the training batch and one evaluation chunk

    @property
    def total(self) -> int:
        return self.parameters + self.activations + self.data


def estimate(spec) -> Estimate:
    """The memory `spec` (a RunSpec) needs to train, from its shapes alone (see the module)."""
    from harness.training.model import SequenceModel, resolve_cell_options
    from tasks.base import EVAL_CHUNK

    task = spec.build_task()  # a task of its own: building a model may give the task its head
    options = resolve_cell_options(spec.cell_class, spec.cell, task)
    with torch.device("meta"), _ShapesOnly():
        model = SequenceModel(spec.model, options, task)
    cell = model.rnn.cells[0]
    width = projection_width(spec.cell_class, cell.input_size, cell.hidden_size, options)
    count = sum(p.numel() for p in model.parameters())
    copies = 3 + SLOTS.get(spec.train.optimizer, 2)
    batch, steps, rnn = spec.train.batch_size, task.max_length, model.rnn
    per_step = 3 * (width + sum(cell.state_sizes()))
    activations = batch * steps * rnn.num_layers * rnn.directions * per_step * FLOAT
    # per step of a sequence: float inputs, or an int64 id and its embedding
    element = 8 + spec.model.embedding_dim * FLOAT if task.vocab_size else (task.input_size or 1) * FLOAT
    data = (batch + EVAL_CHUNK) * steps * element
    return Estimate(count * FLOAT * copies, activations, data)


class _ShapesOnly(TorchFunctionMode):
    """Skip in-place operations on meta tensors (they change no value there: meta tensors have
    none). The initialisers are such operations, and some (normal_) reach torch's reference
    implementations, whose first use imports the compiler stack: seconds for nothing."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
        if name.endswith("_") and not name.endswith("__") and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def projection_width(cls, input_size: int, hidden_size: int, options) -> int:
    """G, the width of `cls`'s input projection at this hidden size: measured on two tiny cells
    on the CPU (H = 2 and 4) and extended linearly (4H for an LSTM, 3H for a GRU). Running the
    projection on the meta device instead would import torch's compiler stack (seconds)."""
    with torch.no_grad():
        small = [cls(input_size, h, options).project(torch.zeros(1, input_size)).shape[-1] for h in (2, 4)]
    return small[0] + (small[1] - small[0]) * (hidden_size - 2) // 2


def available(device: torch.device) -> int:
    """Bytes free on `device`: psutil's available RAM (CPU) or torch.cuda.mem_get_info (CUDA)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def size(n: float) -> str:
    """Bytes for a person, three significant digits: '16 TB', '310 MB', '1.5 GB'."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.3g} {units[i]}"


def check(spec) -> Estimate | None:
    """Raise ConfigError (one line: the estimate, its parts, what is free, what to do) when
    `spec` cannot fit in the memory its device has free; do nothing when train.memory_check is
    false. A model that cannot be built on the meta device (a plug-in cell that allocates its
    own tensors) is not estimated (None)."""
    if not spec.train.memory_check:
        return None
    device = resolve_device(spec.train.device)
    try:
        need = estimate(spec)
    except Exception:  # noqa: BLE001  (no estimate is no reason to refuse a run)
        return None
    free = available(device)
    if need.total > MARGIN * free:
        sizes = (f"model.hidden_size={spec.model.hidden_size}, task.length={spec.task.length}, "
                 f"train.batch_size={spec.train.batch_size}")
        raise ConfigError(
            f"this run needs about {size(need.total)} of memory ({sizes}: parameters and optimizer state "
            f"{size(need.parameters)}, activations {size(need.activations)}, data {size(need.data)}) and "
            f"{device.type} has {size(free)} free; make these sizes smaller, or set "
            "train.memory_check=false if the estimate is wrong")
    return need
