"""Columns of the neutral run table (harness.tracking.runs) as the analyses read them: a
config field by its --set name, a metric with a default, a run's outcome, its task rebuilt."""
from __future__ import annotations

import pandas as pd


def param(runs: pd.DataFrame, field: str) -> pd.Series:
    """A config field of every run, by its --set name, from the neutral run table
    (harness.tracking.runs: numbers and booleans already parsed)."""
    return runs[field]


def numeric(runs: pd.DataFrame, field: str) -> pd.Series:
    return pd.to_numeric(param(runs, field), errors="coerce")


def flag(runs: pd.DataFrame, field: str) -> pd.Series:
    """A boolean config field as True/False (a missing value is False)."""
    return param(runs, field).map(lambda v: v is True or v == "True")


def outcome(runs: pd.DataFrame) -> pd.Series:
    """Each run's outcome as its name ("finished", "diverged", ...)."""
    return runs["outcome"].map(str)


def run_stage(runs: pd.DataFrame) -> pd.Series:
    """Each run's `claim_stage` tag ("tuning", "ladder"; "" for a grid run or where no run has it)."""
    return runs["claim_stage"] if "claim_stage" in runs else pd.Series("", index=runs.index)


def metric(runs: pd.DataFrame, name: str, default: float = float("nan")) -> pd.Series:
    """A metric of every run; `default` where a run (or every run) did not log it."""
    if name not in runs:
        return pd.Series(default, index=runs.index, dtype=float)
    return pd.to_numeric(runs[name], errors="coerce").fillna(default)


def _text(value) -> str:
    """A parsed table value back to the text it was given as (--set style), for from_mapping."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def task_of(row: pd.Series):
    """Rebuild a run's task from its logged config (to ask for its baseline and criterion)."""
    import tasks

    cls = tasks.get(row["task.name"])
    fields = {f for f in cls.Options.__dataclass_fields__}
    values = {k[len("task."):]: _text(v) for k, v in row.items()
              if k.startswith("task.") and k[len("task."):] in fields and v is not None and not pd.isna(v)}
    return cls(cls.Options.from_mapping(values))
