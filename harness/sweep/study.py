"""Optuna sweeps: opening the study, pruners, its set-up and the worker loop.

Work distribution uses Optuna's own trial queue: whoever opens a sweep brings the study to
N trials by enqueueing WAITING trials, or cancelling queued ones beyond N (under a lock), and
every worker, in this process, in `--workers` processes or on other machines, takes only
queued trials. Optuna pops a queued trial atomically (a WAITING -> RUNNING state change that
only one caller wins), so exactly N trials run however many workers race. A trial lost with
its process (SIGKILL, a crash of the machine) becomes FAIL and `RetryHeartbeatStaleTrialCallback`
queues it again with its parameters: with RDB storage once its heartbeat is stale, with a
journal once no live process runs a trial of it (harness.sweep.journal). Samplers and the queue
hook live in harness/sweep/sampling.py, the objective in harness/sweep/objective.py.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext

import optuna
from optuna.trial import TrialState

from harness.config import flatten
from harness.device import see_only
from harness.sweep import space as spaces
from harness.sweep.sampling import QueueEmpty, QueueStudy, check_queue_hook, make_sampler
from harness.sweep.journal import nobody_running, running_a_trial
from harness.sweep.objective import TRIAL_STATE, Interrupted, Objective, requeue_interrupted, suggest
from harness.sweep.settings import Settings
from harness.sweep.storage import close_storage, is_rdb, lock_for, open_storage, record_or_check_study
from harness.tracking import Outcome, open_tracker, set_run_state

__all__ = ["TRIAL_STATE", "Interrupted", "counts", "fail_lost", "open_study", "prepare", "run_worker", "suggest",
           "top_up", "worker_process"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
RetryHeartbeatStaleTrialCallback = optuna.storages.RetryHeartbeatStaleTrialCallback
LOST = "worker lost (its process died)"
POLL_S = 2.0  # how often an idle worker looks again for lost trials while others still run

def stale_trial_callback(settings: Settings, reason: str = "worker lost (stale heartbeat)"):
    """Mark the lost trial's MLflow run FAILED and queue the trial again with its parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)

    def callback(study, trial):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and settings.tracking_uri:
            set_run_state(settings.tracking_uri, run_id, Outcome.CRASHED,
                          {"trial_state": TrialState.FAIL.name, "failure_reason": reason})
        retry(study, trial)
    return callback


def make_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    if settings.pruner == "none" or len(settings.directions) > 1:  # Optuna cannot prune multi-objective
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)


def study_storage(settings: Settings, tables_exist: bool = False):
    """The sweep's storage, with heartbeats and the retry callback on RDB; StorageError (one
    line) before anything is written if it cannot be used. tables_exist: a set-up has opened it."""
    rdb = is_rdb(settings.storage)
    return open_storage(settings.storage, settings.heartbeat if rdb else None,
                        stale_trial_callback(settings) if rdb else None, tables_exist=tables_exist)


def open_study(settings: Settings, storage=None) -> QueueStudy:
    """Create or load the study on `storage` (default: study_storage(settings)). Draws depend on
    the study seed and trial numbers only (harness.sweep.sampling), not on which worker asks."""
    check_queue_hook()
    storage = study_storage(settings) if storage is None else storage
    study = optuna.create_study(storage=storage, study_name=settings.study, directions=settings.directions,
                                load_if_exists=True)
    seed = settings.seed if settings.seed is not None else study.user_attrs.get("sampler_seed", 0)
    return QueueStudy(study_name=settings.study, storage=storage, sampler=make_sampler(settings.sampler, seed),
                      pruner=make_pruner(settings))


def prepare(settings: Settings, fail_running: bool) -> dict:
    """Under the sweep's set-up lock: open the storage (StorageError, one line, if it cannot be
    used; the MLflow store is checked before it, and neither is written to before both pass),
    check or record the study's identity and seed, find or create the MLflow parent run, fail
    and queue again the trials lost with their process (`fail_lost`), then bring the study to
    `settings.trials` trials (`top_up`). Interrupted anywhere, it leaves a study that the next
    set-up completes. Returns {"queued": n, "cancelled": n, "orphans_failed": n, "grid_points":
    n or None (not a grid search)}."""
    tracker = open_tracker(settings.tracking_uri, settings.experiment) if settings.tracking_uri else None
    storage = None
    try:
        with lock_for(settings.storage):  # first: a sweep waiting here holds no storage connection
            storage = study_storage(settings)
            study = open_study(settings, storage=storage)
            settings.parent_run_id = record_or_check_study(study, settings, tracker)
            orphans = fail_lost(study, settings, force=fail_running)
            grid = spaces.grid(settings.space, flatten("", settings.base)) if settings.sampler == "grid" else None
            queued, cancelled = top_up(study, storage, settings.trials, grid)
    finally:
        if storage is not None:
            close_storage(storage)  # the workers open their own
    return {"queued": queued, "cancelled": cancelled, "orphans_failed": orphans,
            "grid_points": None if grid is None else len(grid)}


def counts(study: optuna.Study) -> dict[str, int]:
    out = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] += 1
    return out


