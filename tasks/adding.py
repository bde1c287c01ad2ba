"""Adding problem: remember two marked values across a long sequence and output their sum.

Each step carries (value, marker). Three published setups, chosen by `variant`:
  arjovsky    Arjovsky et al. 2016 / Le et al. 2015: T = length steps, values U[0, 1], one
              marker in each half, target X1 + X2. Predicting 1 scores MSE 2/12 ≈ 0.167.
              Solved: MSE <= baseline / 100.
  hochreiter  Hochreiter & Schmidhuber 1997, experiment 4: lengths T..T + T/10, values
              U[-1, 1], markers ∈ {-1, 0, 1}; X1 among the first 10 pairs, X2 among the first
              T/2 - 1 still unmarked ones; the first and last pairs are marked -1 (X1 := 0 if
              it falls on the first pair); target 0.5 + (X1 + X2)/4. A sequence is correct when
              |error| < 0.04. Solved: >= 99% correct. Shorter sequences are pre-padded with zeros.
  campos      the Skip RNN paper's setup (Campos et al. 2018, after Neil et al. 2016): values
              U(-0.5, 0.5), the first marker in the first 10%, the second in the last 50%,
              target X1 + X2. Solved: MSE two orders of magnitude below the target variance.
Metrics: mse, and accuracy = the fraction with |error| < tolerance.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import Tensor

from harness.config import ConfigError, option
from tasks.base import Batch, Criterion, SyntheticOptions, Task
from tasks.registry import register


@dataclasses.dataclass(frozen=True)
class AddingOptions(SyntheticOptions):
    section: ClassVar[str] = "task"
    length: int = option(100, "sequence length T", min=6)
    variant: Literal["arjovsky", "hochreiter", "campos"] = option(
        "arjovsky", "which published setup (see `python -m harness list`)")
    tolerance: float = option(0.04, "a prediction counts as correct when |error| < tolerance", min=0.0)


def _triangular_within(tol_over_halfwidth: float) -> float:
    """P(|S - mean| < a) for S the sum of two i.i.d. uniforms of half-width w, a/(2w) given."""
    u = min(tol_over_halfwidth, 1.0)
    return 1.0 - (1.0 - u) ** 2


@register
class Adding(Task):
    """Adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): output the sum of two marked values."""

    name = "adding"
    Options = AddingOptions
    primary_metric = "mse"
    higher_is_better = False
    reference = "Hochreiter & Schmidhuber 1997 (exp. 4); Arjovsky et al. 2016; Campos et al. 2018"
    input_size = 2
    output_size = 1

    def __init__(self, options=None):
        super().__init__(options)
        if self.options.variant == "hochreiter" and self.options.length < 20:
            # X1 sits among the first 10 pairs and X2 among the first T/2 - 1: shorter
            # sequences cannot hold the paper's layout (and X1 could land on the end marker)
            raise ConfigError("task.length: the hochreiter adding variant needs length >= 20")

    @property
    def max_length(self) -> int:
        T = self.options.length
        return T + T // 10 if self.options.variant == "hochreiter" else T

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        o, B, T = self.options, batch_size, self.options.length
        rows = torch.arange(B)
        markers = torch.zeros(B, self.max_length)
        if o.variant == "hochreiter":
            values = torch.rand(B, self.max_length, generator=gen) * 2 - 1
            lengths = torch.randint(T, self.max_length + 1, (B,), generator=gen)
            start = self.max_length - lengths  # (B,) pre-padding offset
            values[torch.arange(self.max_length) < start[:, None]] = 0.0
            first = torch.randint(0, 10, (B,), generator=gen)
            second = torch.randint(0, T // 2 - 1, (B,), generator=gen)
            second = second + (second >= first).long()  # one of the first T/2 - 1 unmarked pairs
            markers[rows, start] = -1.0
            markers[:, -1] = -1.0
            values[rows[first == 0], start[first == 0]] = 0.0  # X1 := 0 on the first pair
            first, second = start + first, start + second
        else:
            low, span = (0.0, 1.0) if o.variant == "arjovsky" else (-0.5, 1.0)
            values = torch.rand(B, T, generator=gen) * span + low
            if o.variant == "arjovsky":
                first = torch.randint(0, T // 2, (B,), generator=gen)
                second = torch.randint(T // 2, T, (B,), generator=gen)
            else:
                first = torch.randint(0, max(1, T // 10), (B,), generator=gen)
                second = torch.randint(T - T // 2, T, (B,), generator=gen)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        total = values[rows, first] + values[rows, second]  # (B,)
        y = 0.5 + total / 4 if o.variant == "hochreiter" else total
        return Batch(torch.stack([values, markers], dim=-1), y)  # x (B, T, 2)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return torch.nn.functional.mse_loss(logits.squeeze(-1).float(), batch.y)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        err = logits.squeeze(-1).float() - batch.y
        return {"mse": err.pow(2), "accuracy": (err.abs() < self.options.tolerance).float()}

    def baseline(self) -> dict[str, float]:
        """The memoryless predictor: the target's mean (1, 0.5 or 0)."""
        tol = self.options.tolerance
        if self.options.variant == "hochreiter":
            # S = X1 + X2, X ~ U[-1, 1]; X1 = 0 with probability 1/10 (first pair marked)
            mse = (0.9 * 2 / 3 + 0.1 * 1 / 3) / 16
            acc = 0.9 * _triangular_within(4 * tol / 2) + 0.1 * min(4 * tol, 1.0)
            return {"mse": mse, "accuracy": acc}
        return {"mse": 2 / 12, "accuracy": _triangular_within(tol)}

    def success(self) -> Criterion:
        if self.options.variant == "hochreiter":
            return Criterion("accuracy", 0.99, True, "|error| < 0.04 per sequence, H&S 1997; 99% correct")
        return Criterion("mse", self.baseline()["mse"] / 100, False,
                         "MSE two orders of magnitude below the memoryless baseline")
