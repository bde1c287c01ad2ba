"""Finding runs across a store's experiments: every experiment's name, a run by its ID or by an
unambiguous prefix of it (as `git` takes commits), a run's metric histories and artifacts.
Used by `runs` and `compare`; reads through MLflowRuns, so values are the neutral table's."""
from __future__ import annotations

import pandas as pd

from harness.errors import UsageError
from harness.tracking.base import RunRecord
from harness.tracking.runs import MLflowRuns, neutral_table


def experiments(runs: MLflowRuns) -> list[str]:
    """The names of the store's experiments (none for a store that does not exist yet)."""
    from harness.tracking.store import sqlite_path

    path = sqlite_path(runs.uri)
    if path is not None and not path.exists():  # reading must not create an empty store
        return []
    return sorted(e.name for e in runs.client.search_experiments())


def table(runs: MLflowRuns, names: list[str] | None = None) -> pd.DataFrame:
    """The neutral table of these experiments' runs (default: all), with an `experiment` column."""
    frames = []
    for name in names or experiments(runs):
        records = runs.records(name)
        if records:
            frames.append(neutral_table(records).assign(experiment=name))
    if not frames:
        return pd.DataFrame(columns=["run_id", "experiment", "outcome"])
    return pd.concat(frames, ignore_index=True)


def find(runs: MLflowRuns, wanted: list[str]) -> list[tuple[str, RunRecord]]:
    """(experiment, record) for each run ID or unique prefix in `wanted`, in that order.
    Raises UsageError naming an ID that matches no run or several."""
    every = {name: runs.records(name) for name in experiments(runs)}
    out = []
    for key in wanted:
        hits = [(name, r) for name, records in every.items() for r in records if r.run_id.startswith(key)]
        if not hits:
            raise UsageError(f"no run {key!r} in {runs.uri} (python -m harness runs lists them)")
        if len(hits) > 1:
            raise UsageError(f"run {key!r} is ambiguous: {', '.join(r.run_id for _, r in hits[:5])}"
                             + (" ..." if len(hits) > 5 else "") + "; give more of the ID")
        out.append(hits[0])
    return out
