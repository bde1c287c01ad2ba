"""Experiment tracking behind a small interface; the only module that imports MLflow.

`Tracker` is the interface and, as is, tracking switched off. `MemoryTracker` records
everything in memory (for tests). `MLflowTracker` writes to an MLflow store through a
background thread that coalesces metrics into `log_batch` calls, so logging never stalls
the training loop (one `log_metric` on SQLite costs ~22 ms; a batch of 1,000 ~0.3 s).
Reading runs back (reports, reuse of finished runs) also lives here.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from harness.config import Options, option

STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclasses.dataclass(frozen=True)
class TrackConfig(Options):
    section: ClassVar[str] = "track"
    enabled: bool = option(True, "log to MLflow (false: no tracking at all)")
    tracking_uri: str = option("", "MLflow store; empty = $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db")
    experiment: str = option("", "MLflow experiment; empty = the task's name")
    run_name: str = option("", "MLflow run name; empty = variant-task-length-seed")
    probe: bool = option(True, "record gradient flow through time (explicit path, one batch)")
    probe_points: int = option(3, "gradient probes spread over training (start ... end)", min=1)
    probe_threshold: float = option(1e-3, "gradient_horizon: largest distance whose gradient norm "
                                    "is >= threshold x its norm at the loss step", min=0.0)
    gate_stats: bool = option(True, "log gate means and saturation (explicit path) at evaluations")
    probe_batch: int = option(64, "validation sequences the gradient probe and gate statistics use", min=1)
    log_model: bool = option(False, "also mlflow.pytorch.log_model (slow; fixes the input shape)")
    checkpoint_dir: str = option("", "where checkpoints go; empty = beside the MLflow store")


def resolve_uri(uri: str = "") -> str:
    """An explicit URI, else $MLFLOW_TRACKING_URI, else an absolute sqlite:///<cwd>/mlflow.db.

    Always explicit: with nothing set MLflow may switch to a legacy ./mlruns file store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if "://" not in uri:  # a bare path: a SQLite file there
        return f"sqlite:///{Path(uri).expanduser().resolve()}"
    return uri


