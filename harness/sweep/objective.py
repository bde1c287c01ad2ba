"""A sweep trial: its parameters drawn from the search space, its run trained and tracked,
and how its outcome becomes the trial's state; what Ctrl-C leaves (`requeue_interrupted`)."""
from __future__ import annotations

import logging
import os
import platform
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.config import flatten
from harness.sweep import space as spaces
from harness.sweep.settings import Settings
from harness.tracking import MLflowTracker, Outcome, open_tracker, set_run_state
from harness.training.spec import apply_sets, build_spec
from harness.training.outcomes import StopRun
from harness.training.train import train

# The one translation from how a run ended to the state its trial ends in. A diverged run is
# a result, but not one to rank: its trial is pruned (its reason recorded), so the sweep goes on.
# A killed run (Ctrl-C, SIGTERM) fails its trial and stops the worker; a crash raises in train().
TRIAL_STATE = {Outcome.FINISHED: TrialState.COMPLETE, Outcome.DIVERGED: TrialState.PRUNED,
               Outcome.PRUNED: TrialState.PRUNED, Outcome.KILLED: TrialState.FAIL,
               Outcome.CRASHED: TrialState.FAIL, Outcome.RUNNING: TrialState.RUNNING}


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
        self.current: int | None = None  # the number of the trial being run

    def __call__(self, trial: optuna.Trial):
        s = self.settings
        self.current = trial.number
        params = suggest(trial, s.space, self.fixed)
        values = apply_sets(s.base, [f"{k}={v}" for k, v in params.items()])
        values = apply_sets(values, [f"track.run_name={s.study}-trial{trial.number}"])
        spec = build_spec(values).validate()
        primary = spec.build_task().primary_metric
        # the store was checked by run_worker; tracking off still gives a tracker: it says where
        # the store (and so checkpoints) would be
        tracker = (MLflowTracker(s.tracking_uri, spec.experiment) if s.tracking_uri else
                   open_tracker(s.base["track"]["tracking_uri"], spec.experiment, enabled=False))

        def report(step, metrics):
            if len(s.directions) == 1:
                trial.report(metrics[primary], step)
                if trial.should_prune():
                    raise StopRun(Outcome.PRUNED, f"pruned by the {s.pruner} pruner at step {step}")

        def started(run_id):  # recorded up front: a worker may die before the trial ends
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("worker", f"{platform.node()}:{os.getpid()}")

        result = train(spec, tracker, report=report, progress=self.progress, parent_run_id=s.parent_run_id,
                       tags={"optuna.study": s.study, "optuna.trial": str(trial.number)}, on_start=started)
        trial.set_user_attr("outcome", result.outcome.value)
        trial.set_user_attr("wall_time_s", round(result.wall_time_s, 3))
        trial.set_user_attr("trainable_params", result.trainable_params)
        for key, value in result.metrics.items():
            if key.startswith("test_"):
                trial.set_user_attr(key, value)  # recorded, never optimised
        state = TRIAL_STATE[result.outcome]
        if result.reason:
            trial.set_user_attr("reason", result.reason)
        if s.tracking_uri:
            set_run_state(s.tracking_uri, result.run_id, None, {"trial_state": state.name})
        if result.outcome == Outcome.KILLED:
            raise KeyboardInterrupt(result.reason)  # Ctrl-C/SIGTERM: the trial FAILs, the worker stops
        if state == TrialState.PRUNED:  # pruned, or diverged (the reason is recorded): the sweep goes on
            raise optuna.TrialPruned(result.reason)
        values = {"metric": result.metrics[s.metric], "time": result.wall_time_s,
                  "params": float(result.trainable_params)}
        return [values[o] for o in s.objectives] if len(s.objectives) > 1 else values["metric"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a worker; `requeued` names the trial it was running, now
    FAIL (its MLflow run KILLED) and queued again with its parameters, or is None."""

    def __init__(self, requeued: int | None):
        super().__init__(requeued)
        self.requeued = requeued


class QuietInterrupt(logging.Filter):
    """Drops Optuna's report of a trial that Ctrl-C/SIGTERM failed (a warning with a traceback,
    then "Trial N failed with value None."): the sweep says so in one line instead."""

    def __init__(self):
        super().__init__()
        self.trial: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info
        if exc and exc[0] is not None and issubclass(exc[0], KeyboardInterrupt):
            self.trial = record.getMessage().split()[1]  # "Trial N failed with parameters: ..."
            return False
        if self.trial is not None and record.getMessage().startswith(f"Trial {self.trial} failed with value"):
            self.trial = None
            return False
        return True


logging.getLogger("optuna.study._optimize").addFilter(QuietInterrupt())


def requeue_interrupted(study: optuna.Study, number: int | None) -> int | None:
    """Fail (if Optuna did not get to) and queue again trial `number`, stopped by Ctrl-C/SIGTERM."""
    if number is None:
        return None
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state == TrialState.RUNNING:
        study.tell(number, state=TrialState.FAIL)
    elif trial.state != TrialState.FAIL:
        return None  # it ended before the signal: nothing to retry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)
    return number