def top_up(study: optuna.Study, storage, total: int, grid: list[dict] | None = None) -> tuple[int, int]:
    """Bring finished + running + queued trials to `total`: queue the missing ones, or cancel
    (FAIL, with the reason recorded) queued ones beyond it, which an earlier set-up for more
    trials left; returns (queued, cancelled). For grid search each queued trial is one grid
    point not tried yet (so the grid can run out). The caller holds the set-up lock, so
    concurrent set-ups never overfill the study."""
    c = counts(study)
    occupied = c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] + c["WAITING"]
    if occupied > total and c["WAITING"]:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        # fresh trials first, newest first: a queued retry keeps the parameters of a lost trial
        waiting.sort(key=lambda t: (retry_of(t) is None, t.number), reverse=True)
        surplus = waiting[:occupied - total]
        for trial in surplus:
            storage.set_trial_user_attr(trial._trial_id, "reason", f"cancelled: beyond --trials {total}")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return 0, len(surplus)
    missing = max(0, total - occupied)
    if grid is None:
        for _ in range(missing):
            study.enqueue_trial({}, skip_if_exists=False)
        return missing, 0
    taken = [t.system_attrs.get("fixed_params", t.params) for t in study.get_trials(deepcopy=False)
             if t.state != TrialState.FAIL]
    fresh = [point for point in grid if point not in taken][:missing]
    for point in fresh:
        study.enqueue_trial(point, skip_if_exists=False)
    return len(fresh), 0


def retry_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the failed trial that `trial` retries (Optuna's declaration), else None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def fail_lost(study: optuna.Study, settings: Settings, force: bool = False) -> int:
    """Fail and queue again (their MLflow runs marked FAILED) the trials left RUNNING by a
    process that died. A journal knows them (`harness.sweep.journal.nobody_running`): with no
    process running a trial of the journal, every RUNNING trial is lost. RDB storage finds them
    by their stale heartbeats instead (in the workers); force=True (--fail-running) fails every
    RUNNING trial of the study now, on any storage. Returns how many were failed."""
    if force:
        return fail_orphans(study, stale_trial_callback(settings, "sweep crashed (resumed with --fail-running)"))
    if is_rdb(settings.storage):
        return 0
    with nobody_running(settings.storage) as idle:
        return fail_orphans(study, stale_trial_callback(settings, LOST)) if idle else 0


def fail_orphans(study: optuna.Study, on_fail=None) -> int:
    """Mark RUNNING trials FAIL; `on_fail(study, trial)` then runs for each, as a heartbeat's
    stale-trial callback would."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
        if on_fail is not None:
            on_fail(study, trial)
    return len(orphans)


def run_worker(settings: Settings, progress: bool = False, threads: int = 0) -> int:
    """Take queued trials until none is left and no trial runs anywhere that may still need a
    retry; returns how many this worker ran. Call it after `prepare` (which opens the storage
    first, creating its tables). On a journal each trial is taken and run holding the journal's
    trials lock shared (harness.sweep.journal), so that a worker left idle can tell lost trials
    from running ones, fail them and run them again. Ctrl-C/SIGTERM: the trial in flight is
    failed and queued again, then Interrupted is raised.

    Connections (PostgreSQL): Optuna's one, kept, and MLflow's per call (harness.tracking). The
    MLflow store is opened here first, so that the lock it is opened under (one connection for a
    moment, once per process) is never held beside Optuna's."""
    if threads:  # K workers on one machine share its cores instead of oversubscribing them
        import torch

        torch.set_num_threads(threads)
    if settings.tracking_uri:  # checked and opened once: each trial then logs through the open store
        open_tracker(settings.tracking_uri, settings.experiment).prepare()
    storage = study_storage(settings, tables_exist=True)
    journal = None if is_rdb(settings.storage) else settings.storage
    try:
        study = open_study(settings, storage)
        ran, deadline = 0, None if settings.timeout is None else time.time() + settings.timeout
        objective = Objective(settings, progress)
        while deadline is None or time.time() < deadline:
            try:
                left = None if deadline is None else max(1.0, deadline - time.time())
                with running_a_trial(journal) if journal else nullcontext():
                    study.optimize(objective, n_trials=1, timeout=left, catch=())
                ran += 1
            except QueueEmpty:
                if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    break
                if journal is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is queued again
                elif fail_lost(study, settings):
                    continue  # its retries are queued now
                time.sleep(min(POLL_S, settings.heartbeat))
            except KeyboardInterrupt:
                with signal_ignored():  # a second Ctrl-C must not stop the retry half-queued
                    requeued = requeue_interrupted(study, objective.current)
                raise Interrupted(requeued) from None
            finally:
                objective.current = None
        return ran
    finally:
        close_storage(storage)


@contextmanager
def signal_ignored():
    """SIGINT ignored while the body runs (in the main thread, where signals are handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_process(settings: Settings, threads: int, gpu: str | None = None) -> None:
    """One of `--workers K` processes: run_worker, ending with exit code 130 and no traceback
    on Ctrl-C (its trial queued again). `gpu`: its CUDA_VISIBLE_DEVICES (sweep --devices), set
    before CUDA starts here, so its trials' "auto"/"cuda" is that GPU (the cuda_visible_devices tag)."""
    see_only(gpu)
    try:
        run_worker(settings, progress=False, threads=threads)
    except KeyboardInterrupt:
        sys.exit(130)
