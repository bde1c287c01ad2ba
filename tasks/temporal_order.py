"""Temporal order (Hochreiter & Schmidhuber 1997, experiment 6).

Sequences of length T..T + T/10 over 8 symbols {a, b, c, d, B, E, X, Y}: E first, B last,
distractors a-d elsewhere, except at two (`symbols` = 2, 4 classes) or three (`symbols` = 3,
8 classes) relevant positions holding X or Y. The class is the order of the X/Ys. Positions
scale with T as in the paper's T = 100: t1 ∈ [10, 20], t2 ∈ [50, 60] for two symbols;
t1 ∈ [10, 20], t2 ∈ [33, 43], t3 ∈ [66, 76] for three. Shorter sequences are pre-padded with
all-zero inputs. Chance = 1/4 or 1/8. Solved: at most 3 errors in 2,560 sequences (H&S 1997).
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

A, B_END, E_START, X_SYM = 0, 4, 5, 6  # a-d are 0-3, then B, E, X, Y
WINDOWS = {2: ((0.10, 0.20), (0.50, 0.60)), 3: ((0.10, 0.20), (0.33, 0.43), (0.66, 0.76))}


@dataclasses.dataclass(frozen=True)
class TemporalOrderOptions(SyntheticOptions):
    section: ClassVar[str] = "task"
    length: int = option(100, "minimum sequence length T (lengths are T..T + T/10)", min=20)
    symbols: Literal[2, 3] = option(2, "relevant X/Y symbols: 2 (4 classes) or 3 (8 classes)")


@register
class TemporalOrder(Task):
    """Temporal order (H&S 1997, exp. 6): classify the order of widely separated X/Y symbols."""

    name = "temporal_order"
    Options = TemporalOrderOptions
    reference = "Hochreiter & Schmidhuber 1997 (exp. 6a, 6b)"
    input_size = 8

    def __init__(self, options=None):
        super().__init__(options)
        self.output_size = 2 ** self.options.symbols

    @property
    def max_length(self) -> int:
        return self.options.length + self.options.length // 10

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        T, n, B = self.options.length, self.options.symbols, batch_size
        M, rows = self.max_length, torch.arange(batch_size)
        lengths = torch.randint(T, M + 1, (B,), generator=gen)
        start = M - lengths  # (B,) pre-padding offset
        ids = torch.randint(A, A + 4, (B, M), generator=gen)  # distractors a-d
        ids[rows, start] = E_START
        ids[:, -1] = B_END
        which = torch.randint(0, 2, (B, n), generator=gen)  # 0 = X, 1 = Y
        for k, (lo, hi) in enumerate(WINDOWS[n]):  # n <= 3 positions: a loop over windows
            pos = torch.randint(round(lo * T), round(hi * T) + 1, (B,), generator=gen)
            ids[rows, start + pos] = X_SYM + which[:, k]
        x = one_hot(ids, 8)
        x[torch.arange(M) < start[:, None]] = 0.0  # padding carries no symbol
        label = (which * (2 ** torch.arange(n - 1, -1, -1))).sum(1)  # XX=0, XY=1, YX=2, YY=3, ...
        return Batch(x, label)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), batch.y)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return classification_metrics(logits, batch.y)

    def baseline(self) -> dict[str, float]:
        classes = self.output_size
        return {"accuracy": 1 / classes, "cross_entropy": math.log(classes)}

    def success(self) -> Criterion:
        return Criterion("accuracy", 1 - 3 / 2560, True, "at most 3 errors in 2,560 sequences, H&S 1997")
