"""Runs as a file: RunRecords to and from CSV text, with no store. What the neutral table reads
survives the round trip: `neutral_table(read_runs_csv(runs_csv(records)))` equals
`neutral_table(records)` (harness.tracking.runs) but for the order of its columns, ±inf and
NaN metrics, empty and missing values included.

One row per run, in the order given. Columns: `run_id`, `outcome` (an Outcome's value),
`started`, `ended` (ISO 8601, UTC), then `params.NAME`, `metrics.NAME` and `tags.NAME` (the
names MLflow's own `search_runs` gives), each kind sorted by name. Text is quoted; a metric is
an unquoted number (Python's repr, which reads back to the same float: `inf`, `-inf`, `nan`);
a value the run does not have is an unquoted `nan` (for a metric that is the same thing in the
neutral table). MLflow's `mlflow.*` tags are left out but the two the table shows
(`mlflow.runName`, `mlflow.parentRunId`). Needs no pandas.
"""
from __future__ import annotations

import csv
import datetime
import io
import math

from harness.tracking.base import Outcome, RunRecord

META = ("run_id", "outcome", "started", "ended")
KINDS = ("params", "metrics", "tags")
KEPT_TAGS = ("mlflow.runName", "mlflow.parentRunId")  # the neutral table's run_name and parent_run_id
MISSING = math.nan  # written unquoted: read back as a float, i.e. not a text value
_ABSENT = object()


def _kept(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.") or k in KEPT_TAGS}


def runs_csv(records: list[RunRecord]) -> str:
    """The records as CSV text (the format: see the module docstring)."""
    names = {kind: sorted({key for r in records for key in _parts(r)[kind]}) for kind in KINDS}
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow([*META, *(f"{kind}.{key}" for kind in KINDS for key in names[kind])])
    for r in records:
        parts = _parts(r)
        row = [r.run_id, Outcome(r.outcome).value, _time(r.started), _time(r.ended)]
        row += [_text(parts["params"].get(key, _ABSENT)) for key in names["params"]]
        row += [float(parts["metrics"].get(key, MISSING)) for key in names["metrics"]]
        row += [_text(parts["tags"].get(key, _ABSENT)) for key in names["tags"]]
        writer.writerow(row)
    return out.getvalue()


def read_runs_csv(text: str) -> list[RunRecord]:
    """The records of runs_csv text. Raises ValueError naming the problem when the text is not
    in that format (a missing column, an unknown outcome, a malformed time or row)."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))
    except (csv.Error, ValueError) as err:
        raise ValueError(f"not a runs table ({err})") from None
    if not rows or tuple(rows[0][:len(META)]) != META:
        raise ValueError(f"not a runs table: the first columns must be {', '.join(META)}")
    header = rows[0]
    columns = []
    for name in header[len(META):]:
        kind, _, key = str(name).partition(".")
        if kind not in KINDS or not key:
            raise ValueError(f"not a runs table: column {name!r} is none of {', '.join(k + '.NAME' for k in KINDS)}")
        columns.append((kind, key))
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"not a runs table: line {number} has {len(row)} values, the header {len(header)}")
        run_id, outcome, started, ended = row[:len(META)]
        parts: dict[str, dict] = {kind: {} for kind in KINDS}
        for (kind, key), value in zip(columns, row[len(META):]):
            if kind == "metrics":
                if isinstance(value, str):
                    raise ValueError(f"not a runs table: line {number}: metric {key} is text ({value!r})")
                parts[kind][key] = value
            elif isinstance(value, str):  # an unquoted value (a float) is one the run does not have
                parts[kind][key] = value
        try:
            records.append(RunRecord(str(run_id), Outcome(outcome), _parse_time(started), _parse_time(ended),
                                     parts["params"], parts["metrics"], parts["tags"]))
        except ValueError as err:
            raise ValueError(f"not a runs table: line {number}: {err}") from None
    return records


def _parts(r: RunRecord) -> dict[str, dict]:
    return {"params": r.params, "metrics": r.metrics, "tags": _kept(r.tags)}


def _text(value):
    return MISSING if value is _ABSENT else str(value)


def _time(value: datetime.datetime | None):
    return MISSING if value is None else value.astimezone(datetime.timezone.utc).isoformat()


def _parse_time(value) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.datetime.fromisoformat(value)
