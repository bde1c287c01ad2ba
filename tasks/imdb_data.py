"""IMDB Large Movie Review Dataset (Maas et al. 2011): find, verify, extract, encode, cache.

Data directory: `data_dir`, else $HARNESS_DATA_DIR, else user_cache_dir("rnn-harness")/data.
The archive is `source`, else one of ARCHIVE_NAMES there (or in the cache directory), downloaded
only when both are absent; only the two published checksums are accepted. Input data is only
read: the extracted reviews and the encoded tensors go to the cache directory ($HARNESS_CACHE_DIR,
else user_cache_dir("rnn-harness")/data), never beside the archive, writable or not.

Tokeniser (TOKENIZER_VERSION 1): lower-case, `<br />` (any spelling) -> space, then words =
runs of Unicode letters/digits joined by single inner apostrophes: "Don't" -> don't,
'quoted' -> quoted, end_game -> end game, café stays café. No external NLP service.
Vocabulary: 0 = padding, 1 = out-of-vocabulary, 2.. = the vocab_size - 2 most frequent words
of the 25,000 training reviews (count descending, ties alphabetical): ids < vocab_size, as
Keras' Embedding(10000, 32). Reviews are cut/padded to `length` ids, at the front by default.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import platformdirs
import torch
from torch import Tensor

DOWNLOAD_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE_NAMES = ("aclImdb_v1.tar.gz", "aclImdb_v1_reassembled.tar.gz")
ACCEPTED_SHA256 = {
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe": "canonical aclImdb_v1.tar.gz",
    "91ab3079f70de8a9697b762bba75c97e4c82d1f1b49e151618e666091fb6a7fc": "reassembled offline copy",
}
TOKENIZER_VERSION = 1
FORMAT_VERSION = 1  # bump when the cache file's contents change
PAD, OOV = 0, 1
SPLITS, LABELS = ("train", "test"), (("neg", 0), ("pos", 1))

_BREAK = re.compile(r"<br\s*/?>")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt")
_FIELDS = ("train_x", "train_y", "test_x", "test_y", "vocab", "stats")  # what the cache holds


class DataError(ValueError):
    """A data problem a user can fix (missing, wrong or unsafe archive); one line."""


# Hints name only options the command the user typed has: `run` and `sweep` take task options
# as --set task.X=...; `data imdb` has --source and --data-dir; `reproduce` has neither (its
# grids fix the task options), so only the environment variable. Commands other than run and
# sweep call use_hints() first (reproduce checks the data before it starts any worker).
HINTS = {"run": ("--set task.source=PATH", "or give its path with --set task.source=PATH, or set HARNESS_DATA_DIR"),
         "data": ("--source PATH", "or give its path with --source PATH, or set HARNESS_DATA_DIR"),
         "reproduce": ("HARNESS_DATA_DIR", "or set HARNESS_DATA_DIR to the directory that holds it")}
_hints = "run"


def use_hints(command: str) -> None:
    """Word the data errors' hints for `command` ("run", "data" or "reproduce")."""
    global _hints
    _hints = command if command in HINTS else "run"


@dataclasses.dataclass
class Encoded:
    train_x: Tensor  # (25000, length) int16 ids (int32 when vocab_size > 32768)
    train_y: Tensor  # (25000,) int64, 0 = neg, 1 = pos; neg reviews first, each by file id
    test_x: Tensor
    test_y: Tensor
    vocab: list[str]  # vocab[id]; vocab[0] = "<pad>", vocab[1] = "<oov>"
    stats: dict  # sizes, class balance, coverage, lengths, encode_seconds: see _encode_all
    archive: Path
    cache_path: Path
    from_cache: bool
    seconds: float  # wall time of the prepare() call that produced this


def tokenize(text: str) -> list[str]:
    return _WORD.findall(_BREAK.sub(" ", text.lower()))


def default_data_dir() -> Path:
    return Path(platformdirs.user_cache_dir("rnn-harness")) / "data"


