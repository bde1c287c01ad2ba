"""Optuna sweeps: opening the study, pruners, the objective and the worker loop.

Work distribution uses Optuna's own trial queue: whoever opens a sweep tops the study up
to N trials by enqueueing WAITING trials (under a lock), and every worker, in this process,
in `--workers` processes or on other machines, takes only queued trials. Optuna pops a
queued trial atomically (a WAITING -> RUNNING state change that only one caller wins), so
exactly N trials run however many workers race. With RDB storage, heartbeats turn the trial
of a killed worker into FAIL and `RetryHeartbeatStaleTrialCallback` queues it again.
Samplers and the queue hook live in harness/sweep/sampling.py.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.sweep import space as spaces
from harness.config import ConfigError, flatten
from harness.sweep.sampling import QueueEmpty, QueueStudy, check_queue_hook, make_sampler
from harness.training.spec import apply_sets, build_spec
from harness.connections import shown
from harness.sweep.storage import is_rdb, open_storage
from harness.training.train import StopRun, train
from harness.tracking import open_tracker, set_run_state

optuna.logging.set_verbosity(optuna.logging.WARNING)
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


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


def stale_trial_callback(settings: Settings, reason: str = "worker lost (stale heartbeat)"):
    """Mark the lost trial's MLflow run FAILED and queue the trial again with its parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)

    def callback(study, trial):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and settings.tracking_uri:
            set_run_state(settings.tracking_uri, run_id, "FAILED", {"trial_state": "FAIL", "failure_reason": reason})
        retry(study, trial)
    return callback


def make_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    if settings.pruner == "none" or len(settings.directions) > 1:  # Optuna cannot prune multi-objective
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)


def study_storage(settings: Settings):
    """The sweep's storage, with heartbeats and the retry callback on RDB; StorageError (one
    line) before anything is written if it cannot be used."""
    rdb = is_rdb(settings.storage)
    return open_storage(settings.storage, settings.heartbeat if rdb else None,
                        stale_trial_callback(settings) if rdb else None)


def open_study(settings: Settings, worker: int = 0, storage=None) -> QueueStudy:
    """Create or load the study on `storage` (default: study_storage(settings)). `worker` no
    longer matters: draws depend on the study seed and trial numbers only (harness.sweep.sampling)."""
    check_queue_hook()
    storage = study_storage(settings) if storage is None else storage
    study = optuna.create_study(storage=storage, study_name=settings.study, directions=settings.directions,
                                load_if_exists=True)
    seed = settings.seed if settings.seed is not None else study.user_attrs.get("sampler_seed", 0)
    return QueueStudy(study_name=settings.study, storage=storage, sampler=make_sampler(settings.sampler, seed),
                      pruner=make_pruner(settings))


def counts(study: optuna.Study) -> dict[str, int]:
    out = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] += 1
    return out


def top_up(study: optuna.Study, total: int, grid: list[dict] | None = None) -> int:
    """Queue trials until finished + running + queued = total; returns how many were queued.
    For grid search each queued trial is one grid point not tried yet (so the grid can run
    out). The caller holds the sweep lock, so concurrent sweeps never overfill the study."""
    c = counts(study)
    missing = max(0, total - (c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] + c["WAITING"]))
    if grid is None:
        for _ in range(missing):
            study.enqueue_trial({}, skip_if_exists=False)
        return missing
    taken = [t.system_attrs.get("fixed_params", t.params) for t in study.get_trials(deepcopy=False)
             if t.state != TrialState.FAIL]
    fresh = [point for point in grid if point not in taken][:missing]
    for point in fresh:
        study.enqueue_trial(point, skip_if_exists=False)
    return len(fresh)


