"""IMDB language model: predict the next word of movie-review text (Maas et al. 2011 reviews).

Word-level, the same tokeniser, vocabulary and cache as `imdb` (imdb_data.py): ids 2.. are
the vocab_size - 2 most frequent training words, 1 is an out-of-vocabulary word, and 0, the
classifier's padding id, marks the end of a review here (an LM has no padding). Reviews are
concatenated, each followed by that end marker, in a fixed order shuffled by `split_seed`:
  train  the training reviews (and, with `unlabelled`, the 50,000 unlabelled ones) minus
  val    `val_reviews` of the training reviews, held out (the same in every run)
  test   the 25,000 test reviews
The standard LM loop (Zaremba et al. 2014; Merity et al. 2018): each split's stream is cut into
B contiguous streams read in consecutive chunks of `length` tokens; the harness carries the
state from one chunk to the next, detached (truncated backpropagation through time), and
restarts it with each epoch (`stateful`). Softmax over 10,000 words is the CPU's cost centre:
torch's adaptive softmax (Grave et al. 2017; cutoffs 2,000 / 6,000) computes the exact
log-likelihood of each target at a fraction of a full softmax's cost.
Metrics per token: cross-entropy (nats) and perplexity = exp(mean cross-entropy). Baseline:
the unigram model (training-stream word frequencies, add-one smoothed) on the test stream.
Solved: perplexity at most half the unigram's.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Iterator

import torch
from torch import Tensor, nn

from harness.config import option
from tasks import imdb_data, imdb_text
from tasks.base import Batch, Criterion, Task, TaskOptions, generator
from tasks.registry import register

EOS = imdb_data.PAD  # id 0: the end of a review


@dataclasses.dataclass(frozen=True)
class ImdbLmOptions(TaskOptions):
    section: ClassVar[str] = "task"
    length: int = option(70, "tokens per chunk: the truncated-BPTT length", min=1)
    vocab_size: int = option(10000, "word ids: end-of-review, unknown and the vocab_size - 2 most frequent words",
                             min=3)
    val_reviews: int = option(2000, "training reviews held out for validation", min=1)
    unlabelled: bool = option(False, "also train on the archive's 50,000 unlabelled reviews")
    train_tokens: int = option(0, "train on the first N tokens of the training stream (0 = all)", min=0)
    val_tokens: int = option(100_000, "validate on the first N tokens of the validation stream (0 = all)", min=0)
    test_tokens: int = option(0, "test on the first N tokens of the test stream (0 = all)", min=0)
    eval_streams: int = option(16, "parallel streams the validation and test text is cut into", min=1)
    cutoffs: tuple[int, ...] = option((2000, 6000), "adaptive softmax cluster boundaries (word ids)")
    div_value: float = option(4.0, "adaptive softmax: each cluster's projection shrinks by this factor", min=1.0)
    split_seed: int = option(0, "orders the reviews and chooses the held-out ones (fixed across runs)")
    data_dir: str = option("", "data directory ('' = $HARNESS_DATA_DIR, else the per-user cache)")
    source: str = option("", "path of the aclImdb tar.gz ('' = look in the data directory, else download)")
    sha256: str = option("", "TESTS ONLY: accept an archive with this sha256 instead of the two real ones")


class AdaptiveHead(nn.Module):
    """The model's output layer for the LM: forward passes the features through (B, T, H);
    the task scores them against targets with the adaptive softmax it holds."""

    def __init__(self, in_features: int, vocab_size: int, cutoffs: tuple[int, ...], div_value: float):
        super().__init__()
        cutoffs = [c for c in cutoffs if 0 < c < vocab_size - 1]
        # a tail cluster projects to in_features // div_value**(i + 1) units: none below 1
        cutoffs = [c for i, c in enumerate(cutoffs) if in_features // div_value ** (i + 1) >= 1]
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(in_features, vocab_size, cutoffs, div_value=div_value)

    def forward(self, features: Tensor) -> Tensor:
        return features

    def token_log_prob(self, features: Tensor, targets: Tensor) -> Tensor:
        """log p(target) for features (..., H) and targets (...) -> (...)."""
        flat = features.reshape(-1, features.shape[-1])
        out = self.softmax(flat, targets.reshape(-1)).output  # log-probabilities of the targets
        return out.view(targets.shape)


@register
class ImdbLm(Task):
    """IMDB language model: next-word prediction on review text, perplexity (truncated BPTT)."""

    name = "imdb_lm"
    Options = ImdbLmOptions
    dataset = True
    per_step = True
    stateful = True
    causal = True  # each target is the next word: a backward direction would read it
    baseline_from_data = True
    smoke_options = {"length": 5, "val_reviews": 4, "eval_streams": 2}
    primary_metric = "perplexity"
    higher_is_better = False
    reference = "Maas et al. 2011 (text); LM loop: Zaremba et al. 2014; adaptive softmax: Grave et al. 2017"
    input_size = None

    def __init__(self, options=None):
        super().__init__(options)
        self.vocab_size = self.output_size = self.options.vocab_size
        self.text: imdb_text.Text | None = None
        self._streams: dict[str, Tensor] = {}
        self._layouts: dict[tuple[str, int], Tensor] = {}
        self.head: AdaptiveHead | None = None
        self._baseline: dict[str, float] | None = None

    @property
    def max_length(self) -> int:
        return self.options.length

    # -- data --------------------------------------------------------------------------------
    def streams(self) -> dict[str, Tensor]:
        """{"train", "val", "test"}: one 1-D int64 token stream each (reviews + end markers)."""
        if not self._streams:
            o = self.options
            home = str(imdb_data.resolve_data_dir(o.data_dir or None))  # the key follows $HARNESS_DATA_DIR
            self.text, self._streams = _split_streams(
                o.source, home, o.sha256, o.vocab_size, o.unlabelled, o.split_seed, o.val_reviews,
                o.train_tokens, o.val_tokens, o.test_tokens)
        return self._streams

    def layout(self, split: str, streams: int) -> Tensor:
        """The split's stream cut into `streams` contiguous rows (S, N) (the tail that does not
        fill a row is dropped), as the standard LM batching does."""
        key = (split, streams)
        if key not in self._layouts:
            data = self.streams()[split]
            per = len(data) // streams
            if per < 2:
                raise imdb_data.DataError(f"the {split} text ({len(data)} tokens) is too short for {streams} streams")
            self._layouts[key] = data[:per * streams].view(streams, per)
        return self._layouts[key]

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, (self.layout("train", batch_size).shape[1] - 1) // self.options.length)

    def starts_stream(self, index: int, batch_size: int) -> bool:
        """Whether train batch `index` starts the streams over (the carried state is reset)."""
        return index % self.steps_per_epoch(batch_size) == 0

    def _chunk(self, rows: Tensor, i: int) -> Batch:
        L = self.options.length
        x = rows[:, i * L:(i + 1) * L]
        y = rows[:, i * L + 1:(i + 1) * L + 1]
        n = min(x.shape[1], y.shape[1])
        return Batch(x[:, :n], y[:, :n])

    def train_batch(self, index: int, batch_size: int, *, seed: int, device="cpu") -> Batch:
        """Chunk index % steps_per_epoch of the B training streams (consecutive indices continue
        the same streams; `seed` does not change the text, only the model's initialisation)."""
        return self._chunk(self.layout("train", batch_size), index % self.steps_per_epoch(batch_size)).to(device)

    def eval_batches(self, split: str, *, seed: int, device="cpu") -> Iterator[Batch]:
        """The validation or test streams, chunk after chunk (carry the state between them)."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        rows = self.layout(split, self.options.eval_streams)
        for i in range((rows.shape[1] - 1 + self.options.length - 1) // self.options.length):
            yield self._chunk(rows, i).to(device)

    # -- model side ----------------------------------------------------------------------------
    def make_head(self, in_features: int) -> nn.Module:
        self.head = AdaptiveHead(in_features, self.vocab_size, self.options.cutoffs, self.options.div_value)
        return self.head

    def _log_prob(self, features: Tensor, targets: Tensor) -> Tensor:
        if self.head is None:
            raise RuntimeError("imdb_lm scores with the adaptive head it made: build the model with this task")
        return self.head.token_log_prob(features.float(), targets)

    # -- objective ---------------------------------------------------------------------------
    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        return -self._log_prob(outputs, batch.y).mean()

    def metrics(self, outputs: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Per-sequence mean cross-entropy (nats per token); every sequence of a chunk has the same
        number of tokens, so the mean over sequences is the mean over tokens."""
        return {"cross_entropy": -self._log_prob(outputs, batch.y).mean(1)}

    def summarise(self, means: dict[str, float]) -> dict[str, float]:
        """Perplexity from the split's mean cross-entropy (not a mean of per-sequence values)."""
        return {**means, "perplexity": math.exp(means["cross_entropy"])}

    def unigram(self) -> Tensor:
        """(V,) log-probabilities of the unigram model: training-stream counts plus one for every
        id (add-one smoothing, so no test word is impossible; on the real training text, 5.8M
        tokens over 10,000 ids, it moves the perplexity by well under 1%)."""
        counts = torch.bincount(self.streams()["train"], minlength=self.vocab_size).double() + 1.0
        return (counts / counts.sum()).log()

    def baseline(self) -> dict[str, float]:
        """The unigram model on the test stream (loads the data)."""
        if self._baseline is None:
            test = self.streams()["test"]
            ce = float(-self.unigram()[test].mean())
            self._baseline = {"cross_entropy": ce, "perplexity": math.exp(ce)}
        return dict(self._baseline)

    def success(self) -> Criterion:
        unigram = self.baseline()["perplexity"]
        return Criterion("perplexity", unigram / 2, False, f"half the unigram model's perplexity ({unigram:.0f})")

    # -- context ablation (harness/training/context.py) -------------------------------------------------
    def context_problems(self, split: str, count: int, window: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """`count` seeded target positions of the split's stream, each with the `window` tokens
        before it: (ids (N, W), lengths (N,) all W, targets (N,))."""
        stream = self.streams()[split]
        if len(stream) <= window + 1:
            raise imdb_data.DataError(f"the {split} text is shorter than the context window {window}")
        gen = generator(seed, f"imdb_lm-context-{split}", 0)
        pos = torch.randint(window, len(stream), (count,), generator=gen)  # (N,) target positions
        ids = stream[pos.unsqueeze(1) - window + torch.arange(window)]  # (N, W)
        return ids, torch.full((count,), window), stream[pos]

    def score_contexts(self, model, ids: Tensor, lengths: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Per problem: the loss (nats) of its target after reading its context from a zero state."""
        device = next(model.parameters()).device
        batch = Batch(ids.to(device), ids.to(device), lengths=lengths.to(device))
        outputs, _ = model(batch)  # (N, T, H)
        last = outputs.gather(1, (batch.lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])).squeeze(1)
        return {"loss": -self._log_prob(last, targets.to(device))}

    def sample_words(self, gen: torch.Generator, n: int) -> Tensor:
        """n words drawn from the training unigram distribution (the replace ablation)."""
        return torch.multinomial(self.unigram().exp().float(), n, replacement=True, generator=gen)


@functools.lru_cache(maxsize=2)  # a claim builds this task once per run: split the text once per process
def _split_streams(source, home, sha256, vocab_size, unlabelled, split_seed, val_reviews,
                   train_tokens, val_tokens, test_tokens) -> tuple[imdb_text.Text, dict[str, Tensor]]:
    """The text and its train/val/test streams; read-only tensors shared by the tasks that ask."""
    text = imdb_text.prepare_text(source or None, home, vocab_size=vocab_size,
                                  sha256=sha256 or None, unlabelled=unlabelled)
    train = text.reviews("train")
    if val_reviews >= len(train):
        raise imdb_data.DataError(f"task.val_reviews={val_reviews} leaves no training reviews of {len(train)}")
    order = torch.randperm(len(train), generator=generator(split_seed, "imdb_lm-order", 0)).tolist()
    val = [train[i] for i in order[:val_reviews]]
    rest = [train[i] for i in order[val_reviews:]]
    if unlabelled:
        rest += text.reviews("unsup")
        rest = [rest[i] for i in torch.randperm(len(rest), generator=generator(split_seed, "imdb_lm-unsup", 0))]
    test = text.reviews("test")
    test = [test[i] for i in torch.randperm(len(test), generator=generator(split_seed, "imdb_lm-test", 0))]
    cut = {"train": train_tokens, "val": val_tokens, "test": test_tokens}
    streams = {}
    for split, reviews in (("train", rest), ("val", val), ("test", test)):
        stream = _joined(reviews)
        streams[split] = stream[:cut[split]] if cut[split] else stream
    return text, streams


def _joined(reviews: list[Tensor]) -> Tensor:
    """The reviews one after another, each followed by the end marker 0: (sum of lengths + R,) int64."""
    lengths = torch.tensor([len(r) for r in reviews], dtype=torch.long)  # (R,)
    ends = torch.cumsum(lengths + 1, 0) - 1  # (R,) where each review's end marker goes
    out = torch.zeros(int(lengths.sum()) + len(reviews), dtype=torch.long)
    words = torch.ones_like(out, dtype=torch.bool)
    words[ends] = False
    out[words] = torch.cat(reviews).long() if reviews else out[:0]
    return out
