"""The contract of dataset tasks (a finite dataset read from an archive), parametrized over the
registry on a tiny IMDB-layout archive: a new dataset task that reads that archive is tested
here with no test edits (it declares its `smoke_options`)."""
from __future__ import annotations

import hashlib
import math

import pytest
import torch
from test_imdb import write_archive

import tasks
import variants
from harness.training.model import ModelConfig, SequenceModel

NAMES = [n for n in tasks.available() if tasks.get(n).dataset]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)


def make(name, tmp_path, **kw):
    path = tmp_path / "src" / "aclImdb_v1.tar.gz"
    sha = write_archive(path) if not path.exists() else hashlib.sha256(path.read_bytes()).hexdigest()
    options = {"source": str(path), "data_dir": str(tmp_path / "data"), "sha256": sha,
               **tasks.get(name).smoke_options, **kw}
    return tasks.create(name, **options)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) if x is not None else y is None
               for x, y in ((a.x, b.x), (a.y, b.y), (a.lengths, b.lengths), (a.times, b.times)))


@pytest.mark.parametrize("name", NAMES)
def test_random_access_batches_and_fixed_evaluation_sets(name, tmp_path):
    first, second = make(name, tmp_path), make(name, tmp_path)
    steps = first.steps_per_epoch(3)
    assert steps >= 1
    for index in (0, steps - 1, steps):  # the last batch of an epoch and the first of the next
        assert _same(first.train_batch(index, 3, seed=0), second.train_batch(index, 3, seed=0))
    for split in ("val", "test"):
        a, b = list(first.eval_batches(split, seed=0)), list(second.eval_batches(split, seed=5))
        assert a and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b)), "evaluation sets are fixed"
    with pytest.raises(ValueError, match="split"):
        next(first.eval_batches("train", seed=0))


@pytest.mark.parametrize("name", NAMES)
def test_shapes_ids_loss_and_metrics_through_the_tasks_head(name, tmp_path):
    task = make(name, tmp_path)
    batch = task.train_batch(0, 3, seed=0)
    assert batch.x.dtype == torch.int64 and batch.x.dim() == 2 and len(batch) == 3
    assert 0 <= batch.x.min() and batch.x.max() < task.vocab_size
    assert batch.y.shape == (batch.x.shape if task.per_step else (3,))
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(variant="gru", hidden_size=8, embedding_dim=8), variants.get("gru").Options(), task)
    outputs, state = model(batch)
    loss = task.loss(outputs, batch)
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    head = list(model.head.parameters())
    assert head and any(p.grad is not None for p in head), "the task's head is part of the model and trained"
    metrics = task.metrics(outputs.detach(), batch)
    assert metrics and all(v.shape == (3,) for v in metrics.values())
    summary = task.summarise({k: v.mean().item() for k, v in metrics.items()})
    assert task.primary_metric in summary
    base = task.baseline()
    assert task.success().metric in summary and all(math.isfinite(v) for v in base.values())


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_archive_is_one_data_error_naming_the_option(name, tmp_path):
    from tasks.imdb_data import DataError

    task = tasks.create(name, source=str(tmp_path / "nope.tar.gz"), data_dir=str(tmp_path / "d"))
    with pytest.raises(DataError, match="does not exist; check --set task.source=PATH"):
        next(task.eval_batches("val", seed=0))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mask", [True, False])
def test_context_problems_score_the_same_as_the_tasks_own_batches(name, mask, tmp_path):
    """The ablation's full-context score of a problem is the model's loss on it as the task
    feeds it; a context cut to its last d tokens is scored on those tokens only."""
    from harness.training import context

    extra = {"mask_padding": mask} if "mask_padding" in {f for f in tasks.get(name).Options.__dataclass_fields__} \
        else ({} if mask else None)
    if extra is None:
        pytest.skip(f"{name} has no padding to mask")
    task = make(name, tmp_path, **extra)
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(variant="lstm", hidden_size=8, embedding_dim=8), variants.get("lstm").Options(),
                          task).eval()
    ids, lengths, targets = task.context_problems("test", 6, 8, seed=0)
    assert ids.shape[0] == 6 and (lengths <= ids.shape[1]).all() and (lengths >= 1).all()
    scores = task.score_contexts(model, ids, lengths, targets)
    assert scores["loss"].shape == (6,) and torch.isfinite(scores["loss"]).all()
    metrics, curve = context.probe(model, task, window=8, count=6, seed=0)
    full = curve[(curve["mode"] == "full") & (curve["metric"] == "loss")]["value"].item()
    assert full == pytest.approx(scores["loss"].mean().item(), rel=1e-5)
    assert set(curve["mode"]) == {"full", "drop", "shuffle", "replace"}
    assert 1 <= metrics["context_effective"] <= 8 and metrics["context_full_loss"] == pytest.approx(full)
