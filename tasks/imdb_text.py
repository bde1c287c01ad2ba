"""IMDB review text as token streams, for language modelling (`imdb_lm`).

The same archive, checksum, tokeniser and vocabulary as the classifier's data (imdb_data.py):
ids 2.. are the vocab_size - 2 most frequent words of the 25,000 training reviews, 1 is any
other word; 0, the classifier's padding id, is free for the language model's end-of-review
marker. Every review is kept whole (no cutting to a length). Splits: "train" and "test" (the
labelled reviews, negative then positive, each by file id, as imdb_data reads them) and, on
request, "unsup" (the 50,000 unlabelled training reviews). Cached in the classifier's cache
directory (imdb_data.cache_dir), keyed by archive, vocabulary size and tokeniser version.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import Tensor

from tasks import imdb_data
from tasks.imdb_data import OOV, TOKENIZER_VERSION, build_vocab, tokenize

FORMAT_VERSION = 1


@dataclasses.dataclass
class Text:
    vocab: list[str]  # vocab[id]; 0 "<pad>" (the LM's end of review), 1 "<oov>"
    ids: dict[str, Tensor]  # split -> every review's ids, concatenated (int16, or int32 past 32,768 words)
    offsets: dict[str, Tensor]  # split -> (reviews + 1,) int64: review i is ids[offsets[i]:offsets[i + 1]]
    stats: dict
    cache_path: Path
    from_cache: bool

    def reviews(self, split: str) -> list[Tensor]:
        """The split's reviews as a list of 1-D id tensors."""
        ids, offsets = self.ids[split], self.offsets[split]
        return list(torch.tensor_split(ids, offsets[1:-1]))


def _encode(token_lists, index: dict[str, int], dtype) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([0] + [len(t) for t in token_lists], dtype=torch.int64)
    flat = [index.get(word, OOV) for tokens in token_lists for word in tokens]
    return torch.tensor(flat, dtype=dtype), lengths.cumsum(0)


def _read_unsup(root: Path) -> list[str]:
    files = sorted((root / "train" / "unsup").glob("*.txt"), key=lambda p: int(p.name.split("_")[0]))
    return [f.read_text(encoding="utf-8") for f in files]


def prepare_text(source=None, data_dir=None, *, vocab_size: int = 10000, sha256: str | None = None,
                 unlabelled: bool = False) -> Text:
    """The reviews as token streams, from the cache when this archive and vocabulary were seen.
    Raises imdb_data.DataError for a missing, wrong or unsafe archive (one line)."""
    start = time.perf_counter()
    archive, work = imdb_data.locate(source, data_dir, sha256)
    digest = imdb_data.verify(archive, sha256)
    key = json.dumps(["text", digest, vocab_size, unlabelled, TOKENIZER_VERSION, FORMAT_VERSION])
    fp = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    name = f"imdb-text-{vocab_size}{'-unsup' if unlabelled else ''}-{fp}.pt"
    payload = (work / name).is_file() and imdb_data._load_cache(work / name, fp)
    if payload:
        return Text(payload["vocab"], payload["ids"], payload["offsets"], payload["stats"], work / name, True)
    root = imdb_data.extracted(archive, digest, work)
    tokens = {split: [tokenize(t) for t in imdb_data._read_split(root, split)[0]] for split in imdb_data.SPLITS}
    if unlabelled:
        unsup = imdb_data.extracted(archive, digest, work, labels=("unsup",))
        tokens["unsup"] = [tokenize(t) for t in _read_unsup(unsup)]
    vocab = build_vocab(tokens["train"], vocab_size)
    index = {word: i for i, word in enumerate(vocab)}
    dtype = torch.int16 if vocab_size <= 2 ** 15 else torch.int32
    ids, offsets, stats = {}, {}, {"sha256": digest, "vocab_size": vocab_size}
    for split, lists in tokens.items():
        ids[split], offsets[split] = _encode(lists, index, dtype)
        known = int((ids[split] != OOV).sum())
        stats |= {f"{split}_reviews": len(lists), f"{split}_tokens": len(ids[split]),
                  f"{split}_coverage": known / max(1, len(ids[split]))}
    stats["seconds"] = time.perf_counter() - start
    payload = {"vocab": vocab, "ids": ids, "offsets": offsets, "stats": stats, "fingerprint": fp}
    return Text(vocab, ids, offsets, stats, imdb_data.save_cache(payload, work, name), False)