def local_store_dir(uri: str) -> Path | None:
    """The directory of a local SQLite store, where artifacts and checkpoints go beside it."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent
    return None


def ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


class Tracker:
    """The tracking interface; this base class tracks nothing (tracking switched off)."""

    uri: str = ""
    experiment: str = ""
    run_id: str | None = None

    def start(self, *, run_name: str, tags: dict[str, str], resume_run_id: str | None = None,
              parent_run_id: str | None = None) -> str | None:
        return None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_figure(self, figure, artifact_file: str) -> None: ...
    def log_model(self, model) -> None: ...
    def flush(self) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class MemoryTracker(Tracker):
    """Keeps everything in memory: for tests and for callers that want the numbers back."""

    def __init__(self):
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[str, float, int]] = []
        self.tags: dict[str, str] = {}
        self.artifacts: dict[str, Any] = {}
        self.status: str | None = None

    def start(self, *, run_name, tags, resume_run_id=None, parent_run_id=None):
        self.run_id = resume_run_id or f"memory-{id(self):x}"
        self.tags.update(tags, run_name=run_name)
        self.status = "RUNNING"
        return self.run_id

    def log_params(self, params): self.params.update(params)
    def log_metrics(self, metrics, step): self.metrics.extend((k, float(v), step) for k, v in metrics.items())
    def set_tags(self, tags): self.tags.update(tags)
    def log_artifact(self, path, artifact_path=None):
        self.artifacts[f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name] = Path(path).read_bytes()
    def log_text(self, text, artifact_file): self.artifacts[artifact_file] = text
    def log_figure(self, figure, artifact_file): self.artifacts[artifact_file] = figure
    def end(self, status="FINISHED"): self.status = status

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(step, value) for k, value, step in self.metrics if k == key]


class MLflowTracker(Tracker):
    """Logs to MLflow through MlflowClient with an explicit run id (safe across threads and
    processes; nested runs attach to a parent started elsewhere)."""

    def __init__(self, uri: str, experiment: str, *, flush_seconds: float = 5.0):
        from mlflow import MlflowClient

        self.uri = resolve_uri(uri)
        self.experiment = experiment
        self.client = MlflowClient(self.uri)
        self.experiment_id = ensure_experiment(self.client, self.uri, experiment)
        self._flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()  # set by flush(): write now instead of waiting to coalesce

    def start(self, *, run_name, tags, resume_run_id=None, parent_run_id=None):
        if resume_run_id:
            self.client.update_run(resume_run_id, status="RUNNING")
            self.run_id = resume_run_id
            self.client.set_tag(resume_run_id, "resumed", "true")
        else:
            tags = dict(tags)
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id
        self._worker = threading.Thread(target=self._drain, name="mlflow-logger", daemon=True)
        self._worker.start()
        return self.run_id

    # Metrics, params and tags are queued and written in coalesced batches by the worker.
    def log_metrics(self, metrics, step):
        now = int(time.time() * 1000)
        self._queue.put(("metrics", [(k, float(v), now, step) for k, v in metrics.items()]))

    def log_params(self, params):
        self._queue.put(("params", [(k, _short(v)) for k, v in params.items()]))

    def set_tags(self, tags):
        self._queue.put(("tags", [(k, _short(v)) for k, v in tags.items()]))

    # Artifacts are rare and may be temporary files: written synchronously.
    def log_artifact(self, path, artifact_path=None):
        self.client.log_artifact(self.run_id, str(path), artifact_path)

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
        self._wake.set()
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def end(self, status="FINISHED"):
        try:
            self.flush()
        finally:
            self._queue.put(None)
            self._wake.set()
            self.client.set_terminated(self.run_id, status)

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
                while metrics or params or tags:  # MLflow's limits: 1,000 metrics, 100 params/tags
                    self.client.log_batch(self.run_id, metrics=metrics[:1000], params=params[:100], tags=tags[:100])
                    metrics, params, tags = metrics[1000:], params[100:], tags[100:]
            except Exception as err:  # surfaced by the next flush()
                self._error = err
            for _ in items:
                self._queue.task_done()
            if done:
                return


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if isinstance(value, (tuple, list)) else str(value)
    return text[:6000]


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


def ensure_experiment(client, uri: str, name: str) -> str:
    """The id of experiment `name`, created (with artifacts beside a local store) if needed."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    store = local_store_dir(uri)
    location = (store / "mlartifacts").as_uri() if store is not None else None
    try:  # the experiment kind makes MLflow 3's UI open the model-training view, not GenAI
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # created concurrently by another worker
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def set_run_state(uri: str, run_id: str, status: str | None, tags: dict[str, str]) -> None:
    """Tag (and optionally terminate) a run that no tracker of this process holds open."""
    from mlflow import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if status is not None:
        client.set_terminated(run_id, status)


def make_tracker(config: TrackConfig, experiment: str) -> Tracker:
    if not config.enabled:
        return Tracker()
    return MLflowTracker(config.tracking_uri, experiment)


# -- reading runs back (reports, reuse of finished runs) -----------------------------------------
def search_runs(uri: str, experiment: str, filter_string: str = ""):
    """All runs of an experiment as a pandas DataFrame (params.*, metrics.*, tags.* columns);
    empty when the experiment does not exist."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(resolve_uri(uri))
    if mlflow.MlflowClient().get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string,
                              max_results=100_000, output_format="pandas")


def metric_history(uri: str, run_ids: list[str], key: str):
    """Every logged value of `key` for the given runs: DataFrame(run_id, step, value)."""
    from mlflow import MlflowClient
    import pandas as pd

    client = MlflowClient(resolve_uri(uri))
    rows = [{"run_id": run_id, "step": m.step, "value": m.value}
            for run_id in run_ids for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def download_artifact(uri: str, run_id: str, path: str, dst: str | Path) -> Path:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reports download many
    from mlflow.artifacts import download_artifacts

    return Path(download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst),
                                   tracking_uri=resolve_uri(uri)))


def finished_run(uri: str, experiment: str, fingerprint: str) -> str | None:
    """A run of `experiment` with this config fingerprint that ran to its end (FINISHED, or
    FAILED by divergence: a deterministic outcome), to be reused instead of re-run."""
    from mlflow import MlflowClient

    client = MlflowClient(resolve_uri(uri))
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], f"tags.fingerprint = '{fingerprint}'", max_results=50)
    for run in runs:
        if run.info.status == "FINISHED" or (
                run.info.status == "FAILED" and "non-finite" in run.data.tags.get("failure_reason", "")):
            return run.info.run_id
    return None
