"""Writing to MLflow: `MLflowTracker` logs through a background thread that coalesces metrics,
params and tags into `log_batch` calls, so logging never stalls the training loop (one
`log_metric` on SQLite costs ~22 ms; a batch of 1,000 ~0.3 s). Nothing is written before the
first run starts (or `prepare()` is called): opening a tracker leaves no store behind.

A resumed run writes each (metric, step) once: what the store already holds for the run when
it is resumed (values logged after its last checkpoint, before the process died) is not
logged again. The trainer flushes before every checkpoint, so nothing before it is missing."""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from pathlib import Path
from typing import Any

from harness.config import ConfigError
from harness.dblock import opening_lock
from harness.tracking.base import Outcome, Tracker, _text
from harness.tracking.pool import connect_per_call
from harness.tracking.store import (SQL, StoreError, local_dir, resolve_uri, scheme, shown,
                                    sqlite_path, unwritable)

KIND = {"mlflow.experimentKind": "custom_model_development"}  # MLflow 3's UI: the model-training view
LIMITS = {"metrics": 1000, "params": 100, "tags": 100}  # per log_batch call
# Totals over a run's resumes: a resume that logs one again at a stored step has the newer sum,
# which MLflow keeps as the metric's value (same step, later timestamp).
RESTATED = frozenset({"run_seconds", "context_probe_seconds", "context_probe_share"})
STOP_REASONS = ("stop_reason", "failure_reason")  # why a run ended short of a result; cleared on resume
EXPERIMENT_NAME, RUN_NAME = 500, 250  # characters: MLflow's experiment-name limit, its runs table's name column


