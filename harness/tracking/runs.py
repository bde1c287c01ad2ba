"""Reading runs back as neutral tables: the one place that knows how MLflow stores a run.

A run table has one row per run and these columns:
- `run_id`, `outcome` (an `Outcome`), `started`, `ended` (UTC timestamps; `ended` missing while
  running), `seconds` (the time a finished run ran, summed over its resumes without the pauses
  between them, from its `run_seconds` metric or, for older runs that probed their context, from
  those probes' seconds and share; else ended - started), `run_name`, `parent_run_id` (empty for top-level runs);
- every logged config field under its --set name (`model.variant`, `task.length`, `train.seed`,
  ...): a column whose values are all numbers becomes numeric, all True/False becomes bool
  ("None" counts as missing), anything else stays text;
- every metric under its name (`test_accuracy`, `gradient_horizon`, ...): its last value,
  ±inf and NaN as themselves (MLflow's SQL stores write ±inf as ±1.797e308, the largest float;
  read back, that value is ±inf again: `restored`);
- our tags under their names (`claim`, `claim_grid`, `fingerprint`, `machine`, ...), as text;
  MLflow's own `mlflow.*` tags are dropped.
A name logged as two kinds (the harness never does) keeps the first of param, metric, tag.
Runs written before outcomes were tagged get one from their MLflow status (FAILED: crashed).
"""
from __future__ import annotations

import datetime
import math
import os
import sys
from pathlib import Path

import pandas as pd

from harness.tracking.base import Outcome, RunRecord
from harness.tracking.store import resolve_uri, sqlite_path

META = ("run_id", "outcome", "started", "ended", "seconds", "run_name", "parent_run_id")
RENAMED = {"mlflow.runName": "run_name", "mlflow.parentRunId": "parent_run_id"}


def restored(value: float) -> float:
    """A metric value as it was logged: MLflow's SQL stores keep ±inf as ±sys.float_info.max
    (NaN they keep), so that value is read as ±inf (a finite metric of exactly that value
    would be too: no metric of the harness comes near it)."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def outcome_of(tags: dict[str, str], status: str) -> Outcome:
    """The run's `outcome` tag; for older runs without one, its MLflow status."""
    try:
        return Outcome(tags.get("outcome") or status)
    except ValueError:
        return Outcome.CRASHED


def _parse(values: pd.Series) -> pd.Series:
    """Text params -> numbers or booleans when every present value is one."""
    present = values.dropna()
    present = present[present != "None"]
    if present.empty:
        return values
    if set(present) <= {"True", "False"}:
        return values.map({"True": True, "False": False}).astype(object).where(values.isin(["True", "False"]), None)
    try:
        pd.to_numeric(present)
    except (ValueError, TypeError):
        return values
    return pd.to_numeric(values.where(values != "None"), errors="coerce")


def neutral_table(records: list[RunRecord]) -> pd.DataFrame:
    """The neutral run table of these runs (columns: see the module docstring)."""
    rows, param_names = [], set()
    for r in records:
        row = {"run_id": r.run_id, "outcome": r.outcome, "started": r.started, "ended": r.ended,
               "run_name": r.tags.get("mlflow.runName", r.tags.get("run_name", "")),
               "parent_run_id": r.tags.get("mlflow.parentRunId", "")}
        for key, value in r.params.items():
            row.setdefault(key, value)
            param_names.add(key)
        for key, value in r.metrics.items():
            row.setdefault(key, value)
        for key, value in r.tags.items():
            if not key.startswith("mlflow.") and key not in ("outcome", "run_name"):
                row.setdefault(key, value)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(META) if not rows else None)
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["seconds"] = (frame["ended"] - frame["started"]).dt.total_seconds()
    # A resumed run's start and end span the pause between its parts. A finished run logs the time
    # it really ran, summed over every resume (`run_seconds`); runs from before that metric which
    # probed their context logged it too: probe seconds / their share of it.
    if {"context_probe_seconds", "context_probe_share"} <= set(frame.columns):
        ran = frame["context_probe_seconds"] / frame["context_probe_share"]
        frame["seconds"] = ran.where(ran.notna() & (frame["context_probe_share"] > 0), frame["seconds"])
    if "run_seconds" in frame.columns:
        frame["seconds"] = frame["run_seconds"].where(frame["run_seconds"].notna(), frame["seconds"])
    # object dtype: pandas would otherwise store the Outcome members as plain strings
    frame["outcome"] = pd.Series([r.outcome for r in records], index=frame.index, dtype=object)
    for name in param_names:
        frame[name] = _parse(frame[name])
    return frame[list(META) + [c for c in frame.columns if c not in META]]


def _time(ms: int | None) -> datetime.datetime | None:
    return None if ms is None else datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


def _quoted(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class MLflowRuns:
    """Runs of an MLflow store, read through MlflowClient into neutral tables."""

    def __init__(self, uri: str):
        self.uri = resolve_uri(uri)
        self._client = None

    @property
    def client(self):
        if self._client is None:  # made on first use: MLflow creates a missing store's tables
            from harness.tracking.writer import client_for

            self._client = client_for(self.uri)
        return self._client

    def records(self, experiment: str, tags: dict[str, str] | None = None) -> list[RunRecord]:
        """Every run of `experiment` (none when it does not exist) whose tags equal `tags`."""
        path = sqlite_path(self.uri)
        if path is not None and not path.exists():  # reading must not create an empty store
            return []
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        query = " and ".join(f"tags.`{k}` = {_quoted(v)}" for k, v in (tags or {}).items())
        out, token = [], None
        while True:
            page = self.client.search_runs([found.experiment_id], query, max_results=1000, page_token=token)
            for run in page:
                info, data = run.info, run.data
                out.append(RunRecord(info.run_id, outcome_of(data.tags, info.status), _time(info.start_time),
                                     _time(info.end_time), dict(data.params),
                                     {k: restored(v) for k, v in data.metrics.items()}, dict(data.tags)))
            token = page.token
            if not token:
                return out

    def table(self, experiment: str, tags: dict[str, str] | None = None) -> pd.DataFrame:
        """The neutral table of the experiment's runs (optionally only those with these tags)."""
        return neutral_table(self.records(experiment, tags))

    def history(self, run_ids: list[str], key: str) -> pd.DataFrame:
        """Every logged value of metric `key` for these runs: columns run_id, step, value."""
        rows = [{"run_id": run_id, "step": m.step, "value": restored(m.value)}
                for run_id in run_ids for m in self.client.get_metric_history(run_id, key)]
        return pd.DataFrame(rows, columns=["run_id", "step", "value"])

    def artifact(self, run_id: str, path: str, dst: str | Path) -> Path:
        """Download one artifact of a run into `dst`; its local path."""
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reports download many
        from mlflow.artifacts import download_artifacts

        return Path(download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=self.uri))

    def delete(self, run_ids: list[str]) -> None:
        """Mark these runs deleted (MLflow's lifecycle: gone from searches and the UI; their
        files stay until `mlflow gc`)."""
        for run_id in run_ids:
            self.client.delete_run(run_id)
