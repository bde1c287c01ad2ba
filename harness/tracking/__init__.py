"""Experiment tracking behind one boundary; the only package that imports MLflow.

Writing: `open_tracker(uri, experiment)` is the one factory every caller uses. It checks the
store within seconds (StoreError, one line, otherwise) and returns a `Tracker`: tracking off
(the base class), or an `MLflowTracker` that creates nothing until its first run starts.
`MemoryTracker` keeps everything in memory for tests. Every run ends with a typed `Outcome`,
recorded as its `outcome` tag.

Reading: `open_runs(uri)` gives neutral tables (one row per run, config fields, metrics and
tags under their own names: see harness.tracking.runs), metric histories and artifacts.
`runs_csv` / `read_runs_csv` keep runs in a file with no store (harness.tracking.files).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from harness.tracking import store
from harness.tracking.base import REPORT_KIND, MemoryTracker, Outcome, RunRecord, TrackConfig, Tracker, is_report
from harness.tracking.files import read_runs_csv, runs_csv
from harness.connections import shown
from harness.tracking.store import StoreError, resolve_uri
from harness.tracking.writer import MLflowTracker, ensure_experiment, set_run_state

if TYPE_CHECKING:
    from harness.tracking.runs import MLflowRuns

__all__ = ["REPORT_KIND", "MLflowRuns", "MLflowTracker", "MemoryTracker", "Outcome", "RunRecord", "StoreError",
           "TrackConfig", "Tracker", "describe_store", "ensure_experiment", "is_report", "local_dir", "neutral_table", "open_runs",
           "open_tracker", "read_runs_csv", "resolve_uri", "runs_csv", "set_run_state", "ui_command"]


def __getattr__(name: str):
    # reading runs needs pandas (0.3 s to import): loaded on first use, so `run` starts without it
    if name in ("MLflowRuns", "neutral_table"):
        from harness.tracking import runs
        return getattr(runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_tracker(uri: str, experiment: str, *, enabled: bool = True, flush_seconds: float = 5.0) -> Tracker:
    """The tracker for `experiment` in the store at `uri` ('' = $MLFLOW_TRACKING_URI, else
    ./mlflow.db; a bare path is a SQLite file).

    enabled=False: tracking off (a `Tracker` that records nothing, whose `local_dir` still says
    where the store would be, so checkpoints land in the same place). Otherwise the store is
    checked first, each question bounded by harness.connections.timeout_seconds(), and nothing
    is created until a run starts. Raises StoreError (a ConfigError: the CLI prints one line and exits 2) naming
    the URI, password hidden, and the cause: unwritable path, unreachable server, malformed or
    unsupported URI, missing driver."""
    resolved = resolve_uri(uri)
    if not enabled:
        return Tracker(local_dir=store.local_dir(resolved))
    store.check(resolved, experiment)
    return MLflowTracker(resolved, experiment, flush_seconds=flush_seconds)


def open_runs(uri: str) -> MLflowRuns:
    """Reading runs back from the store at `uri` (checked like open_tracker's)."""
    from harness.tracking.runs import MLflowRuns

    resolved = resolve_uri(uri)
    store.check(resolved)
    return MLflowRuns(resolved)


def describe_store(uri: str) -> str:
    """The store at `uri` in words for a message, password hidden: "the MLflow store URI", and
    "(no such file)" for a SQLite file that does not exist (a mistyped path reads as empty)."""
    resolved = resolve_uri(uri)
    words = f"the MLflow store {shown(resolved)}"
    try:
        path = store.sqlite_path(resolved) if store.scheme(resolved) == "sqlite" else None
    except Exception:  # malformed: check() has said so before any reading
        path = None
    return f"{words} (no such file)" if path is not None and not path.exists() else words


def local_dir(uri: str) -> Path | None:
    """Where the store at `uri` keeps its files, if it is local (see Tracker.local_dir)."""
    return store.local_dir(uri)


def ui_command(uri: str) -> str:
    """How to look at the store's runs in a browser (the password hidden: it is printed)."""
    if store.scheme(uri) in ("http", "https"):
        return f"open {shown(uri)} in a browser"
    return f"mlflow ui --backend-store-uri {shlex.quote(shown(uri))} --host 127.0.0.1 --port 5000"  # pasted into a shell

