"""PostgreSQL connections of sweep workers, counted while they run: the server's client
connections (pg_stat_activity) and each process's own TCP connections to it (`Census`, also
used by tests/test_sweep.py). A worker process keeps one connection for Optuna and opens
MLflow's per call (one, shared by the sessions a call nests): at most two at once.

The slow test: 12 worker processes (3 sweep commands, as on 3 machines, with --workers 4 each)
complete a study on one server started with max_connections=30, its Optuna study and its
MLflow runs on that server (about 3 minutes on two cores)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import optuna
import psutil
import pytest
from conftest import _cluster
from optuna.trial import TrialState
from sqlalchemy.pool import NullPool

MAX_CONNECTIONS = 30
TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=256", "--set", "task.test_size=256", "--set", "track.probe_points=1"]


@pytest.fixture
def small_postgres():
    """A PostgreSQL server of this test's own with max_connections=30 (conftest's has 100)."""
    import psycopg

    with _cluster(max_connections=MAX_CONNECTIONS) as port:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            for name in ("optuna", "mlflow"):
                conn.execute(f"CREATE DATABASE {name}")
        yield port


class Census(threading.Thread):
    """Every 0.1 s: the server's client connections (less the census's own) and, for each
    process of the sweeps' trees, its TCP connections to the server's port; the peaks."""

    def __init__(self, port: int, roots: list[subprocess.Popen]):
        super().__init__(daemon=True, name="census")
        self.port, self.roots, self.stop = port, [psutil.Process(p.pid) for p in roots], threading.Event()
        self.peak_total = 0
        self.peak: dict[int, int] = {}
        self.workers: set[int] = set()

    def run(self):
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            while not self.stop.is_set():
                total = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                                     ).fetchone()[0] - 1
                self.peak_total = max(self.peak_total, total)
                for root in self.roots:
                    try:
                        tree = [root, *root.children(recursive=True)]
                    except psutil.NoSuchProcess:
                        continue
                    for proc in tree:
                        try:
                            n = sum(1 for c in proc.net_connections(kind="tcp")
                                    if c.raddr and c.raddr.port == self.port)
                            if "multiprocessing.spawn" in " ".join(proc.cmdline()):
                                self.workers.add(proc.pid)
                        except psutil.Error:
                            continue
                        self.peak[proc.pid] = max(self.peak.get(proc.pid, 0), n)
                time.sleep(0.1)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(timeout=30)

    def worker_peaks(self) -> list[int]:
        """The most connections each `--workers` process held at once, as seen."""
        return sorted(self.peak[pid] for pid in self.workers)


WORKER_MOST = 2  # Optuna's one and MLflow's one (harness.tracking.pool: nested sessions share it)


@pytest.mark.slow
def test_twelve_workers_complete_a_study_on_a_server_with_30_connections(small_postgres, tmp_path):
    server = f"postgresql://postgres@127.0.0.1:{small_postgres}"
    storage, uri = f"{server}/optuna", f"{server}/mlflow"
    args = [sys.executable, "-m", "harness", "sweep", "--variant", "gru", "--trials", "24", "--study", "pg-twelve",
            "--storage", storage, "--tracking-uri", uri, "--experiment", "pg-twelve", "--pruner", "none",
            "--workers", "4", "--set", "train.steps=300", "--set", "train.eval_every=50", *TINY, "--json"]
    started = time.monotonic()
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    with Census(small_postgres, procs) as census:
        outs = [p.communicate(timeout=900) for p in procs]
    wall = time.monotonic() - started
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    assert not any("too many clients" in o[1] for o in outs)
    storage_obj = optuna.storages.RDBStorage(storage, engine_kwargs={"poolclass": NullPool})
    try:
        trials = optuna.load_study(study_name="pg-twelve", storage=storage_obj).trials
    finally:
        storage_obj.engine.dispose()
    assert len(trials) == 24 and all(t.state == TrialState.COMPLETE for t in trials)
    worker_peaks = census.worker_peaks()
    other_peaks = sorted(n for pid, n in census.peak.items() if pid not in census.workers)
    print(json.dumps({"wall_s": round(wall, 1), "peak_server_connections": census.peak_total,
                      "worker_peaks": worker_peaks, "command_peaks": other_peaks}))
    assert len(census.workers) == 12
    assert census.peak_total < MAX_CONNECTIONS
    assert max(worker_peaks) <= WORKER_MOST, worker_peaks


def test_mlflow_holds_one_connection_per_call_even_while_log_batch_nests_sessions(postgres):
    """MLflow's log_batch opens a session and, inside it, one for each of params, metrics and
    tags: on harness.tracking.pool's engine they share one connection, closed after the call.
    Counted by the pool's own connect/close events, so the count does not depend on timing.
    A batch that repeats a stored metric (MLflow's rollback path) keeps its new param."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import event

    from harness.tracking.writer import client_for

    import psycopg

    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE mlflow_one_connection")
    # a database of its own: MLflow keeps one engine per URI and process, and another test of
    # this process may have opened the shared one on MLflow's own engine before
    uri = f"{postgres}/mlflow_one_connection"
    client = client_for(uri)
    engine = SqlAlchemyStore._engine_map[uri]
    open_now, peak = [0], [0]

    def opened(*_):
        open_now[0] += 1
        peak[0] = max(peak[0], open_now[0])

    def closed(*_):
        open_now[0] -= 1

    event.listen(engine, "connect", opened)
    event.listen(engine, "close", closed)
    try:
        run = client.create_run(client.create_experiment("one-connection")).info.run_id
        peak[0] = open_now[0]
        client.log_batch(run, metrics=[Metric("loss", 1.5, 1000, 1)], params=[Param("a", "1")],
                         tags=[RunTag("t", "x")])
        assert peak[0] == 1 and open_now[0] == 0, (peak, open_now)
        client.log_batch(run, metrics=[Metric("loss", 1.5, 1000, 1), Metric("loss", 1.0, 1001, 2)],
                         params=[Param("b", "2")])
        assert peak[0] == 1 and open_now[0] == 0, (peak, open_now)
    finally:
        event.remove(engine, "connect", opened)
        event.remove(engine, "close", closed)
    data = client.get_run(run).data
    assert data.params == {"a": "1", "b": "2"} and data.tags["t"] == "x"
    assert [(m.step, m.value) for m in client.get_metric_history(run, "loss")] == [(1, 1.5), (2, 1.0)]
