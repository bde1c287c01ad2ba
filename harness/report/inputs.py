"""What a claim's report is computed from, kept in its folder so that the report can be
recomputed with no store (`report --from-results`):

- `runs.csv`: one row per run the report used (fingerprint, every config field, metrics,
  outcome, commit, machine, command, start and end; the format: harness.tracking.files);
- `histories.csv`: the metric histories the analysis asked for (`Context.history`): run_id,
  metric, step, value; a run that logged no value of an asked metric has one row with step
  and value `nan`;
- `artifacts/PATH`: the CSV artifacts it read (`Context.artifact`, e.g. gradient_flow.csv),
  every run's rows in one CSV with a leading run_id column; an artifact that is not CSV text,
  has no data rows or has another header than the first run's is kept as it is, in
  `artifacts/RUN_ID/PATH`.

The store-side Context (`Recording`) hands the analysis what these files give back, not the
store's own bytes, so a report made from the store and one made from its folder are computed
from the same inputs.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import shutil
from pathlib import Path

import pandas as pd

from harness.claims import Context
from harness.errors import UsageError
from harness.tracking import RunRecord, read_runs_csv, runs_csv

RUNS, HISTORIES, ARTIFACTS = "runs.csv", "histories.csv", "artifacts"
FILES = (RUNS, HISTORIES)  # a report's tables may not take these names


@dataclasses.dataclass
class Inputs:
    records: list[RunRecord]
    histories: dict[str, dict[str, list[tuple[int, float]]]] = dataclasses.field(default_factory=dict)  # metric -> run
    artifacts: dict[tuple[str, str], bytes] = dataclasses.field(default_factory=dict)  # (run_id, path) -> content

    @classmethod
    def of(cls, records: list[RunRecord]) -> Inputs:
        """Inputs holding these runs as runs.csv gives them back."""
        return cls(read_runs_csv(runs_csv(records)))

    def history(self, run_ids: list[str], key: str) -> pd.DataFrame:
        """As MLflowRuns.history: every kept value of metric `key` for these runs (run_id, step, value)."""
        if key not in self.histories:
            raise UsageError(f"the analysis asks for the history of metric {key!r}, which {HISTORIES} does not "
                             f"hold (the report was made by an analysis that did not ask for it): report from the "
                             f"store instead")
        kept = self.histories[key]
        rows = [{"run_id": run_id, "step": step, "value": value}
                for run_id in run_ids for step, value in kept.get(run_id, [])]
        return pd.DataFrame(rows, columns=["run_id", "step", "value"])

    def artifact(self, run_id: str, path: str, workdir: Path) -> Path:
        """The kept artifact `path` of a run, as a file under `workdir`; FileNotFoundError when
        none is kept (as the store raises for a run without it)."""
        content = self.artifacts.get((run_id, path))
        if content is None:
            raise FileNotFoundError(f"no artifact {path} of run {run_id} in {ARTIFACTS}/")
        target = workdir / run_id / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return target

    def context(self, workdir: Path) -> Context:
        """A store-free Context answering from these inputs."""
        return Context("", self.history, lambda run_id, path: self.artifact(run_id, path, workdir))

    def write(self, folder: Path) -> None:
        """runs.csv, histories.csv (when a history was asked for) and artifacts/ into `folder`,
        replacing what an earlier report left there."""
        (folder / RUNS).write_text(runs_csv(self.records))
        (folder / HISTORIES).unlink(missing_ok=True)
        shutil.rmtree(folder / ARTIFACTS, ignore_errors=True)
        if self.histories:
            out = io.StringIO()
            writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            writer.writerow(["run_id", "metric", "step", "value"])
            for key, runs in self.histories.items():
                for run_id, values in runs.items():
                    writer.writerows([run_id, key, step, value] for step, value in values or [(math.nan, math.nan)])
            (folder / HISTORIES).write_text(out.getvalue())
        by_path: dict[str, list[tuple[str, bytes]]] = {}
        for (run_id, path), content in self.artifacts.items():
            by_path.setdefault(path, []).append((run_id, content))
        for path, items in by_path.items():
            header, joined = None, []
            for run_id, content in items:
                rows = _csv_rows(path, content)
                if rows is not None and len(rows) > 1 and (header is None or rows[0] == header):
                    header = rows[0]
                    joined += [[run_id, *row] for row in rows[1:]]
                else:
                    _write(folder / ARTIFACTS / run_id / path, content)
            if header is not None:
                _write(folder / ARTIFACTS / path, _csv_bytes([["run_id", *header], *joined]))

    @classmethod
    def read(cls, folder: Path) -> Inputs:
        """The inputs kept in `folder` (all read into memory). Raises UsageError naming the file
        when one is missing or not in its format."""
        try:
            records = read_runs_csv((folder / RUNS).read_text())
        except OSError as err:
            raise UsageError(f"{folder / RUNS}: cannot read it ({err.strerror or err})") from None
        except ValueError as err:
            raise UsageError(f"{folder / RUNS}: {err}") from None
        inputs = cls(records)
        try:
            if (folder / HISTORIES).exists():
                rows = csv.reader(io.StringIO((folder / HISTORIES).read_text(), newline=""),
                                  quoting=csv.QUOTE_NONNUMERIC)
                if next(rows) != ["run_id", "metric", "step", "value"]:
                    raise ValueError("its columns must be run_id, metric, step, value")
                for run_id, key, step, value in rows:
                    kept = inputs.histories.setdefault(str(key), {}).setdefault(str(run_id), [])
                    if not math.isnan(step):
                        kept.append((int(step), float(value)))
        except (ValueError, TypeError, csv.Error, StopIteration) as err:
            raise UsageError(f"{folder / HISTORIES}: not a histories table ({err or 'empty'})") from None
        ids = {r.run_id for r in records}
        root = folder / ARTIFACTS
        for file in sorted(root.rglob("*")) if root.is_dir() else []:
            if not file.is_file():
                continue
            parts = file.relative_to(root).parts
            if len(parts) > 1 and parts[0] in ids:  # kept as it was
                inputs.artifacts[(parts[0], "/".join(parts[1:]))] = file.read_bytes()
                continue
            rows = _csv_rows(file.name, file.read_bytes())
            if not rows or rows[0][:1] != ["run_id"]:
                raise UsageError(f"{file}: not an artifact table (its first column must be run_id)")
            split: dict[str, list[list[str]]] = {}
            for row in rows[1:]:
                split.setdefault(row[0], []).append(row[1:])
            for run_id, part in split.items():
                inputs.artifacts[(run_id, "/".join(parts))] = _csv_bytes([rows[0][1:], *part])
        return inputs


class Recording:
    """The store-side Context: what the analysis asks for is fetched from the store, kept in
    `inputs` (in the form the files keep it) and answered from there."""

    def __init__(self, inputs: Inputs, store, workdir: Path):
        self.inputs, self.store, self.workdir = inputs, store, workdir

    def history(self, run_ids: list[str], key: str) -> pd.DataFrame:
        kept = self.inputs.histories.setdefault(key, {})
        missing = list(dict.fromkeys(r for r in run_ids if r not in kept))
        if missing:
            found = self.store.history(missing, key)
            for run_id in missing:
                part = found[found["run_id"] == run_id]
                kept[run_id] = [(int(s), float(v)) for s, v in zip(part["step"], part["value"])]
        return self.inputs.history(run_ids, key)

    def artifact(self, run_id: str, path: str) -> Path:
        if (run_id, path) not in self.inputs.artifacts:
            local = self.store.artifact(run_id, path, self.workdir / "store" / run_id)  # raises as the store does
            content = Path(local).read_bytes()
            rows = _csv_rows(path, content)
            self.inputs.artifacts[(run_id, path)] = content if rows is None else _csv_bytes(rows)
        return self.inputs.artifact(run_id, path, self.workdir / "kept")

    def context(self) -> Context:
        return Context(self.store.uri, self.history, self.artifact)


def _csv_rows(path: str, content: bytes) -> list[list[str]] | None:
    """The rows of a CSV artifact (None: not a .csv file, or not UTF-8 CSV text)."""
    if not path.endswith(".csv"):
        return None
    try:
        return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _write(target: Path, content: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