def cache_dir() -> Path:
    """Where extractions and encoded tensors go: $HARNESS_CACHE_DIR, else the per-user cache."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or default_data_dir()).expanduser()


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return Path(data_dir or os.environ.get("HARNESS_DATA_DIR") or default_data_dir()).expanduser()


def writable(path: Path) -> bool:
    """Whether we may write in `path` (or create it). Root passes os.access everywhere, so a
    directory without any write bit (the read-only shared copy) counts as read-only too."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def sha256sum(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(path: Path, sha256: str | None = None) -> str:
    """The archive's checksum, if it is one we accept (`sha256` is a TEST-ONLY override that
    replaces the two published checksums); otherwise DataError naming expected and actual."""
    actual = sha256sum(path)
    accepted = {sha256.lower(): "override"} if sha256 else ACCEPTED_SHA256
    if actual not in accepted:
        expected = " or ".join(f"{k} ({v})" for k, v in accepted.items())
        raise DataError(f"checksum mismatch for {path}: sha256 is {actual}, expected {expected}; "
                        "the file is truncated or not the IMDB archive - replace it")
    return actual


def download(dest_dir: Path, sha256: str | None = None) -> Path:
    """Fetch DOWNLOAD_URL into dest_dir with a progress bar; verify before it gets its name."""
    from tqdm.auto import tqdm

    target = dest_dir / ARCHIVE_NAMES[0]
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(DOWNLOAD_URL, timeout=30) as response:
            dest_dir.mkdir(parents=True, exist_ok=True)  # only once there is something to save
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(part, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify(part, sha256)  # a wrong download never gets the archive's name
        os.replace(part, target)
    except (OSError, ValueError) as error:  # URLError, timeouts; DataError from verify
        part.unlink(missing_ok=True)
        reason = str(getattr(error, "reason", error)).replace("\n", " ")
        raise DataError(f"IMDB archive not found and downloading {DOWNLOAD_URL} failed ({reason}); "
                        f"put {ARCHIVE_NAMES[0]} or {ARCHIVE_NAMES[1]} in {dest_dir} "
                        f"({HINTS[_hints][1]})") from None
    return target


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
        raise DataError(f"unsafe archive member {member.name!r}: its path leaves the extraction "
                        "directory; nothing was extracted")
    if not (member.isfile() or member.isdir()):
        kind = "symlink" if member.issym() else "hard link" if member.islnk() else "device/special file"
        raise DataError(f"unsafe archive member {member.name!r}: a {kind}, which the IMDB archive "
                        "does not contain; nothing was extracted")


def safe_extract(archive: Path, dest: Path, labels: tuple[str, ...] = ("pos", "neg")) -> Path:
    """Extract the reviews of these labels into dest/{train,test}/<label>/ (the rest is skipped;
    "unsup" is the 50,000 unlabelled training reviews). Every member is checked, unsafe ones
    abort; dest appears whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                _check_member(member)
                match = _REVIEW.fullmatch(member.name)
                if not (match and member.isfile() and match.group(2) in labels):
                    continue
                split, label, ident, rating = match.groups()
                # The output path is rebuilt from digits only, never from the member's name.
                out = tmp / split / label / f"{int(ident)}_{int(rating)}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        wanted = [f"{sp}/{lb}" for sp in SPLITS for lb in labels if sp == "train" or lb != "unsup"]
        missing = [w for w in wanted if not (tmp / w).is_dir()]
        if missing:
            raise DataError(f"{archive} holds no reviews in aclImdb/{missing[0]}/")
        tmp.rename(dest)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and dest.is_dir():
            return dest  # a concurrent prepare() renamed its (equally good) copy first
        if isinstance(error, (tarfile.TarError, EOFError, OSError)):
            raise DataError(f"cannot extract {archive}: {error}") from None
        raise
    return dest


def build_vocab(token_lists, vocab_size: int) -> list[str]:
    counts = collections.Counter(word for tokens in token_lists for word in tokens)
    words = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 2]
    return ["<pad>", "<oov>"] + words


def encode(token_lists, vocab: list[str], length: int, padding="pre", truncating="pre",
           dtype=torch.int16) -> tuple[Tensor, int, int]:
    """(N, length) ids, the number of in-vocabulary tokens and of all tokens (before cutting)."""
    index = {word: i for i, word in enumerate(vocab)}
    x = torch.zeros(len(token_lists), length, dtype=dtype)
    known = total = 0
    for row, tokens in enumerate(token_lists):
        ids = [index.get(t, OOV) for t in tokens]
        total += len(ids)
        known += len(ids) - ids.count(OOV)
        ids = ids[-length:] if truncating == "pre" else ids[:length]
        first = length - len(ids) if padding == "pre" else 0
        x[row, first:first + len(ids)] = torch.tensor(ids, dtype=dtype)
    return x, known, total


def _read_split(root: Path, split: str) -> tuple[list[str], Tensor]:
    texts, labels = [], []
    for label_name, label in LABELS:
        # Sorted by numeric file id so both archives (differently ordered) give equal tensors.
        files = sorted((root / split / label_name).glob("*.txt"), key=lambda p: int(p.name.split("_")[0]))
        texts += [f.read_text(encoding="utf-8") for f in files]
        labels += [label] * len(files)
    return texts, torch.tensor(labels, dtype=torch.int64)


def _encode_all(root: Path, vocab_size: int, length: int, padding: str, truncating: str) -> dict:
    start = time.perf_counter()
    dtype = torch.int16 if vocab_size <= 2**15 else torch.int32
    out, stats, tokens = {}, {}, {}
    for split in SPLITS:
        texts, out[f"{split}_y"] = _read_split(root, split)
        tokens[split] = [tokenize(t) for t in texts]
    out["vocab"] = vocab = build_vocab(tokens["train"], vocab_size)
    stats["distinct_train_words"] = len(set().union(*map(set, tokens["train"])))
    for split in SPLITS:
        out[f"{split}_x"], known, total = encode(tokens[split], vocab, length, padding, truncating, dtype)
        lengths = [len(t) for t in tokens[split]]
        y = out[f"{split}_y"]
        stats |= {f"{split}_size": len(y), f"{split}_pos": int(y.sum()), f"{split}_neg": int((1 - y).sum()),
                  f"{split}_coverage": known / max(total, 1), f"{split}_tokens": total,
                  f"{split}_mean_length": statistics.fmean(lengths) if lengths else 0.0,
                  f"{split}_median_length": float(statistics.median(lengths)) if lengths else 0.0,
                  f"{split}_truncated": sum(n > length for n in lengths) / max(len(lengths), 1)}
    stats["test_oov_rate"] = 1.0 - stats["test_coverage"]
    stats["encode_seconds"] = time.perf_counter() - start
    out["stats"] = stats
    return out


def fingerprint(sha256: str, vocab_size: int, length: int, padding: str, truncating: str) -> str:
    key = json.dumps([sha256, vocab_size, length, padding, truncating, TOKENIZER_VERSION, FORMAT_VERSION])
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _load_cache(path: Path, fp: str) -> dict | None:
    try:  # an unreadable cache is rebuilt, never trusted
        payload = torch.load(path, weights_only=True)
    except Exception:
        return None
    return payload if isinstance(payload, dict) and payload.get("fingerprint") == fp else None


def locate(source=None, data_dir=None, sha256: str | None = None) -> tuple[Path, Path]:
    """(archive, the cache directory): `source`, else an archive in the data directory or the
    cache, else a download (into the data directory when it takes files, else the cache).
    Nothing else is ever written into the data directory. DataError when no archive can be had
    or the cache directory is not writable."""
    home, cache = resolve_data_dir(data_dir), cache_dir()
    if not writable(cache):
        raise DataError(f"the cache directory {cache} is not writable; set HARNESS_CACHE_DIR to a writable directory")
    if source:
        archive = Path(source).expanduser()
        if not archive.is_file():
            raise DataError(f"IMDB archive {archive} does not exist; check {HINTS[_hints][0]}")
    else:
        found = [d / n for d in dict.fromkeys([home, cache]) for n in ARCHIVE_NAMES if (d / n).is_file()]
        archive = found[0] if found else download(home if writable(home) else cache, sha256)
    return archive, cache


def extracted(archive: Path, digest: str, cache: Path, labels=("pos", "neg")) -> Path:
    """The archive's reviews of these labels, extracted once into the cache (kept for reuse)."""
    folder = cache / (f"aclImdb-{digest[:16]}" + ("" if labels == ("pos", "neg") else "-" + "-".join(labels)))
    return folder if folder.is_dir() else safe_extract(archive, folder, labels)


def save_cache(payload: dict, work: Path, name: str) -> Path:
    """Write a cache file atomically (a reader never sees half of one)."""
    work.mkdir(parents=True, exist_ok=True)
    cache, tmp = work / name, work / f".{name}.{os.getpid()}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, cache)
    return cache


def prepare(source=None, data_dir=None, *, vocab_size: int = 10000, length: int = 500,
            padding: str = "pre", truncating: str = "pre", sha256: str | None = None) -> Encoded:
    """Encoded IMDB reviews, from the cache when this archive and these options were seen.
    `sha256` is for tests only: accept an archive with this checksum instead of the real ones."""
    start = time.perf_counter()
    if {padding, truncating} - {"pre", "post"} or vocab_size < 3 or length < 1:
        raise DataError(f"need padding and truncating pre|post, vocab_size >= 3, length >= 1; got "
                        f"{padding!r}, {truncating!r}, {vocab_size}, {length}")
    archive, work = locate(source, data_dir, sha256)
    digest = verify(archive, sha256)
    fp = fingerprint(digest, vocab_size, length, padding, truncating)
    name = f"imdb-{vocab_size}-{length}-{padding}-{truncating}-{fp}.pt"
    done = lambda p, path, cached: Encoded(**{k: p[k] for k in _FIELDS}, archive=archive,  # noqa: E731
                                           cache_path=path, from_cache=cached, seconds=time.perf_counter() - start)
    payload = (work / name).is_file() and _load_cache(work / name, fp)
    if payload:
        return done(payload, work / name, True)
    tick = time.perf_counter()
    root = extracted(archive, digest, work)  # kept: other options re-encode from it
    payload = _encode_all(root, vocab_size, length, padding, truncating)
    payload["stats"] |= {"extract_seconds": time.perf_counter() - tick - payload["stats"]["encode_seconds"],
                         "sha256": digest, "archive_kind": ACCEPTED_SHA256.get(digest, "test override"),
                         "vocab_size": vocab_size, "length": length, "padding": padding, "truncating": truncating}
    payload["fingerprint"] = fp
    return done(payload, save_cache(payload, work, name), False)


def summary_lines(enc: Encoded) -> list[str]:
    s = enc.stats
    how = (f"loaded in {enc.seconds:.2f} s" if enc.from_cache else f"built in {enc.seconds:.1f} s: extract "
           f"{s['extract_seconds']:.1f} s, tokenise+encode {s['encode_seconds']:.1f} s")
    return [f"archive     {enc.archive} (sha256 {s['sha256'][:12]}..., {s['archive_kind']})"] + [
        f"{k:<11} {s[k + '_size']:,} reviews ({s[k + '_pos']:,} pos / {s[k + '_neg']:,} neg), "
        f"{s[k + '_tokens']:,} tokens, length mean {s[k + '_mean_length']:.0f} / median "
        f"{s[k + '_median_length']:.0f}, {s[k + '_truncated']:.1%} cut to {s['length']}" for k in SPLITS] + [
        f"vocabulary  {len(enc.vocab):,} ids (0 pad, 1 oov, {len(enc.vocab) - 2:,} of {s['distinct_train_words']:,} "
        f"training words) covers {s['train_coverage']:.2%} of training tokens, {s['test_coverage']:.2%} of "
        f"test tokens (test OOV rate {s['test_oov_rate']:.2%})",
        f"encoding    {s['padding']}-padding, {s['truncating']}-truncating to {s['length']} "
        f"{str(enc.train_x.dtype).removeprefix('torch.')} ids; cache {enc.cache_path} ({how})"]
