"""What a claim's planned run has in the store, and so what reproduce does with it: the one
query behind the runner (harness/reproduce/runner.py, stages.py) and `reproduce --status`.

The store's runs with the run's configuration fingerprint (and the tags that place it in
the claim) are read, newest first:
- one reached a result (finished or diverged: both deterministic) -> REUSE it;
- else the newest killed one whose checkpoint is still on disk -> RESUME it (same MLflow
  run, from its checkpoint's step: train() continues to the metrics of an uninterrupted run);
- else -> RUN it afresh (the newest such run, if any, is reported: killed without a
  checkpoint, crashed, or left running).
"""
from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from harness.tracking import Outcome, RunRecord, local_dir

REUSE, RESUME, RUN = "reuse", "resume", "run"
_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Found:
    action: str  # REUSE, RESUME or RUN
    record: RunRecord | None  # the run reused or resumed; for RUN the newest earlier attempt, if any
    checkpoint: Path | None = None  # RESUME: the checkpoint it continues from

    @property
    def state(self) -> str:
        """finished, diverged, killed (resumable), or missing (a run the next reproduce starts)."""
        if self.action == REUSE:
            return self.record.outcome.value
        return "killed" if self.action == RESUME else "missing"


def checkpoint_of(spec, run_id: str, uri: str) -> Path:
    """Where train() keeps the checkpoint of run `run_id` of `spec` logged to the store at `uri`."""
    from harness.training.artifacts import checkpoint_path

    return checkpoint_path(spec, run_id, local_dir(uri))


def find(runs, experiment: str, fingerprint: str, tags: dict[str, str], spec=None, uri: str = "") -> Found:
    """The decision for one planned run (see the module docstring). `runs`: open_runs(uri);
    `spec`: the run's RunSpec, where its checkpoints are (None: a run that trains nothing)."""
    records = runs.records(experiment, {"fingerprint": fingerprint, **tags})
    records.sort(key=lambda r: r.started or _EPOCH, reverse=True)
    result = next((r for r in records if r.outcome.is_result), None)
    if result is not None:
        return Found(REUSE, result)
    for record in records:
        if record.outcome == Outcome.KILLED and spec is not None:
            path = checkpoint_of(spec, record.run_id, uri)
            if path.exists():
                return Found(RESUME, record, path)
    return Found(RUN, records[0] if records else None)
