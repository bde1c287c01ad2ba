"""The contract every task implements.

A task owns its data (a seeded generator or a dataset), its loss, its per-sample metrics,
its chance / memoryless baseline and its success criterion. It knows nothing about models,
tracking or tuning: the harness gives it a model's logits and asks for numbers.

Data is random access: batch `index` of split `split` under seed `seed` is always the same
tensor, on any device (synthetic batches are drawn on the CPU from a torch.Generator seeded
from (seed, split, index), then moved). Train, validation and test are independent streams;
validation and test are fixed sets of `EVAL_CHUNK`-sized chunks, independent of batch sizes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import ClassVar, Iterator

import torch
from torch import Tensor

from harness.config import Options, option

EVAL_CHUNK = 256  # sequences per validation/test chunk


@dataclasses.dataclass
class Batch:
    x: Tensor  # (B, T, input_size) float features, or (B, T) int64 token ids
    y: Tensor  # targets: (B,) class ids, (B, T) per-step class ids, or (B,) regression values
    times: Tensor | None = None  # (B, T) timestamps, for cells that read them
    lengths: Tensor | None = None  # (B,) int64: sequence b is x[b, :lengths[b]], the rest padding

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.x), move(self.y), move(self.times), move(self.lengths))

    def __len__(self) -> int:
        return self.x.shape[0]

    def head(self, n: int) -> "Batch":
        """The first n sequences."""
        cut = lambda t: None if t is None else t[:n]  # noqa: E731
        return Batch(cut(self.x), cut(self.y), cut(self.times), cut(self.lengths))


@dataclasses.dataclass(frozen=True)
class Criterion:
    """What "solved" means: `metric` at least (or at most) `threshold`."""

    metric: str
    threshold: float
    higher_is_better: bool
    source: str  # where the threshold comes from

    def met(self, value: float) -> bool:
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def __str__(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        return f"{self.metric} {op} {self.threshold:.4g} ({self.source})"


@dataclasses.dataclass(frozen=True)
class TaskOptions(Options):
    section: ClassVar[str] = "task"
    length: int = option(100, "the task's difficulty dial (lag or sequence length)", min=1)


@dataclasses.dataclass(frozen=True)
class SyntheticOptions(TaskOptions):
    val_size: int = option(1024, "validation sequences (rounded up to 256-sequence chunks)", min=1)
    test_size: int = option(4096, "test sequences (rounded up to 256-sequence chunks)", min=1)


def generator(seed: int, split: str, index: int) -> torch.Generator:
    """An independent CPU generator per (seed, split, index)."""
    digest = hashlib.blake2b(f"{seed}/{split}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


class Task:
    """Subclasses set the class attributes and implement `generate` (synthetic) or override
    `train_batch` / `eval_batches` / `steps_per_epoch` (datasets)."""

    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    per_step: ClassVar[bool] = False  # logits for every step (B, T, C) instead of (B, C)
    dataset: ClassVar[bool] = False  # a finite dataset trained by epochs (else a generator, by steps)
    # Consecutive batches continue the same sequences (a text stream): the harness carries each
    # batch's final state, detached, into the next (truncated BPTT) and restarts it where
    # `starts_stream` says, and at the start of every evaluation.
    stateful: ClassVar[bool] = False
    # The targets lie in the input's future (next-token prediction): the model may read each
    # sequence in order only. The spec refuses `model.bidirectional` for such a task (a backward
    # direction would read the very token it predicts), in every command (harness/training/spec.py).
    causal: ClassVar[bool] = False
    # Dataset tasks: the smallest meaningful options (on a few dozen reviews: tests, smoke runs).
    smoke_options: ClassVar[dict] = {}
    # The baseline and criterion need the data (computed from it): listing does not ask for them.
    baseline_from_data: ClassVar[bool] = False
    primary_metric: ClassVar[str] = "accuracy"  # early stopping and tuning target
    higher_is_better: ClassVar[bool] = True
    reference: ClassVar[str] = ""  # the paper the setup follows

    input_size: int | None = None  # float features per step, or
    vocab_size: int | None = None  # token ids < vocab_size (the model embeds them)
    output_size: int = 1

    def __init__(self, options: TaskOptions | None = None):
        self.options = options if options is not None else self.Options()

    # -- data --------------------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        """The longest sequence the task produces (chrono initialisation uses it)."""
        raise NotImplementedError

    def generate(self, batch_size: int, gen: torch.Generator) -> Batch:
        """Draw `batch_size` fresh sequences on the CPU from `gen` (vectorised, no per-sample loops)."""
        raise NotImplementedError

    def steps_per_epoch(self, batch_size: int) -> int | None:
        """None for generators (infinite streams, trained by steps)."""
        return None

    def train_batch(self, index: int, batch_size: int, *, seed: int, device="cpu") -> Batch:
        return self.generate(batch_size, generator(seed, "train", index)).to(device)

    def eval_batches(self, split: str, *, seed: int, device="cpu") -> Iterator[Batch]:
        """The fixed validation ("val") or test ("test") set, chunk by chunk."""
        size = self.options.val_size if split == "val" else self.options.test_size
        for index in range(math.ceil(size / EVAL_CHUNK)):
            yield self.generate(EVAL_CHUNK, generator(seed, split, index)).to(device)

    def starts_stream(self, index: int, batch_size: int) -> bool:
        """Stateful tasks: whether train batch `index` starts its streams over."""
        return True

    # -- model side ----------------------------------------------------------------------------
    def make_head(self, in_features: int) -> torch.nn.Module:
        """The model's output layer on the recurrent features: by default a linear map to
        `output_size` logits. A task may own a special head (e.g. an adaptive softmax)."""
        return torch.nn.Linear(in_features, self.output_size)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Per-sample values (B,) of every metric; the harness averages them over a split."""
        raise NotImplementedError

    def summarise(self, means: dict[str, float]) -> dict[str, float]:
        """The split's metrics from the means of the per-sample values (e.g. a perplexity, which
        is exp of the mean cross-entropy, not a mean of per-sample perplexities)."""
        return means

    def baseline(self) -> dict[str, float]:
        """The metrics of the best predictor that ignores the dependency, for these options."""
        raise NotImplementedError

    def success(self) -> Criterion:
        raise NotImplementedError

    def describe(self) -> str:
        return (self.__doc__ or self.name).strip().splitlines()[0]


def classification_metrics(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-sample accuracy and cross-entropy for (B, C) logits and (B,) targets."""
    ce = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
    return {"accuracy": (logits.argmax(-1) == target).float(), "cross_entropy": ce}


def one_hot(ids: Tensor, classes: int) -> Tensor:
    return torch.nn.functional.one_hot(ids, classes).float()