class MLflowTracker(Tracker):
    """Logs to MLflow through MlflowClient with an explicit run id (safe across threads and
    processes; nested runs attach to a parent started elsewhere). Use `open_tracker`, which
    checks the store first; constructing this directly skips that check."""

    def __init__(self, uri: str, experiment: str, *, flush_seconds: float = 5.0):
        self.uri = resolve_uri(uri)
        super().__init__(local_dir(self.uri))
        self.experiment = experiment
        self._client = None
        self._experiment_id: str | None = None
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()  # set by flush(): write now instead of waiting to coalesce
        self._stored: dict[str, set[int]] = {}  # a resumed run's (metric -> steps) already in the store

    @property
    def client(self):
        if self._client is None:
            self._client = client_for(self.uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        return self.prepare()

    def prepare(self) -> str:
        """Create the store and the experiment now (before parallel workers race to); its id."""
        if self._experiment_id is None:
            self._experiment_id = ensure_experiment(self.client, self.local_dir, self.experiment)
        return self._experiment_id

    def start(self, *, run_name, tags, resume_run_id=None, parent_run_id=None):
        if resume_run_id:
            previous = self.client.get_run(resume_run_id)
            self._check_artifacts(previous.info.artifact_uri)
            self._stored = stored_steps(self.client, resume_run_id)
            self.run_id = resume_run_id
            self._reopen_tags(previous.data.tags)  # before the status: a failure here leaves it as it was
            self.client.update_run(resume_run_id, status="RUNNING")
        else:
            tags = dict(tags)
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            self._check_artifacts(self.client.get_experiment(self.prepare()).artifact_location)
            self.run_id = self.client.create_run(self.prepare(), run_name=run_name, tags=tags).info.run_id
        self._worker = threading.Thread(target=self._drain, name="mlflow-logger", daemon=True)
        self._worker.start()
        return self.run_id

    def _reopen_tags(self, tags: dict[str, str]) -> None:
        """A resumed run is running again and no longer says why it stopped: its outcome tag reads
        `running` (a worker lost now is tagged anew), and the old reason ("SIGINT at step 40;
        resume with ...") moves to `resumed_after`, which keeps every earlier stop in order
        ("SIGINT at step 40 | worker lost at step 90"; the newest kept when it grows too long)."""
        history = [t for t in tags.get("resumed_after", "").split(" | ") if t]
        for key in STOP_REASONS:
            stop = tags.get(key, "").split("; resume with")[0]
            if stop and history[-1:] != [stop]:  # not twice, should a resume have died before the delete
                history.append(stop)
        self.client.set_tag(self.run_id, "resumed", "true")
        self.client.set_tag(self.run_id, "outcome", Outcome.RUNNING.value)
        if history:
            self.client.set_tag(self.run_id, "resumed_after", " | ".join(history)[-6000:])
        for key in STOP_REASONS:
            if key in tags:
                self.client.delete_tag(self.run_id, key)

    def _check_artifacts(self, location: str | None) -> None:
        """StoreError, before the run is created or reopened, when its artifacts would go to a
        local folder that takes no file (checked as store.unwritable does)."""
        if not location or not location.startswith("file:"):
            return
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        problem = unwritable(Path(url2pathname(urlparse(location).path)))
        if problem:
            raise StoreError(f"tracking store {shown(self.uri)}: cannot write the run's artifacts: {problem}")

    # Metrics, params and tags are queued and written in coalesced batches by the worker.
    def log_metrics(self, metrics, step):
        now = int(time.time() * 1000)
        rows = [(k, float(v), now, step) for k, v in metrics.items()
                if k in RESTATED or step not in self._stored.get(k, ())]
        if rows:
            self._queue.put(("metrics", rows))

    def log_params(self, params):
        self._queue.put(("params", [(k, _short(v)) for k, v in params.items()]))

    def set_tags(self, tags):
        self._queue.put(("tags", [(k, _short(v)) for k, v in tags.items()]))

    # Artifacts are rare and may be temporary files: written synchronously.
    def log_artifact(self, path, artifact_path=None):
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory, artifact_path=None):
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_table(self, table, artifact_file):
        self.client.log_table(self.run_id, data=table, artifact_file=artifact_file)

    def log_text(self, text, artifact_file):
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure, artifact_file):
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_model(self, model):
        import mlflow.pytorch

        with _active_run(self):
            mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                     pip_requirements=["torch"])

    def flush(self):
        """Write everything queued now; raise the first write error since the last flush."""
        self._wake.set()
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def end(self, outcome=Outcome.FINISHED):
        """Record the outcome (tag and MLflow status) after flushing what is queued."""
        outcome = Outcome(outcome)
        self.set_tags({"outcome": outcome.value})
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._wake.set()
            self.client.set_terminated(self.run_id, outcome.status)

    def _drain(self):
        from mlflow.entities import Metric, Param, RunTag

        while True:
            items = [self._queue.get()]
            if self._wake.wait(self._flush_seconds):  # let more arrive: one round trip for many values
                self._wake.clear()
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = None in items
            try:
                rows = {"metrics": [], "params": [], "tags": []}
                for kind, values in filter(None, items):
                    rows[kind].extend(values)
                metrics = [Metric(*m) for m in rows["metrics"]]
                params = [Param(*p) for p in rows["params"]]
                tags = [RunTag(*t) for t in rows["tags"]]
                m, p, t = LIMITS["metrics"], LIMITS["params"], LIMITS["tags"]
                while metrics or params or tags:  # in queue order, split at MLflow's limits
                    self.client.log_batch(self.run_id, metrics=metrics[:m], params=params[:p], tags=tags[:t])
                    metrics, params, tags = metrics[m:], params[p:], tags[t:]
            except Exception as err:  # surfaced by the next flush()
                self._error = self._error or err
            for _ in items:
                self._queue.task_done()
            if done:
                return


_OPENED: set[str] = set()  # stores this process has opened (their tables exist)


def client_for(uri: str):
    """An MlflowClient on `uri`, its store opened (tables created or upgraded) under
    harness.dblock.opening_lock the first time in this process: processes opening a new store
    at once would collide. On PostgreSQL it connects per call (harness.tracking.pool)."""
    from mlflow import MlflowClient

    first = uri not in _OPENED and scheme(uri) in ("sqlite", "postgresql")
    with opening_lock(uri) if first else contextlib.nullcontext():
        connect_per_call(uri)
        client = MlflowClient(uri)
        client._tracking_client.store  # the store (and its tables) now, under the lock
    _OPENED.add(uri)
    return client


