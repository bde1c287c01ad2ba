"""Copy memory (Arjovsky, Shah & Bengio 2016, "Unitary Evolution Recurrent Neural Networks").

Symbols a0..a9: ten symbols drawn from a0..a7, then `length` - 1 blanks (a8), the delimiter
a9, then ten blanks; total T + 20 steps. The target is T + 10 blanks followed by the ten
symbols. The loss is the mean cross-entropy over all T + 20 steps; the memoryless baseline
(blanks, then uniform guesses) scores 10·log(8)/(T + 20): T = 100 -> 0.1733, 500 -> 0.0400.
Accuracy is measured on the ten recalled symbols (chance 1/8). Solved: cross-entropy below
1% of the baseline (every symbol recalled with confidence).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor

from harness.config import option
from tasks.base import Batch, Criterion, SyntheticOptions, Task, one_hot
from tasks.registry import register

SYMBOLS, BLANK, DELIMITER, RECALL = 8, 8, 9, 10


@dataclasses.dataclass(frozen=True)
class CopyOptions(SyntheticOptions):
    section: ClassVar[str] = "task"
    length: int = option(100, "T: the blank gap between the symbols and their recall", min=1)


@register
class Copy(Task):
    """Copy memory (Arjovsky et al. 2016): reproduce 10 symbols after T blanks."""

    name = "copy"
    Options = CopyOptions
    per_step = True
    primary_metric = "cross_entropy"
    higher_is_better = False
    reference = "Arjovsky, Shah & Bengio 2016"
    input_size = 10
    output_size = 9  # a0..a8: the eight symbols and the blank

    @property
    def max_length(self) -> int:
        return self.options.length + 2 * RECALL

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        T, B = self.options.length, batch_size
        symbols = torch.randint(0, SYMBOLS, (B, RECALL), generator=gen)
        blanks = torch.full((B, T - 1), BLANK)
        tail = torch.full((B, RECALL), BLANK)
        delimiter = torch.full((B, 1), DELIMITER)
        ids = torch.cat([symbols, blanks, delimiter, tail], dim=1)  # (B, T + 20)
        target = torch.cat([torch.full((B, T + RECALL), BLANK), symbols], dim=1)  # (B, T + 20)
        return Batch(one_hot(ids, 10), target)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch.y.flatten())

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), batch.y, reduction="none")
        recalled = logits[:, -RECALL:].argmax(-1) == batch.y[:, -RECALL:]  # (B, 10)
        return {"cross_entropy": ce.mean(1), "accuracy": recalled.float().mean(1)}

    def baseline(self) -> dict[str, float]:
        return {"cross_entropy": RECALL * math.log(SYMBOLS) / (self.options.length + 2 * RECALL),
                "accuracy": 1 / SYMBOLS}

    def success(self) -> Criterion:
        return Criterion("cross_entropy", self.baseline()["cross_entropy"] / 100, False,
                         "cross-entropy below 1% of the memoryless baseline")
