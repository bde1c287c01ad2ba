"""The IMDB pipeline and task, on a tiny aclImdb-layout tarball built here (its checksum goes
through the test-only `sha256` override), plus one test on the real archive when present."""
from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

import tasks
from tasks import imdb_data
from tasks.imdb import Imdb, ImdbOptions, masked_batch
from tasks.imdb_data import DataError, prepare

# Word counts over the 24 training reviews: the 48, great 36, bad/film/was 24, then 12 each
# for acting, best, don't, fun, plot, watch, worst; p0..p11 and n0..n11 once each.
POS = "The film was GREAT.<br />Great acting, great fun; the best! p{}"
NEG = "The film was bad.<br /><br />Bad plot, the worst. Don't watch n{}"
TOP8 = ["<pad>", "<oov>", "the", "great", "bad", "film", "was", "acting"]
POS_IDS = [2, 5, 6, 3, 3, 7, 3, 1, 2, 1, 1]  # "the film was great great acting great fun the best p0"
REVIEWS = {
    **{f"aclImdb/train/pos/{i}_{7 + i % 4}.txt": POS.format(i) for i in range(12)},
    **{f"aclImdb/train/neg/{i}_{1 + i % 4}.txt": NEG.format(i) for i in range(12)},
    **{f"aclImdb/test/pos/{i}_9.txt": f"A great film, truly GREAT. q{i}" for i in range(6)},
    **{f"aclImdb/test/neg/{i}_2.txt": f"Awful!<br />The worst film. r{i}" for i in range(6)},
    # Not labelled reviews: skipped, so "zzz" must never reach the vocabulary.
    "aclImdb/train/unsup/0_0.txt": "zzz " * 500,
    "aclImdb/imdb.vocab": "the\nzzz\n",
    "aclImdb/train/urls_pos.txt": "http://example.invalid/\n",
}
REAL_DIRS = [os.environ.get("HARNESS_DATA_DIR"), "/work/shared/data/imdb",
             Path(__file__).resolve().parents[1] / "../shared/data/imdb"]
REAL = next((Path(d) / n for d in REAL_DIRS if d for n in imdb_data.ARCHIVE_NAMES if (Path(d) / n).is_file()), None)