def check_text(fields: dict[str, Any], *, experiment: str, run_name: str) -> None:
    """ConfigError (one line naming the field) for text the store would refuse, before anything
    is created: a string that is not UTF-8 (MLflow stores UTF-8; a command-line byte that is not
    reaches Python as a surrogate escape), an experiment name over EXPERIMENT_NAME characters or
    a run name over RUN_NAME. `fields`: the flattened config ({'track.experiment': ...})."""
    for key, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"{key}: '{_escaped(value)}' is not UTF-8 text, which the MLflow store "
                                  "needs; give it in UTF-8") from None
    for what, text, limit, option in (("experiment name", experiment, EXPERIMENT_NAME, "--experiment NAME"),
                                      ("run name", run_name, RUN_NAME, "--set track.run_name=NAME")):
        if len(text) > limit:
            raise ConfigError(f"the {what} {text[:20]!r}... has {len(text)} characters; MLflow takes at most "
                              f"{limit}: give a shorter one ({option})")


def _escaped(text: str) -> str:
    """`text` in ASCII, the bytes a surrogate escape stands for shown as \\xNN."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("ascii", "backslashreplace")


def run_outcome(uri: str, run_id: str) -> Outcome | None:
    """How run `run_id` ended in the store at `uri` (its `outcome` tag, else its MLflow status;
    RUNNING when neither says it ended), or None when the store has no such (undeleted) run. A
    local store that does not exist yet is not created. A database store is asked directly
    (MLflow's `runs` and `tags` tables): importing MLflow's client costs seconds, and this is
    asked before a refusal that must come within seconds."""
    uri = resolve_uri(uri)
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        return None
    if scheme(uri) in ("sqlite", *SQL):
        status, tag = _sql_run_state(uri, run_id)
    else:
        from mlflow.exceptions import MlflowException

        try:
            run = client_for(uri).get_run(run_id)
        except MlflowException:
            return None
        status = run.info.status if run.info.lifecycle_stage != "deleted" else None
        tag = run.data.tags.get("outcome")
    return None if status is None else Outcome(tag or status)


def _sql_run_state(uri: str, run_id: str) -> tuple[str | None, str | None]:
    """(MLflow status, outcome tag) of an undeleted run in a database store; (None, None) when
    the run (or MLflow's tables) is not there."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    engine = create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT status FROM runs WHERE run_uuid = :id AND lifecycle_stage "
                                          "= 'active'"), {"id": run_id}).first()
            tag = connection.execute(text("SELECT value FROM tags WHERE run_uuid = :id AND key = 'outcome'"),
                                     {"id": run_id}).scalar()
    except DBAPIError:  # no MLflow tables: a database that holds no runs
        return None, None
    finally:
        engine.dispose()
    return (row[0] if row else None), tag


def stored_steps(client, run_id: str) -> dict[str, set[int]]:
    """{metric: the steps the store holds values of} for one run (its full histories)."""
    keys = client.get_run(run_id).data.metrics
    return {key: {m.step for m in client.get_metric_history(run_id, key)} for key in keys}


def _short(value: Any) -> str:
    return _text(value)[:6000]


class _active_run:
    """Make the tracker's run the fluent API's active run (log_model has no client form)."""

    def __init__(self, tracker: MLflowTracker):
        self.tracker = tracker

    def __enter__(self):
        import mlflow

        mlflow.set_tracking_uri(self.tracker.uri)
        return mlflow.start_run(run_id=self.tracker.run_id)

    def __exit__(self, *exc):
        import mlflow

        mlflow.end_run(status="RUNNING")


def ensure_experiment(client, store_dir: Path | None, name: str) -> str:
    """The id of experiment `name`, created if needed (artifacts beside a local store), and
    always carrying the experiment kind (an experiment made elsewhere gets it when opened)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        location = (store_dir / "mlartifacts").as_uri() if store_dir is not None else None
        try:
            return client.create_experiment(name, artifact_location=location, tags=dict(KIND))
        except Exception:  # created concurrently by another worker
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    for key, value in KIND.items():
        if found.tags.get(key) != value:
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def set_run_state(uri: str, run_id: str, outcome: Outcome | str | None, tags: dict[str, str]) -> None:
    """Tag (and, given an outcome, terminate) a run that no tracker of this process holds open.
    An MLflow status is accepted for the outcome: "FAILED" records a crash."""
    client = client_for(resolve_uri(uri))
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if outcome is not None:
        outcome = Outcome(outcome)
        client.set_tag(run_id, "outcome", outcome.value)
        client.set_terminated(run_id, outcome.status)
