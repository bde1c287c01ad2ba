"""The tracking interface, the typed run outcome, and the two trackers that need no store:
`Tracker` (tracking switched off) and `MemoryTracker` (everything kept in memory, for tests
and for callers that want the numbers back). No MLflow here."""
from __future__ import annotations

import dataclasses
import datetime
import enum
from pathlib import Path
from typing import Literal, Any, ClassVar

from harness.config import Options, option


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
    probe_figure: bool = option(True, "draw the gradient-flow figure (gradient_flow.png, matplotlib: ~0.5 s a run) "
                                "beside its CSV; claim runs turn it off and their reports draw from the CSV")
    gate_stats: bool = option(True, "log gate means and saturation (explicit path) at evaluations")
    probe_batch: int = option(64, "validation sequences the gradient probe and gate statistics use", min=1)
    log_model: bool = option(False, "also mlflow.pytorch.log_model (slow; fixes the input shape)")
    checkpoint_dir: str = option("", "where checkpoints go; empty = beside the MLflow store")
    keep_checkpoint: Literal["resumable", "always", "never"] = option(
        "resumable", "resumable: a run's checkpoint is kept while it can be resumed (killed, crashed) and "
        "deleted once it reaches a result or is pruned; always: kept; never: none written (a kill cannot be resumed)")
    context_probe: bool = option(False, "after testing, measure how much context the model uses: its loss with "
                                 "the context beyond d dropped, shuffled or replaced (Khandelwal et al. 2018), "
                                 "for tasks that define context problems (imdb, imdb_lm)")
    context_window: int = option(512, "context the ablation starts from, in tokens (a task may cap it)", min=2)
    context_problems: int = option(500, "prediction problems the ablation scores (a seeded sample)", min=1)
    context_points: int = option(1, "with context_probe: k > 1 also probes during training, at steps round(total "
                                 "/ 2^j) for j = k-1 .. 1 (a geometric schedule spanning 2^(k-1) x; those measure the cut "
                                 "context only), each logged as the context_* metrics at its step; the curve CSV "
                                 "holds every probe with its step", min=1, max=32)


class Outcome(enum.StrEnum):
    """How a run ended, recorded as the run's `outcome` tag (the reason stays human text).

    Parsing is forgiving so older callers keep working: names in any case, and MLflow's run
    statuses ("FAILED" without more information is a crash, "SCHEDULED" is still running)."""

    FINISHED = "finished"  # trained to its end (or stopped early by patience): a result
    DIVERGED = "diverged"  # a non-finite loss, gradient or metric: a deterministic result (not solved)
    PRUNED = "pruned"  # stopped by the caller (e.g. an Optuna pruner)
    KILLED = "killed"  # SIGINT/SIGTERM: a checkpoint was saved, the run can be resumed
    CRASHED = "crashed"  # an exception, or a worker lost mid-run: not a result
    RUNNING = "running"  # no outcome yet (in progress, or its process died without writing one)

    @classmethod
    def _missing_(cls, value):
        text = str(value).lower()
        aliases = {"failed": cls.CRASHED, "scheduled": cls.RUNNING}
        return aliases.get(text) or next((m for m in cls if m.value == text), None)

    @property
    def status(self) -> str:
        """The MLflow run status this outcome is recorded with."""
        return {"finished": "FINISHED", "diverged": "FAILED", "pruned": "KILLED", "killed": "KILLED",
                "crashed": "FAILED", "running": "RUNNING"}[self.value]

    @property
    def is_result(self) -> bool:
        """A deterministic end of training that reports (and reuse) may count."""
        return self in (Outcome.FINISHED, Outcome.DIVERGED)


# A claim's report run (harness.report) carries this tag: it lives in the claim's experiment
# and is not one of the claim's runs.
REPORT_KIND = {"kind": "report"}


def is_report(tags: dict[str, str]) -> bool:
    """Whether a run with these tags is a report run (REPORT_KIND)."""
    return all(tags.get(k) == v for k, v in REPORT_KIND.items())


@dataclasses.dataclass
class RunRecord:
    """One run, store-independent: what a row of the neutral run table is built from."""

    run_id: str
    outcome: Outcome
    started: datetime.datetime | None
    ended: datetime.datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


class Tracker:
    """The tracking interface; this base class tracks nothing (tracking switched off).

    `local_dir` is where a local store keeps its files (checkpoints go beside it); None when
    the store is remote or unknown."""

    uri: str = ""
    experiment: str = ""
    run_id: str | None = None
    local_dir: Path | None = None

    def __init__(self, local_dir: Path | None = None):
        self.local_dir = local_dir

    def start(self, *, run_name: str, tags: dict[str, str], resume_run_id: str | None = None,
              parent_run_id: str | None = None) -> str | None:
        return None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        """Every file under `directory`, at its relative path (under `artifact_path`)."""
    def log_table(self, table, artifact_file: str) -> None:
        """A pandas DataFrame as a table the MLflow UI shows (`artifact_file` ends in .json)."""
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_figure(self, figure, artifact_file: str) -> None: ...
    def log_model(self, model) -> None: ...
    def flush(self) -> None: ...
    def end(self, outcome: Outcome | str = Outcome.FINISHED) -> None: ...


class MemoryTracker(Tracker):
    """Keeps everything in memory: for tests and for callers that want the numbers back."""

    def __init__(self, local_dir: Path | None = None):
        super().__init__(local_dir)
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[str, float, int]] = []
        self.tags: dict[str, str] = {}
        self.artifacts: dict[str, Any] = {}
        self.status: str | None = None
        self.outcome: Outcome | None = None

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
    def log_artifacts(self, directory, artifact_path=None):
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                name = path.relative_to(directory).as_posix()
                self.artifacts[f"{artifact_path}/{name}" if artifact_path else name] = path.read_bytes()
    def log_table(self, table, artifact_file): self.artifacts[artifact_file] = table.copy()
    def log_text(self, text, artifact_file): self.artifacts[artifact_file] = text
    def log_figure(self, figure, artifact_file): self.artifacts[artifact_file] = figure

    def end(self, outcome=Outcome.FINISHED):
        self.outcome = Outcome(outcome)
        self.tags["outcome"] = self.outcome.value
        self.status = self.outcome.status

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(step, value) for k, value, step in self.metrics if k == key]

    def record(self) -> RunRecord:
        """This tracker's run as the store reader sees a run (params as logged text, the last
        value of each metric); `neutral_table([tracker.record()])` is its run table."""
        last = {key: value for key, value, _ in self.metrics}
        return RunRecord(self.run_id or "", self.outcome or Outcome.RUNNING, None, None,
                         {k: _text(v) for k, v in self.params.items()}, last, dict(self.tags))


def _text(value: Any) -> str:
    """A param as MLflow stores it (the batching writer's conversion)."""
    return value if isinstance(value, str) else repr(value) if isinstance(value, (tuple, list)) else str(value)