def write_archive(path: Path, extra=()) -> str:
    """Write the tiny archive (plus `extra` (TarInfo, bytes) members at the end); its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in ("aclImdb", "aclImdb/train", "aclImdb/test"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, text in list(REVIEWS.items()) + [(i, d) for i, d in extra]:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            data = text.encode() if isinstance(text, str) else text
            info.size = len(data or b"") if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    # The per-user cache (the read-only fallback) lands in tmp_path, and no ambient data dir.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "src" / "aclImdb_v1.tar.gz"
    return path, write_archive(path)


def prep(archive, data_dir, **kw):
    return prepare(archive[0], data_dir, sha256=archive[1], **kw)


def leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def test_tokenize():
    text = "Don't<br />STOP—the 'quoted' movie's end_game 2nd café.<br/>Fin"
    assert imdb_data.tokenize(text) == ["don't", "stop", "the", "quoted", "movie's", "end", "game", "2nd",
                                        "café", "fin"]


def test_vocabulary_order_special_ids_and_stats(archive, tmp_path):
    enc = prep(archive, tmp_path / "data", vocab_size=8, length=16)
    assert enc.vocab == TOP8  # by count, ties alphabetical (bad < film < was; acting first of the 12s)
    assert enc.train_x.dtype == torch.int16 and enc.train_y.dtype == torch.int64
    assert enc.train_x.shape == (24, 16) and enc.test_x.shape == (12, 16)
    assert int(enc.train_x.max()) < 8 and int(enc.test_x.max()) < 8
    assert enc.train_y.tolist() == [0] * 12 + [1] * 12 and enc.test_y.tolist() == [0] * 6 + [1] * 6
    s = enc.stats
    assert (s["train_size"], s["train_pos"], s["train_neg"], s["test_size"], s["test_pos"]) == (24, 12, 12, 12, 6)
    assert s["train_coverage"] == pytest.approx((12 * 8 + 12 * 6) / (24 * 11))  # pos 8/11, neg 6/11 known
    assert s["test_oov_rate"] == pytest.approx(1 - s["test_coverage"])
    assert s["train_mean_length"] == 11 and s["train_median_length"] == 11
    full = prep(archive, tmp_path / "data")  # vocab_size 10000: every training word, no unsup words
    assert len(full.vocab) == 2 + 12 + 24 and "zzz" not in full.vocab and "q0" not in full.vocab
    assert full.vocab[-1] == "p9" and full.stats["train_coverage"] == 1.0
    assert any("24 reviews (12 pos / 12 neg)" in line for line in imdb_data.summary_lines(full))


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_padding_and_truncation(archive, tmp_path, padding, truncating):
    long = prep(archive, tmp_path / "data", vocab_size=8, length=14, padding=padding, truncating=truncating)
    row = long.train_x[12].tolist()  # the first positive review, 11 tokens
    assert row == ([0, 0, 0] + POS_IDS if padding == "pre" else POS_IDS + [0, 0, 0])
    short = prep(archive, tmp_path / "data", vocab_size=8, length=4, padding=padding, truncating=truncating)
    assert short.train_x[12].tolist() == (POS_IDS[-4:] if truncating == "pre" else POS_IDS[:4])
    empty, _, _ = imdb_data.encode([[]], TOP8, 3, padding, truncating)
    assert empty.tolist() == [[0, 0, 0]]


def test_second_prepare_loads_the_cache(archive, tmp_path):
    data = tmp_path / "data"
    first, second = prep(archive, data), prep(archive, data)
    assert not first.from_cache and second.from_cache and second.cache_path == first.cache_path
    assert second.seconds < first.seconds
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert second.vocab == first.vocab and second.stats == first.stats
    other = prep(archive, data, length=20)
    assert other.cache_path != first.cache_path and not other.from_cache
    assert len(list(imdb_data.cache_dir().glob("imdb-*.pt"))) == 2 and not data.exists()
    first.cache_path.write_bytes(b"not a torch file")  # a damaged cache is rebuilt, not trusted
    again = prep(archive, data)
    assert not again.from_cache and torch.equal(again.train_x, first.train_x)


def test_wrong_checksum_is_refused_and_nothing_cached(archive, tmp_path):
    data = tmp_path / "data"
    with pytest.raises(DataError, match=f"sha256 is {archive[1]}, expected {'0' * 64}"):
        prepare(archive[0], data, sha256="0" * 64)
    with pytest.raises(DataError, match="expected c40f74a18d3b.* or 91ab3079f70d"):
        prepare(archive[0], data)  # without the override only the two real checksums pass
    data.mkdir()
    truncated = data / "aclImdb_v1.tar.gz"
    truncated.write_bytes(archive[0].read_bytes()[:300])
    with pytest.raises(DataError, match="checksum mismatch.*truncated"):
        prepare(None, data, sha256=archive[1])
    assert leftovers(data) == ["aclImdb_v1.tar.gz"]


def _member(name, kind, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("member, why", [
    (_member("/tmp/evil-imdb.txt", tarfile.REGTYPE), "path leaves"),
    (_member("aclImdb/train/pos/../../../evil-imdb.txt", tarfile.REGTYPE), "path leaves"),
    (_member("aclImdb/train/pos/100_9.txt", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
    (_member("aclImdb/train/neg/100_1.txt", tarfile.LNKTYPE, "aclImdb/train/neg/0_1.txt"), "hard link"),
    (_member("aclImdb/train/pos/101_9.txt", tarfile.CHRTYPE), "device"),
], ids=["absolute", "dotdot", "symlink", "hardlink", "device"])
def test_unsafe_members_are_refused(tmp_path, member, why):
    path = tmp_path / "src" / "aclImdb_v1.tar.gz"
    sha = write_archive(path, extra=[(member, "evil")])
    data = tmp_path / "data"
    with pytest.raises(DataError, match=f"unsafe archive member .*{why}"):
        prepare(path, data, sha256=sha)
    assert leftovers(data) == []  # the reviews extracted before the bad member are gone too
    assert not list(tmp_path.rglob("evil-imdb*")) and not Path("/tmp/evil-imdb.txt").exists()


def test_read_only_data_dir_is_only_read(archive, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(archive[0], ro / "aclImdb_v1_reassembled.tar.gz")
    ro.chmod(0o555)
    try:
        enc = prepare(None, ro, sha256=archive[1])
        monkeypatch.setenv("HARNESS_DATA_DIR", str(ro))
        again = prepare(sha256=archive[1])
    finally:
        ro.chmod(0o755)
    assert leftovers(ro) == ["aclImdb_v1_reassembled.tar.gz"]
    assert enc.cache_path.parent == tmp_path / "usercache" / "rnn-harness" / "data"
    assert again.from_cache and again.cache_path == enc.cache_path


def test_a_writable_data_dir_is_only_read_too(archive, tmp_path, monkeypatch):
    """The folder that holds the archive is input: extraction and caches go to the cache
    directory ($HARNESS_CACHE_DIR here), never beside the archive, even where it could write."""
    from tasks import imdb_text

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(archive[0], data / "aclImdb_v1_reassembled.tar.gz")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    enc = prepare(None, data, sha256=archive[1])
    text = imdb_text.prepare_text(None, data, sha256=archive[1], unlabelled=True)
    assert leftovers(data) == ["aclImdb_v1_reassembled.tar.gz"]
    assert enc.cache_path.parent == text.cache_path.parent == tmp_path / "cache"
    assert any(p.name.startswith("aclImdb-") for p in (tmp_path / "cache").iterdir()), "the extraction"


def test_an_unwritable_cache_directory_is_one_clear_line(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", "/proc/nope")
    with pytest.raises(DataError, match="the cache directory /proc/nope is not writable; set HARNESS_CACHE_DIR"):
        prep(archive, tmp_path / "data")


def test_missing_archive_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(imdb_data, "DOWNLOAD_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    data = tmp_path / "empty"
    with pytest.raises(DataError) as error:
        prepare(None, data)
    message = str(error.value)
    assert "\n" not in message and str(data) in message
    assert "aclImdb_v1.tar.gz or aclImdb_v1_reassembled.tar.gz" in message
    assert not data.exists()  # no .part file, not even the directory, is left behind
    with pytest.raises(DataError, match="does not exist"):
        prepare(tmp_path / "nowhere.tar.gz", data)


def test_data_dir_resolution(tmp_path, monkeypatch):
    assert imdb_data.resolve_data_dir() == tmp_path / "usercache" / "rnn-harness" / "data"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "env"))
    assert imdb_data.resolve_data_dir() == tmp_path / "env"
    assert imdb_data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def make_task(archive, tmp_path, **kw) -> Imdb:
    options = dict(source=str(archive[0]), data_dir=str(tmp_path / "data"), sha256=archive[1], length=16, val_size=6)
    return tasks.create("imdb", **options | kw)


def rows(x) -> set[tuple]:
    return {tuple(r) for r in x.tolist()}


def test_task_is_lazy_and_declares_its_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nothing"))
    task = tasks.create("imdb")
    assert "imdb" in tasks.available() and isinstance(task.options, ImdbOptions)
    assert not (tmp_path / "nothing").exists() and task.encoded is None
    assert (task.vocab_size, task.input_size, task.output_size, task.max_length) == (10000, None, 1, 500)
    assert task.baseline() == {"accuracy": 0.5, "cross_entropy": pytest.approx(math.log(2))}
    assert task.success().metric == "accuracy" and task.success().met(0.86) and not task.success().met(0.84)
    assert task.dataset and task.steps_per_epoch(128) == math.ceil(20_000 / 128)  # still not loaded
    assert not (tmp_path / "nothing").exists() and task.encoded is None


def test_validation_split_is_seeded(archive, tmp_path):
    a, b, c = make_task(archive, tmp_path), make_task(archive, tmp_path), make_task(archive, tmp_path, split_seed=1)
    train, val, test = (a.splits()[k] for k in ("train", "val", "test"))
    assert (len(train[1]), len(val[1]), len(test[1])) == (18, 6, 12)
    assert torch.equal(val[0], b.splits()["val"][0]) and not torch.equal(val[0], c.splits()["val"][0])
    assert rows(train[0]) | rows(val[0]) == rows(a.encoded.train_x) and not rows(train[0]) & rows(val[0])
    with pytest.raises(DataError, match="val_size"):
        make_task(archive, tmp_path, val_size=24).splits()


def test_train_batches_cover_each_epoch_once(archive, tmp_path):
    task = make_task(archive, tmp_path)
    assert task.steps_per_epoch(5) == 4
    epoch0 = [task.train_batch(i, 5, seed=0) for i in range(4)]
    assert [len(b) for b in epoch0] == [5, 5, 5, 3]
    assert epoch0[0].x.dtype == torch.int64 and epoch0[0].x.shape == (5, 16) and epoch0[0].y.dtype == torch.int64
    x0 = torch.cat([b.x for b in epoch0])
    assert rows(x0) == rows(masked_batch(task.splits()["train"][0].long(), None).x) and len(rows(x0)) == 18
    x1 = torch.cat([task.train_batch(i, 5, seed=0).x for i in range(4, 8)])
    assert rows(x1) == rows(x0) and not torch.equal(x1, x0)  # a new order each epoch
    fresh = make_task(archive, tmp_path)
    assert torch.equal(fresh.train_batch(2, 5, seed=0).x, epoch0[2].x)  # random access, any order
    assert not torch.equal(fresh.train_batch(0, 5, seed=1).x, epoch0[0].x)


@pytest.mark.parametrize("padding", ["pre", "post"])
def testmasked_batches_put_words_first_and_give_lengths(archive, tmp_path, padding):
    """With mask_padding (the default) a review's words come first, whichever side the cache
    padded, and `lengths` counts them; without it the cached (Keras) layout is fed as is."""
    masked = make_task(archive, tmp_path, padding=padding)
    raw = make_task(archive, tmp_path, padding=padding, mask_padding=False)
    batch, plain = next(masked.eval_batches("test", seed=0)), next(raw.eval_batches("test", seed=0))
    assert plain.lengths is None and batch.lengths is not None
    for row, cached, n in zip(batch.x, plain.x, batch.lengths.tolist()):
        words = cached[cached != 0]
        assert n == max(1, len(words))
        assert torch.equal(row[:len(words)], words) and not row[len(words):].any()
    other = make_task(archive, tmp_path, padding="post" if padding == "pre" else "pre")
    again = next(other.eval_batches("test", seed=0))
    assert torch.equal(again.x, batch.x) and torch.equal(again.lengths, batch.lengths)


def test_eval_batches_are_fixed_chunks(archive, tmp_path, monkeypatch):
    monkeypatch.setattr("tasks.imdb.EVAL_CHUNK", 5)
    task = make_task(archive, tmp_path)
    test = list(task.eval_batches("test", seed=0))
    assert [len(b) for b in test] == [5, 5, 2] and [len(b) for b in task.eval_batches("val", seed=3)] == [5, 1]
    assert torch.equal(torch.cat([b.x for b in test]), masked_batch(task.splits()["test"][0].long(), None).x)
    assert all(torch.equal(b.x, c.x) for b, c in zip(test, task.eval_batches("test", seed=7)))


def test_loss_and_metrics(archive, tmp_path):
    task = make_task(archive, tmp_path)
    batch = next(task.eval_batches("test", seed=0))
    confident = (batch.y.float() * 2 - 1)[:, None] * 10  # (B, 1) logits on the right side
    m = task.metrics(confident, batch)
    assert m["accuracy"].shape == (12,) and m["accuracy"].mean() == 1 and m["cross_entropy"].max() < 1e-3
    zero = torch.zeros(len(batch), 1)
    assert task.loss(zero, batch).item() == pytest.approx(math.log(2))
    assert task.metrics(-confident, batch)["accuracy"].sum() == 0


@pytest.mark.imdb
@pytest.mark.skipif(REAL is None, reason="real IMDB archive not found (HARNESS_DATA_DIR, /work/shared/data/imdb "
                                         "or ../shared/data/imdb)")
def test_real_archive(tmp_path):
    enc = prepare(REAL, tmp_path)  # encoded into tmp_path: the shared copy is never written
    s = enc.stats
    assert (s["train_size"], s["train_pos"], s["train_neg"]) == (25_000, 12_500, 12_500)
    assert (s["test_size"], s["test_pos"], s["test_neg"]) == (25_000, 12_500, 12_500)
    assert enc.train_x.shape == (25_000, 500) and len(enc.vocab) == 10_000
    assert enc.vocab[:6] == ["<pad>", "<oov>", "the", "and", "a", "of"] and s["train_coverage"] > 0.9
    task = tasks.create("imdb", source=str(REAL), data_dir=str(tmp_path))
    assert [len(task.splits()[k][1]) for k in ("train", "val", "test")] == [20_000, 5_000, 25_000]
    assert task.encoded.from_cache and task.steps_per_epoch(128) == 157
