"""What a sweep is, as plain data: `Settings`, built in one place (`sweep_settings`) from a
validated run spec, for `python -m harness sweep` and for a claim's tuning studies alike."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import ConfigError, flatten
from harness.sweep import space as spaces
from harness.tracking import local_dir, resolve_uri

if TYPE_CHECKING:
    from harness.training.spec import RunSpec

OBJECTIVES = ("metric", "time", "params")  # what a trial can report: the metric, wall time, parameter count


@dataclasses.dataclass
class Settings:
    """Everything a worker needs, as plain picklable data."""

    study: str
    storage: str
    trials: int
    base: dict[str, Any]  # run config sections (before trial parameters)
    space: dict[str, dict[str, Any]]
    directions: list[str]
    objectives: list[str]  # "metric" first, then optionally "time" or "params"
    metric: str  # e.g. best_val_accuracy
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None  # the sampler's study seed; None: a random one, recorded in the study
    heartbeat: int = 60
    timeout: float | None = None
    tracking_uri: str = ""
    experiment: str = ""
    parent_run_id: str | None = None


def default_storage(tracking_uri: str, name: str = "optuna.journal") -> str:
    """The Optuna journal file `name` beside the local MLflow store at `tracking_uri`, else in
    the working directory (a remote store keeps no files here)."""
    return str((local_dir(resolve_uri(tracking_uri)) or Path.cwd()) / name)


def sweep_settings(spec: "RunSpec", *, trials: int, study: str | None = None, storage: str | None = None,
                   search: dict[str, Any] | None = None, space: dict[str, dict[str, Any]] | None = None,
                   objectives: list[str] | tuple[str, ...] = ("metric",), metric: str | None = None,
                   sampler: str = "tpe", pruner: str = "median", seed: int | None = None, heartbeat: int = 60,
                   timeout: float | None = None) -> Settings:
    """The sweep of `spec` (validated) over `trials` trials.

    space: the whole search space (a claim's tuning), else the cell's default space with `search`
        (a config file's [search] table) applied, checked against the spec's fields (ConfigError).
    metric: a metric every trial logs, minimised; None: best_val_<the task's primary metric>, in
        the task's direction. Further `objectives` ("time", "params") are minimised.
    study: None names it VARIANT-TASK-LLENGTH; storage: None is optuna.journal beside the store.
    The tracking URI is resolved once here, so that every worker logs to the same store; a
    spec with tracking off sweeps without MLflow runs (tracking_uri "")."""
    objectives = list(objectives)
    if not objectives or objectives[0] != "metric" or not set(objectives) <= set(OBJECTIVES):
        raise ValueError(f"objectives must start with 'metric' and be among {OBJECTIVES}, not {objectives}")
    uri = resolve_uri(spec.track.tracking_uri)
    base = spec.to_dict()
    base["track"]["tracking_uri"] = uri
    if space is None:
        space = spaces.space_for(spec.cell_class, search, fixed=flatten("", base))
    check_values(space, base)
    if metric is None:
        task = spec.build_task()
        metric, direction = f"best_val_{task.primary_metric}", "maximize" if task.higher_is_better else "minimize"
    else:
        direction = "minimize"
    return Settings(
        study=study or f"{spec.variant}-{spec.task_name}-L{spec.task.length}",
        storage=storage or default_storage(uri), trials=trials, base=base, space=dict(space),
        directions=[direction] + ["minimize"] * (len(objectives) - 1), objectives=objectives, metric=metric,
        sampler=sampler, pruner=pruner, seed=seed, heartbeat=heartbeat, timeout=timeout,
        tracking_uri=uri if spec.track.enabled else "", experiment=spec.experiment)


def check_values(space: dict, base: dict) -> None:
    """Every value the search can give a field (each entry's grid points: its choices, every
    int, or a float range's ends and middle), set on the base config together with the fields
    its condition compares with ==, must make a spec that validates, as a trial's does: a
    value the spec refuses (a backward direction on a causal task, a path the cell lacks) is a
    ConfigError naming the entry, before any storage is written, not a failed trial later."""
    from harness.training.spec import apply_sets, build_spec

    for key, entry in space.items():
        alongside = [f"{field}={value}" for field, op, value in spaces.conditions(key, entry) if op == "=="]
        for value in spaces.grid_points(entry):
            try:
                build_spec(apply_sets(base, [*alongside, f"{key}={value}"])).validate(warn=False)
            except ConfigError as err:
                raise ConfigError(f"search.{key}: a trial with {key}={value} would be refused: {err}") from None
