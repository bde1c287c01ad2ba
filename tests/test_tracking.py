"""The tracking boundary against real stores: the batching writer on SQLite, experiment kinds,
the neutral run table (the same from MLflow as from memory), typed outcomes and reuse, and
store problems turned into one line before anything is created."""
from __future__ import annotations

import pytest
from helpers import at_once, free_port, new_database, tiny_spec
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from harness.training.train import train
from harness.tracking import (MemoryTracker, MLflowTracker, Outcome, StoreError, Tracker, neutral_table,
                              open_runs, open_tracker)
from harness.tracking.base import RunRecord
from harness.tracking.writer import KIND, LIMITS


def _uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


class BatchSizes:
    """Wraps the tracker's real client to record the size of every log_batch call."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self.calls.append((len(metrics), len(params), len(tags)))
        return self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)


def test_the_batching_writer_delivers_everything_in_order_across_mlflows_limits(tmp_path):
    tracker = open_tracker(_uri(tmp_path), "writer", flush_seconds=60)  # only flush() writes
    run_id = tracker.start(run_name="many", tags={})
    spy = tracker._client = BatchSizes(tracker.client)
    for step in range(500):  # 2,500 values: more than two batches of 1,000
        tracker.log_metrics({f"m{i}": step * 10.0 + i for i in range(5)}, step)
    for chunk in range(3):  # 240 params and 240 tags: more than two batches of 100 each
        tracker.log_params({f"p{chunk}_{i}": f"value {chunk}.{i}" for i in range(80)})
        tracker.set_tags({f"t{chunk}_{i}": str(i) for i in range(80)})
    tracker.flush()

    assert all(m <= LIMITS["metrics"] and p <= LIMITS["params"] and t <= LIMITS["tags"] for m, p, t in spy.calls)
    assert [sum(c[k] for c in spy.calls) for k in range(3)] == [2500, 240, 240]
    assert len(spy.calls) == 3  # coalesced: as few calls as the limits allow
    client = MlflowClient(_uri(tmp_path))
    for i in range(5):
        history = [(m.step, m.value) for m in client.get_metric_history(run_id, f"m{i}")]
        assert history == [(step, step * 10.0 + i) for step in range(500)]
    data = client.get_run(run_id).data
    assert data.metrics["m3"] == 4993.0  # the latest value of each key is the last one logged
    assert {k: v for k, v in data.params.items()} == {f"p{c}_{i}": f"value {c}.{i}" for c in range(3) for i in range(80)}
    assert all(data.tags[f"t{c}_{i}"] == str(i) for c in range(3) for i in range(80))
    tracker.end()


def test_flush_surfaces_a_write_error_and_end_flushes_what_is_queued(tmp_path):
    tracker = open_tracker(_uri(tmp_path), "writer", flush_seconds=60)
    run_id = tracker.start(run_name="errors", tags={})
    tracker.log_params({"a": 1})
    tracker.flush()
    tracker.log_params({"a": 2})  # MLflow refuses to change a logged param
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        tracker.flush()
    tracker.flush()  # reported once
    tracker.log_metrics({"late": 7.0}, 3)
    tracker.set_tags({"note": "queued before end"})
    tracker.end(Outcome.DIVERGED)
    run = MlflowClient(_uri(tmp_path)).get_run(run_id)
    assert run.data.metrics["late"] == 7.0 and run.data.tags["note"] == "queued before end"
    assert run.data.params["a"] == "1"
    assert run.info.status == "FAILED" and run.data.tags["outcome"] == "diverged"


def test_every_experiment_carries_the_model_training_kind(tmp_path):
    uri = _uri(tmp_path)
    fresh = open_tracker(uri, "fresh")
    client = MlflowClient(uri)
    assert client.get_experiment(fresh.prepare()).tags[next(iter(KIND))] == KIND["mlflow.experimentKind"]
    old = client.create_experiment("made-elsewhere")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert open_tracker(uri, "made-elsewhere").prepare() == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_opening_a_tracker_creates_nothing_until_a_run_starts(tmp_path):
    store = tmp_path / "sub" / "mlflow.db"
    tracker = open_tracker(str(store), "lazy")
    assert isinstance(tracker, MLflowTracker) and tracker.local_dir == store.parent
    off = open_tracker(str(store), "lazy", enabled=False)
    assert type(off) is Tracker and off.local_dir == store.parent and off.start(run_name="x", tags={}) is None
    assert list(tmp_path.iterdir()) == []
    assert open_runs(str(store)).table("lazy").empty and list(tmp_path.iterdir()) == [], "reading creates nothing"
    tracker.start(run_name="now", tags={})
    tracker.end()
    assert store.is_file()


def test_the_neutral_table_is_the_same_from_mlflow_and_from_memory(tmp_path):
    spec = tiny_spec("lstm", steps=6, track={"checkpoint_dir": str(tmp_path / "ck")})
    memory = MemoryTracker()
    train(spec, memory, progress=False)
    tracker = open_tracker(_uri(tmp_path), "same")
    result = train(spec, tracker, progress=False)
    runs = open_runs(_uri(tmp_path))
    stored, kept = runs.table("same"), neutral_table([memory.record()])

    assert list(stored.columns[:7]) == ["run_id", "outcome", "started", "ended", "seconds", "run_name",
                                        "parent_run_id"]
    assert set(stored.columns) == set(kept.columns)
    assert not any(c.startswith(("params.", "metrics.", "tags.", "mlflow.")) for c in stored.columns)
    row, mem = stored.iloc[0], kept.iloc[0]
    assert row["run_id"] == result.run_id and row["outcome"] is Outcome.FINISHED and row["seconds"] > 0
    timings = ["run_id", "started", "ended", "seconds", "steps_per_second", "run_seconds"]  # differ run to run
    for column in stored.columns.drop(timings):
        assert row[column] == mem[column], column
    assert row["run_seconds"] > 0 and mem["run_seconds"] > 0 and row["seconds"] == row["run_seconds"]
    assert row["task.length"] == spec.task.length and row["model.hidden_size"] == 8 and row["model.bidirectional"] is False
    assert row["model.variant"] == "lstm" and row["test_accuracy"] == result.metrics["test_accuracy"]
    assert row["fingerprint"] == spec.fingerprint() and row["threads"] == str(result.threads)
    history = runs.history([result.run_id], "val_accuracy")
    assert list(zip(history["step"], history["value"])) == memory.history("val_accuracy")


def _ended(uri: str, outcome, fingerprint: str = "fp") -> str:
    tracker = open_tracker(uri, "reuse")
    run_id = tracker.start(run_name=str(outcome), tags={"fingerprint": fingerprint})
    tracker.end(outcome)
    return run_id


def test_outcomes_are_typed_and_only_results_are_reused(tmp_path):
    uri = _uri(tmp_path)
    assert Outcome("FAILED") is Outcome.CRASHED and Outcome("PRUNED") is Outcome.PRUNED
    assert [o.status for o in Outcome] == ["FINISHED", "FAILED", "KILLED", "KILLED", "FAILED", "RUNNING"]
    runs = open_runs(uri)
    _ended(uri, Outcome.CRASHED)
    _ended(uri, Outcome.KILLED)
    from harness.reproduce import lookup

    assert lookup.find(runs, "reuse", "fp", {}).action != lookup.REUSE, "a crash or a kill is not a result"
    diverged = _ended(uri, Outcome.DIVERGED)
    _ended(uri, Outcome.PRUNED)
    found = lookup.find(runs, "reuse", "fp", {})
    assert found.action == lookup.REUSE and found.record.run_id == diverged
    legacy = MlflowClient(uri).create_run(MlflowClient(uri).get_experiment_by_name("reuse").experiment_id,
                                          tags={"fingerprint": "old"}).info.run_id
    MlflowClient(uri).set_terminated(legacy, "FAILED")  # written before outcomes were tagged
    table = runs.table("reuse").set_index("run_id")
    assert table.loc[legacy, "outcome"] is Outcome.CRASHED and table.loc[diverged, "outcome"] is Outcome.DIVERGED
    assert lookup.find(runs, "reuse", "old", {}).action != lookup.REUSE
    assert list(runs.table("reuse", {"fingerprint": "old"})["run_id"]) == [legacy]


@pytest.mark.parametrize("uri,cause", [
    ("sqlite:////proc/nope/x.db", "/proc is not writable"),
    ("sqlite:////proc/x.db", "/proc is not writable"),
    ("sqlite:///{tmp}/file.txt/x.db", "is not a directory"),
    ("sqlite:///{tmp}/file.txt", "is not an SQLite database"),
    ("sqlite://", "in-memory"),
    ("postgresql://user:secret@127.0.0.1:{port}/db", "cannot connect (connection failed"),
    ("postgresql://user@127.0.0.1:notaport/db", "malformed URI"),
    ("postgresql+psycopg2://user@127.0.0.1/db", "driver is not installed: No module named 'psycopg2'"),
    ("mysql://user@127.0.0.1/db", "driver is not installed"),
    ("http://127.0.0.1:{port}", "no MLflow server answers there (Connection refused)"),
    ("http://user:secret@127.0.0.1:{port}", "no MLflow server answers there (Connection refused)"),
    ("postgresql://:secret@127.0.0.1:{port}/db", "cannot connect (connection failed"),
    ("postgresql://user:s/secret@127.0.0.1:{port}/db", "cannot connect (connection failed"),
    ("http://", "no host in the URI"),
    ("file:///tmp/mlruns", "file store is not supported"),
    ("gopher://host/x", "unsupported scheme 'gopher'"),
])
def test_store_problems_are_one_line_naming_the_uri_and_create_nothing(tmp_path, uri, cause):
    (tmp_path / "file.txt").write_text("not a database")
    uri = uri.format(tmp=tmp_path, port=free_port())
    with pytest.raises(StoreError) as error:
        open_tracker(uri, "x")
    message = str(error.value)
    masked = uri.replace(":s/secret@", ":***@").replace(":secret@", ":***@")
    assert message.startswith(f"tracking store {masked}: ") and cause in message
    assert "\n" not in message and "secret" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_postgres_store_passes_the_probe_and_a_missing_database_does_not(postgres):
    tracker = open_tracker(f"{postgres}/mlflow", "pg-probe")
    run_id = tracker.start(run_name="pg", tags={})
    tracker.end()
    assert open_runs(f"{postgres}/mlflow").table("pg-probe")["run_id"].tolist() == [run_id]
    with pytest.raises(StoreError, match=r'cannot connect \(.*database "nothere" does not exist'):
        open_tracker(f"{postgres}/nothere", "x")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_opening_a_new_store_at_once_do_not_collide(kind, tmp_path, request):
    """MLflow creates a store's tables when it first opens it. Processes opening a new store at
    the same instant (sweep workers starting together) used to collide: alembic's "table
    _alembic_tmp_tags already exists" on SQLite, a duplicate-key IntegrityError on PostgreSQL
    (all but one failed, in every try). A barrier makes the three openings simultaneous."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}" if kind == "sqlite" else \
        new_database(request.getfixturevalue("postgres"), "fresh_mlflow")
    results = at_once("import mlflow.store.tracking.sqlalchemy_store\nfrom harness.tracking.writer import client_for",
                      "client_for(sys.argv[1]).search_experiments()", uri)
    assert [code for code, _ in results] == [0] * 3, [err[-1500:] for _, err in results]
    names = [e.name for e in MlflowClient(uri).search_experiments()]
    assert names == ["Default"], "one store, created once"




def test_a_resumed_runs_seconds_leave_out_the_pause_when_it_logged_its_running_time():
    """A run killed at 02:19 and resumed at 02:44 spans 40 min from start to end; one that probed
    its context logged how long it ran (probe seconds and their share of the run)."""
    import datetime

    start = datetime.datetime(2026, 12, 7, 2, 5, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(minutes=40)
    probed = RunRecord("a", Outcome.FINISHED, start, end, {}, {"context_probe_seconds": 30.0,
                                                                "context_probe_share": 0.04}, {})
    plain = RunRecord("b", Outcome.FINISHED, start, end, {}, {"test_accuracy": 0.9}, {})
    timed = RunRecord("c", Outcome.FINISHED, start, end, {}, {"run_seconds": 600.0, "context_probe_seconds": 30.0,
                                                               "context_probe_share": 0.04}, {})
    table = neutral_table([probed, plain, timed]).set_index("run_id")
    assert table.loc["a", "seconds"] == pytest.approx(750.0)  # 30 s / 0.04: 12.5 min of running
    assert table.loc["b", "seconds"] == 2400.0  # nothing logged: start to end
    assert table.loc["c", "seconds"] == 600.0  # the run's own clock comes first
