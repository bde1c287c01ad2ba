"""IMDB sentiment (Maas et al. 2011): is a movie review, given as word ids, positive?

The Large Movie Review Dataset: 25,000 training and 25,000 test reviews, 12,500 per class in
each; `val_size` training reviews (5,000) are held out for validation, chosen by `split_seed`
so the validation set is the same in every run. Reviews are word ids (0 padding, 1 unknown,
2.. the vocab_size - 2 most frequent training words), padded/truncated to `length` at the
front by default, as in the Keras recipe (Chollet, Deep Learning with Python, §6.2:
Embedding(10000, 32) -> SimpleRNN/LSTM(32) -> Dense(1, sigmoid), maxlen 500). One logit per
review, binary cross-entropy. Chance = the majority class, 0.5 (cross-entropy log 2).
Solved: accuracy >= 0.85. The data pipeline (archive, checksum, cache) is tasks/imdb_data.py;
it runs on the first batch, so creating the task and listing tasks never touch the data.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.config import option
from tasks import imdb_data
from tasks.base import EVAL_CHUNK, Batch, Criterion, Task, TaskOptions, generator
from tasks.registry import register

TRAIN_REVIEWS = 25_000  # in both accepted archives, whose checksums pin their contents


@dataclasses.dataclass(frozen=True)
class ImdbOptions(TaskOptions):
    section: ClassVar[str] = "task"
    length: int = option(500, "reviews are padded/truncated to this many words (Keras recipe: 500)", min=1)
    vocab_size: int = option(10000, "word ids: padding, unknown and the vocab_size - 2 most frequent words", min=3)
    padding: Literal["pre", "post"] = option("pre", "pad short reviews at the front (pre, as Keras) or back")
    truncating: Literal["pre", "post"] = option("pre", "cut long reviews at the front (pre: keep the end) or back")
    mask_padding: bool = option(True, "give the model each review's true length, so padding is never read "
                                      "as input (false: the padding is read as words, as the Keras recipe does)")
    val_size: int = option(5000, "training reviews held out for validation", min=1, max=TRAIN_REVIEWS - 1)
    split_seed: int = option(0, "chooses the held-out validation reviews (fixed across runs)")
    train_subset: int = option(0, "train on a seeded random N of the training reviews (0 = all); quick tests", min=0)
    test_subset: int = option(0, "test on a seeded random N of the 25,000 test reviews (0 = all)", min=0)
    data_dir: str = option("", "data directory ('' = $HARNESS_DATA_DIR, else the per-user cache)")
    source: str = option("", "path of the aclImdb tar.gz ('' = look in the data directory, else download)")
    sha256: str = option("", "TESTS ONLY: accept an archive with this sha256 instead of the two real ones")


@register
class Imdb(Task):
    """IMDB sentiment (Maas et al. 2011): classify 25,000 movie reviews, as word ids, by polarity."""

    name = "imdb"
    Options = ImdbOptions
    dataset = True
    smoke_options = {"length": 16, "val_size": 6}
    reference = "Maas et al. 2011; Keras recipe: Chollet 2017, Deep Learning with Python §6.2"
    input_size = None
    output_size = 1  # one logit, as Keras' Dense(1, sigmoid): 33 parameters on a 32-unit state

    def __init__(self, options=None):
        super().__init__(options)
        self.vocab_size = self.options.vocab_size
        self.encoded: imdb_data.Encoded | None = None
        self._splits: dict[str, tuple[Tensor, Tensor]] | None = None
        self._order: tuple[tuple[int, int], Tensor] | None = None  # the current epoch's permutation
        self._unigram: Tensor | None = None

    @property
    def max_length(self) -> int:
        return self.options.length

    # -- data --------------------------------------------------------------------------------
    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """{"train", "val", "test"}: (ids (N, length) int16/int32, labels (N,) int64), loaded once."""
        if self._splits is None:
            o = self.options
            enc = imdb_data.prepare(o.source or None, o.data_dir or None, vocab_size=o.vocab_size,
                                    length=o.length, padding=o.padding, truncating=o.truncating,
                                    sha256=o.sha256 or None)
            n = len(enc.train_y)
            if o.val_size >= n:
                raise imdb_data.DataError(f"task.val_size={o.val_size} leaves no training reviews of {n}")
            # Seeded by split_seed alone, so the held-out reviews never depend on the run's seed.
            perm = torch.randperm(n, generator=generator(o.split_seed, "imdb-validation", 0))
            val, train = perm[: o.val_size].sort().values, perm[o.val_size:].sort().values
            test = torch.arange(len(enc.test_y))
            # Subsets are random (the archive lists every negative review first), seeded like the split.
            if o.train_subset:
                train = train[torch.randperm(len(train), generator=generator(o.split_seed, "imdb-train-subset", 0))
                              [: o.train_subset]].sort().values
            if o.test_subset:
                test = torch.randperm(len(test), generator=generator(o.split_seed, "imdb-test-subset", 0))[
                    : o.test_subset].sort().values
            self._splits = {"train": (enc.train_x[train], enc.train_y[train]),
                            "val": (enc.train_x[val], enc.train_y[val]),
                            "test": (enc.test_x[test], enc.test_y[test])}
            self.encoded = enc
        return self._splits

    @property
    def train_size(self) -> int:
        if self._splits is None and not self.options.sha256:
            # Known without loading: planning a run and listing tasks stay instant offline.
            full = TRAIN_REVIEWS - self.options.val_size
            return min(full, self.options.train_subset) if self.options.train_subset else full
        return len(self.splits()["train"][1])  # a test archive (sha256 override): count it

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.train_size / batch_size)

    def train_batch(self, index: int, batch_size: int, *, seed: int, device="cpu") -> Batch:
        x, y = self.splits()["train"]
        epoch, step = divmod(index, self.steps_per_epoch(batch_size))
        if self._order is None or self._order[0] != (seed, epoch):
            # One permutation per (seed, epoch): any batch index can be drawn in any order.
            self._order = ((seed, epoch), torch.randperm(len(y), generator=generator(seed, "train", epoch)))
        chosen = self._order[1][step * batch_size:(step + 1) * batch_size]
        return self._batch(x[chosen], y[chosen]).to(device)

    def eval_batches(self, split: str, *, seed: int, device="cpu") -> Iterator[Batch]:
        """The fixed validation or test reviews in order; `seed` does not change them."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        x, y = self.splits()[split]
        for start in range(0, len(y), EVAL_CHUNK):
            yield self._batch(x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]).to(device)

    def _batch(self, ids: Tensor, labels: Tensor) -> Batch:
        """ids (B, length) as cached; with mask_padding, each review's words moved to the front
        (whichever side was padded) and its length given, so pre- and post-padding are the
        same batch and the model never reads a padding id."""
        if not self.options.mask_padding:
            return Batch(ids.long(), labels)
        return masked_batch(ids.long(), labels)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.reshape(-1).float(), batch.y.float())

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        z, y = logits.reshape(-1).float(), batch.y.float()
        return {"accuracy": ((z > 0).float() == y).float(),
                "cross_entropy": F.binary_cross_entropy_with_logits(z, y, reduction="none")}

    def baseline(self) -> dict[str, float]:
        # The official split has 12,500 reviews per class in train and test (the real-data test
        # asserts it), so the majority class scores 0.5 and a constant p = 0.5 scores log 2;
        # stated rather than computed so that asking for it never loads the data.
        return {"accuracy": 0.5, "cross_entropy": math.log(2)}

    def success(self) -> Criterion:
        return Criterion("accuracy", 0.85, True,
                         "Keras recipe (Chollet 2017, §6.2, maxlen 500): LSTM(32) reaches about 0.88-0.89 "
                         "validation accuracy, SimpleRNN(32) about 0.84-0.85")


    # -- context ablation (harness/training/context.py) -------------------------------------------------
    def context_problems(self, split: str, count: int, window: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """`count` seeded reviews of the split: each one's last min(words, window) words, first in
        the row (ids (N, W), lengths (N,)), and its label (N,)."""
        x, y = self.splits()[split]
        pick = torch.randperm(len(y), generator=generator(seed, f"imdb-context-{split}", 0))[:count]
        words = masked_batch(x[pick].long(), y[pick])
        W = min(window, words.x.shape[1])
        start = (words.lengths - W).clamp(min=0).unsqueeze(1)  # keep the last W words
        pos = torch.arange(W).unsqueeze(0)
        lengths = words.lengths.clamp(max=W)
        ids = words.x.gather(1, (start + pos).clamp(max=words.x.shape[1] - 1))
        return torch.where(pos < lengths.unsqueeze(1), ids, imdb_data.PAD), lengths, y[pick]

    def score_contexts(self, model, ids: Tensor, lengths: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Per review: the loss (nats) and accuracy of the classifier reading these words, laid
        out as the task feeds it (with lengths, or pre-padded to `length` as the Keras recipe)."""
        device = next(model.parameters()).device
        if self.options.mask_padding:
            batch = Batch(ids, targets, lengths=lengths)
        else:
            T = self.options.length
            pos = torch.arange(T).unsqueeze(0)
            offset = (T - lengths).unsqueeze(1)  # words end at T
            index = (pos - offset).clamp(min=0, max=ids.shape[1] - 1)
            batch = Batch(torch.where(pos >= offset, ids.gather(1, index), imdb_data.PAD), targets)
        logits, _ = model(batch.to(device))
        metrics = self.metrics(logits, batch.to(device))
        return {"loss": metrics["cross_entropy"], "accuracy": metrics["accuracy"]}

    def sample_words(self, gen: torch.Generator, n: int) -> Tensor:
        """n words drawn from the training reviews' word frequencies (padding excluded)."""
        if self._unigram is None:
            train = self.splits()["train"][0].long().flatten()
            counts = torch.bincount(train, minlength=self.vocab_size).double()
            counts[imdb_data.PAD] = 0
            self._unigram = counts / counts.sum()
        return torch.multinomial(self._unigram.float(), n, replacement=True, generator=gen)

def masked_batch(ids: Tensor, labels: Tensor) -> Batch:
    """Reviews padded on either side -> (words first, then padding; lengths (B,))."""
    T = ids.shape[1]
    lengths = (ids != imdb_data.PAD).sum(1).clamp(min=1)  # an empty review reads one padding id
    start = torch.where(ids[:, 0] == imdb_data.PAD, T - lengths, 0)  # pre-padded rows start late
    index = (torch.arange(T).unsqueeze(0) + start.unsqueeze(1)) % T  # (B, T)
    return Batch(ids.gather(1, index), labels, lengths=lengths)
