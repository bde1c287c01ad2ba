"""The IMDB language model task on a tiny archive: streams, the unigram baseline against a hand
count, truncated BPTT state carrying, and a tracked run that logs perplexity."""
from __future__ import annotations

import collections
import json
import math

import pytest
import torch
from helpers import run_cli
from test_imdb import write_archive

import tasks
from harness.training.spec import build_spec
from harness.tracking import MemoryTracker
from harness.training.train import train


@pytest.fixture
def archive(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    path = tmp_path / "src" / "aclImdb_v1.tar.gz"
    return path, write_archive(path)


def options(archive, tmp_path, **kw):
    return {"source": str(archive[0]), "data_dir": str(tmp_path / "data"), "sha256": archive[1],
            **tasks.get("imdb_lm").smoke_options, **kw}


def test_streams_hold_every_review_once_with_end_markers(archive, tmp_path):
    task = tasks.create("imdb_lm", **options(archive, tmp_path))
    streams = task.streams()
    ends = {split: int((s == 0).sum()) for split, s in streams.items()}
    assert ends == {"train": 20, "val": 4, "test": 12}  # 24 training reviews, 4 held out; 12 test reviews
    assert all(s[-1] == 0 for s in streams.values()), "each stream ends a review"
    again = tasks.create("imdb_lm", **options(archive, tmp_path))
    assert all(torch.equal(streams[k], again.streams()[k]) for k in streams), "the split is fixed"


def test_unigram_perplexity_equals_a_hand_count(archive, tmp_path):
    task = tasks.create("imdb_lm", **options(archive, tmp_path))
    task.streams()
    vocab = task.text.vocab
    words = {split: [vocab[i] for i in stream.tolist()] for split, stream in task.streams().items()}
    counts = collections.Counter(words["train"])
    total, V = len(words["train"]), task.vocab_size
    log_p = [math.log((counts[w] + 1) / (total + V)) for w in words["test"]]  # add-one over the vocabulary
    expected = math.exp(-sum(log_p) / len(log_p))
    assert task.baseline()["perplexity"] == pytest.approx(expected, rel=1e-9)
    assert task.success().threshold == pytest.approx(expected / 2)


def test_truncated_bptt_carries_the_detached_state_from_chunk_to_chunk(archive, tmp_path):
    spec = build_spec({"model": {"variant": "lstm", "hidden_size": 6, "embedding_dim": 4},
                       "task": {"name": "imdb_lm", **options(archive, tmp_path)},
                       "train": {"epochs": 2, "batch_size": 2, "device": "cpu", "eval_every": 1000},
                       "track": {"probe": False, "gate_stats": False, "checkpoint_dir": str(tmp_path / "ck")}})
    calls = []
    from harness.training.model import SequenceModel

    original = SequenceModel.forward

    def spy(self, batch, path=None, state=None):
        logits, final = original(self, batch, path, state)
        if self.training:
            calls.append((state, final))
        return logits, final

    SequenceModel.forward = spy
    try:
        result = train(spec, MemoryTracker(), progress=False)
    finally:
        SequenceModel.forward = original
    per_epoch = tasks.create("imdb_lm", **options(archive, tmp_path)).steps_per_epoch(2)
    assert result.steps == 2 * per_epoch and len(calls) == result.steps
    for n, (state_in, _) in enumerate(calls):
        if n % per_epoch == 0:
            assert state_in is None, "each epoch restarts the streams"
            continue
        previous_out = calls[n - 1][1]
        assert all(torch.equal(a, b) for a, b in zip(state_in, previous_out)), "chunk n+1 starts where n ended"
        assert not any(s.requires_grad for s in state_in) and previous_out[0].requires_grad, "detached"
    assert math.isfinite(result.metrics["test_perplexity"]) and result.metrics["test_perplexity"] > 1


def test_run_logs_perplexity_and_a_missing_archive_is_one_line(archive, tmp_path):
    sets = [f"--set=task.{k}={v}" for k, v in options(archive, tmp_path).items()]
    small = ["--set", "model.hidden_size=8", "--set", "model.embedding_dim=8", "--set", "train.epochs=1",
             "--set", "train.batch_size=2", "--set", "track.probe_points=1"]
    env = {"XDG_CACHE_HOME": str(tmp_path / "usercache")}
    result = run_cli("run", "--variant", "lstm", "--task", "imdb_lm", *sets, *small, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    from mlflow import MlflowClient

    run = MlflowClient(info["tracking_uri"]).get_run(info["run_id"])
    for key in ("test_perplexity", "test_cross_entropy", "val_perplexity"):
        assert key in run.data.metrics, key
    assert run.data.metrics["test_perplexity"] == pytest.approx(math.exp(run.data.metrics["test_cross_entropy"]))
    bad = run_cli("run", "--task", "imdb_lm", "--set", f"task.source={tmp_path / 'nope.tar.gz'}", cwd=tmp_path,
                  env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "does not exist; check --set task.source=PATH" in bad.stderr


def test_context_problems_and_scores(archive, tmp_path):
    from harness.training.model import ModelConfig, SequenceModel

    import variants

    task = tasks.create("imdb_lm", **options(archive, tmp_path))
    ids, lengths, targets = task.context_problems("test", 9, 6, seed=0)
    stream = task.streams()["test"]
    assert ids.shape == (9, 6) and (lengths == 6).all()
    for row, target in zip(ids, targets):  # each window is 6 consecutive tokens followed by its target
        text = stream.tolist()
        hits = [i for i in range(6, len(text)) if text[i - 6:i] == row.tolist() and text[i] == target]
        assert hits
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(variant="gru", hidden_size=8, embedding_dim=8), variants.get("gru").Options(),
                          task).eval()
    scores = task.score_contexts(model, ids, lengths, targets)["loss"]
    assert scores.shape == (9,) and torch.isfinite(scores).all() and (scores > 0).all()
    words = task.sample_words(torch.Generator().manual_seed(0), 1000)
    assert words.min() >= 0 and words.max() < task.vocab_size


def test_a_run_with_the_context_probe_logs_the_curve_and_effective_context(archive, tmp_path):
    import io

    import pandas as pd

    spec = build_spec({"model": {"variant": "gru", "hidden_size": 6, "embedding_dim": 4},
                       "task": {"name": "imdb_lm", **options(archive, tmp_path)},
                       "train": {"epochs": 1, "batch_size": 2, "device": "cpu"},
                       "track": {"probe": False, "gate_stats": False, "checkpoint_dir": str(tmp_path / "ck"),
                                 "context_probe": True, "context_window": 16, "context_problems": 20}})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    curve = pd.read_csv(io.StringIO(tracker.artifacts["context_curve.csv"]))
    assert set(curve["mode"]) == {"full", "drop", "shuffle", "replace"}
    assert sorted(set(curve[curve["mode"] == "drop"]["distance"])) == [1, 2, 3, 4, 6, 8, 11]
    for key in ("context_effective", "context_order", "context_content", "context_full_loss"):
        assert math.isfinite(result.metrics[key]), key
    assert 1 <= result.metrics["context_effective"] <= 16


def test_the_context_probe_during_training_gives_one_curve_at_a_geometric_schedule(archive, tmp_path):
    """track.context_points = 3: probes at total/4, total/2 and the end, from one run; each
    logged as context_* metrics at its step, every curve in the CSV with its step (the cut
    context during training, every ablation at the end), and the probes' share of the run's
    wall time recorded."""
    import io

    import pandas as pd

    from harness.training.context_schedule import context_steps

    spec = build_spec({"model": {"variant": "gru", "hidden_size": 6, "embedding_dim": 4},
                       "task": {"name": "imdb_lm", **options(archive, tmp_path)},
                       "train": {"epochs": 1, "batch_size": 2, "device": "cpu"},
                       "track": {"probe": False, "gate_stats": False, "checkpoint_dir": str(tmp_path / "ck"),
                                 "context_probe": True, "context_window": 16, "context_problems": 20,
                                 "context_points": 3}})
    tracker = MemoryTracker()
    result = train(spec, tracker, progress=False)
    total = result.steps
    planned = sorted(context_steps(spec.track, spec.build_task(), total))
    assert planned == [round(total / 4), round(total / 2)]
    logged = [step for step, _ in tracker.history("context_effective")]
    assert logged == planned + [total]
    curve = pd.read_csv(io.StringIO(tracker.artifacts["context_curve.csv"]))
    assert sorted(set(curve["step"])) == planned + [total]
    modes = {step: set(part["mode"]) for step, part in curve.groupby("step")}
    assert modes == {**{s: {"full", "drop"} for s in planned}, total: {"full", "drop", "shuffle", "replace"}}
    assert 0 < result.metrics["context_probe_share"] < 1 and result.metrics["context_probe_seconds"] > 0
