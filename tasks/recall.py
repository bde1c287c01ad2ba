"""Delayed recall: the memory-horizon probe.

A symbol from an alphabet of K is shown first, then `length` distractor steps, then a query
marker; the model must name the first symbol at the query. Distractors are `blank` (one
constant symbol) or `noise` (random symbols from the same alphabet, which the model must
learn to ignore); the measurable horizon moves several-fold between the two. One-hot inputs
of size K + 2 (the K symbols, blank, query). Chance = 1/K. Solved: accuracy >= 99%.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import Tensor

from harness.config import option
from tasks.base import Batch, Criterion, SyntheticOptions, Task, classification_metrics, one_hot
from tasks.registry import register


@dataclasses.dataclass(frozen=True)
class RecallOptions(SyntheticOptions):
    section: ClassVar[str] = "task"
    length: int = option(20, "lag: distractor steps between the symbol and the query", min=0)
    symbols: int = option(8, "alphabet size K", min=2)
    distractors: Literal["blank", "noise"] = option("noise", "blank: a constant symbol; noise: random symbols")


@register
class Recall(Task):
    """Delayed recall: name the first of K symbols after `length` distractor steps."""

    name = "recall"
    Options = RecallOptions
    reference = "memory-horizon probe (cf. Hochreiter & Schmidhuber 1997, exp. 2)"
    output_size = 8

    def __init__(self, options=None):
        super().__init__(options)
        self.input_size = self.options.symbols + 2
        self.output_size = self.options.symbols

    @property
    def max_length(self) -> int:
        return self.options.length + 2

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        K, L, B = self.options.symbols, self.options.length, batch_size
        target = torch.randint(0, K, (B,), generator=gen)
        if self.options.distractors == "noise":
            middle = torch.randint(0, K, (B, L), generator=gen)
        else:
            middle = torch.full((B, L), K)
        ids = torch.cat([target[:, None], middle, torch.full((B, 1), K + 1)], dim=1)  # (B, L + 2)
        return Batch(one_hot(ids, K + 2), target)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), batch.y)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return classification_metrics(logits, batch.y)

    def baseline(self) -> dict[str, float]:
        K = self.options.symbols
        return {"accuracy": 1 / K, "cross_entropy": math.log(K)}

    def success(self) -> Criterion:
        return Criterion("accuracy", 0.99, True, "99% of queries answered correctly")
