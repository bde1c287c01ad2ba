"""Frequency discrimination (Neil, Pfeiffer & Liu 2016, Phased LSTM, task 1).

Classify sine waves sin(2πt/P - φ) by period: class 1 if 5 <= P <= 6 ms, class 0 otherwise,
with P log-uniform in [1, 100] ms and half of every batch forced into [5, 6] (the authors'
generator). Each wave lasts U(15, `length`) ms, starts at U(0, length - duration) and has a
phase shift U(0, duration). Sampling regimes (`sampling`):
  standard   every 1 ms                      (15..125 steps at length 125)
  high_res   every 0.1 ms                    (150..1250 steps)
  async      U(15, length) random times      (15..125 steps, irregular)
The timestamps (ms) go to the model as `times` (Phased LSTM's gate reads them) and, with
`time_input`, as a second input feature t/100 as the authors gave their LSTM baseline.
Shorter waves are pre-padded with zeros to a fixed length. Chance = the majority class,
0.5 + 0.5·ln(6/5)/ln(100) ≈ 0.520. Solved: accuracy >= 90% (the paper's LSTM reaches 89%
under standard sampling, Phased LSTM 99%; its "epochs to 90%" is the comparison it draws).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import Tensor

from harness.config import option
from tasks.base import Batch, Criterion, SyntheticOptions, Task, classification_metrics
from tasks.registry import register

RESOLUTION = {"standard": 1.0, "high_res": 0.1, "async": 1.0}  # ms per step (async: mean density)


@dataclasses.dataclass(frozen=True)
class FrequencyOptions(SyntheticOptions):
    section: ClassVar[str] = "task"
    length: int = option(125, "longest wave duration in ms (the authors use 125)", min=16)
    sampling: Literal["standard", "high_res", "async"] = option("standard", "sampling regime")
    min_duration: float = option(15.0, "shortest wave duration in ms", min=1.0)
    time_input: bool = option(True, "also feed the timestamp (t/100) as an input feature")
    val_size: int = option(512, "validation sequences", min=1)
    test_size: int = option(2048, "test sequences", min=1)


@register
class Frequency(Task):
    """Frequency discrimination (Neil et al. 2016, task 1): is the sine wave's period in 5-6 ms?"""

    name = "frequency"
    Options = FrequencyOptions
    reference = "Neil, Pfeiffer & Liu 2016 (Phased LSTM), task 1"
    output_size = 2

    def __init__(self, options=None):
        super().__init__(options)
        self.input_size = 2 if self.options.time_input else 1

    @property
    def max_length(self) -> int:
        return math.ceil(self.options.length / RESOLUTION[self.options.sampling])

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        o, B, M = self.options, batch_size, self.max_length
        u = lambda *shape: torch.rand(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
        duration = o.min_duration + u(B) * (o.length - o.min_duration)  # (B,) ms
        start = u(B) * (o.length - duration)
        shift = u(B) * duration
        period = torch.exp(u(B) * math.log(100.0))  # log-uniform on [1, 100] ms
        half = B // 2
        period[:half] = 5.0 + u(half)  # as the authors: half of every batch in the target band
        steps = torch.arange(M, dtype=torch.float64)
        if o.sampling == "async":
            count = (o.min_duration + u(B) * (o.length - o.min_duration)).long()  # points (B,)
            valid = steps >= (M - count)[:, None]  # pre-padding: valid samples at the end
            draws = torch.where(valid, u(B, M), -1.0).sort(dim=1).values  # sorted within valid
            t = start[:, None] + draws * duration[:, None]
        else:
            res = RESOLUTION[o.sampling]
            count = torch.ceil(duration / res).long().clamp(max=M)
            index = steps - (M - count)[:, None]  # (B, M): sample index, negative = padding
            valid = index >= 0
            t = start[:, None] + index * res
        t = torch.where(valid, t, 0.0)
        wave = torch.where(valid, torch.sin(2 * math.pi * t / period[:, None] - shift[:, None]), 0.0)
        features = [wave] + ([t / 100.0] if o.time_input else [])
        x = torch.stack(features, dim=-1).float()  # (B, M, 1 or 2)
        label = ((period >= 5.0) & (period <= 6.0)).long()
        return Batch(x, label, times=t.float())

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return torch.nn.functional.cross_entropy(logits.float(), batch.y)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return classification_metrics(logits, batch.y)

    def baseline(self) -> dict[str, float]:
        p = 0.5 + 0.5 * math.log(6 / 5) / math.log(100)
        return {"accuracy": max(p, 1 - p), "cross_entropy": -(p * math.log(p) + (1 - p) * math.log(1 - p))}

    def success(self) -> Criterion:
        return Criterion("accuracy", 0.90, True, "90% correct, the paper's 'epochs to 90%' mark")