def fail_orphans(study: optuna.Study, on_fail=None) -> int:
    """Mark RUNNING trials FAIL (journal storage has no heartbeat to notice a crashed sweep);
    `on_fail(study, trial)` then runs for each, as a heartbeat's stale-trial callback would."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
        if on_fail is not None:
            on_fail(study, trial)
    return len(orphans)


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]], fixed: dict[str, Any]) -> dict[str, Any]:
    """The trial's parameters: the space's active entries, in dependency order (space.sample)."""
    def draw(key: str, entry: dict[str, Any]) -> Any:
        kind = entry["type"]
        if kind == "categorical":
            return trial.suggest_categorical(key, entry["choices"])
        if kind == "int":
            return trial.suggest_int(key, int(entry["low"]), int(entry["high"]), step=int(entry.get("step", 1)),
                                     log=bool(entry.get("log", False)))
        return trial.suggest_float(key, float(entry["low"]), float(entry["high"]), log=bool(entry.get("log", False)))
    return spaces.sample(space, fixed, draw)


class Objective:
    def __init__(self, settings: Settings, progress: bool = False):
        self.settings, self.progress = settings, progress
        self.fixed = flatten("", settings.base)  # what conditions read for fields not drawn

    def __call__(self, trial: optuna.Trial):
        s = self.settings
        params = suggest(trial, s.space, self.fixed)
        values = apply_sets(s.base, [f"{k}={v}" for k, v in params.items()])
        values = apply_sets(values, [f"track.run_name={s.study}-trial{trial.number}"])
        spec = build_spec(values).validate()
        primary = spec.build_task().primary_metric
        # tracking off still gives a tracker: it says where the store (and so checkpoints) would be
        tracker = open_tracker(s.base["track"]["tracking_uri"], spec.experiment, enabled=bool(s.tracking_uri))

        def report(step, metrics):
            if len(s.directions) == 1:
                trial.report(metrics[primary], step)
                if trial.should_prune():
                    raise StopRun("PRUNED", f"pruned by the {s.pruner} pruner at step {step}")

        def started(run_id):  # recorded up front: a worker may die before the trial ends
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("worker", f"{platform.node()}:{os.getpid()}")

        result = train(spec, tracker, report=report, progress=self.progress, parent_run_id=s.parent_run_id,
                       tags={"optuna.study": s.study, "optuna.trial": str(trial.number)}, on_start=started)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("wall_time_s", round(result.wall_time_s, 3))
        trial.set_user_attr("trainable_params", result.trainable_params)
        for key, value in result.metrics.items():
            if key.startswith("test_"):
                trial.set_user_attr(key, value)  # recorded, never optimised
        state = {"FINISHED": "COMPLETE", "PRUNED": "PRUNED"}.get(result.status, "PRUNED")
        if result.reason:
            trial.set_user_attr("reason", result.reason)
        if s.tracking_uri:
            set_run_state(s.tracking_uri, result.run_id, None, {"trial_state": state})
        if result.status == "KILLED":
            raise KeyboardInterrupt(result.reason)  # Ctrl-C/SIGTERM: the trial FAILs, the worker stops
        if state == "PRUNED":  # pruned, or diverged (the reason is recorded) — the sweep goes on
            raise optuna.TrialPruned(result.reason)
        values = {"metric": result.metrics[s.metric], "time": result.wall_time_s,
                  "params": float(result.trainable_params)}
        return [values[o] for o in s.objectives] if len(s.objectives) > 1 else values["metric"]


def run_worker(settings: Settings, worker: int = 0, progress: bool = False, threads: int = 0) -> int:
    """Take queued trials until none is left; returns how many this worker ran."""
    if threads:  # K workers on one machine share its cores instead of oversubscribing them
        import torch

        torch.set_num_threads(threads)
    study = open_study(settings, worker)
    ran, deadline = 0, None if settings.timeout is None else time.time() + settings.timeout
    objective = Objective(settings, progress)
    while deadline is None or time.time() < deadline:
        try:
            left = None if deadline is None else max(1.0, deadline - time.time())
            study.optimize(objective, n_trials=1, timeout=left, catch=())
            ran += 1
        except QueueEmpty:
            if is_rdb(settings.storage) and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # a dead worker's trial is queued again
                time.sleep(min(5.0, settings.heartbeat))
                continue
            break
    return ran


def trials_frame(study: optuna.Study):
    frame = study.trials_dataframe(attrs=("number", "value", "values", "state", "params", "user_attrs",
                                          "duration", "datetime_start"))
    return frame


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front; with one objective, the single best trial (the earliest of any ties)."""
    try:
        return study.best_trials if len(study.directions) > 1 else [study.best_trial]
    except ValueError:
        return []


def ties(study: optuna.Study, best: optuna.trial.FrozenTrial) -> int:
    """How many other complete trials reach the best trial's value (a saturated metric ties often)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sum(t.number != best.number and t.values == best.values for t in done)


def figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's matplotlib figures; a figure that cannot be drawn yet is skipped with a note."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    out, multi = {}, len(study.directions) > 1
    plots = {"optimization_history": ovm.plot_optimization_history,
             "parallel_coordinate": ovm.plot_parallel_coordinate,
             "param_importances": ovm.plot_param_importances}
    if multi:
        plots = {"pareto_front": ovm.plot_pareto_front, **{k: v for k, v in plots.items() if k != "optimization_history"}}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                kwargs = {"target": lambda t: t.values[0], "target_name": "metric"} if multi and name != "pareto_front" else {}
                axes = plot(study, **kwargs)
                out[name] = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            except Exception as err:  # too few finished trials, a single distinct value, ...
                out[name] = f"not drawn: {err}"
    return out


def load(storage: str, name: str) -> optuna.Study:
    """An existing study; ConfigError (one line) if there is none or the storage is unusable."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage, create=False))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {shown(storage)}") from None


def finite(value) -> bool:
    return value is not None and math.isfinite(value)
