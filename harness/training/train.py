"""The one training function behind `run`, `sweep`, `reproduce` and `bench --overhead`: a run
from its resolved spec to its recorded outcome, driving a `Trainer` (trainer.py).
"""
from __future__ import annotations

import dataclasses
import signal
import time
from typing import TYPE_CHECKING, Callable

from harness.training import checkpoint, progress as live
from harness.training.model import trainable_parameters
from harness.training.outcomes import (ENDED, STOP_TAGS, Diverged, Interrupted, RunResult, StopRun,
                                       interruptible)
from harness.training.trainer import Trainer
from harness.tracking import Outcome, Tracker

if TYPE_CHECKING:
    from harness.training.spec import RunSpec


def train(spec: "RunSpec", tracker: Tracker | None = None, *, report=None, resume: dict | None = None,
          progress: live.Progress = True, parent_run_id: str | None = None, tags: dict | None = None,
          on_start: Callable[[str | None], None] | None = None) -> RunResult:
    """Train `spec` to the end (or until stopped); the outcome is returned and recorded by
    `tracker` (tag `outcome`; `failure_reason`/`stop_reason` hold the human text). The task's
    data is prepared before the run is created: a data error leaves no run behind."""
    from harness.training import artifacts
    from harness.training import threads
    from harness.training.checkpoint import checkpoint_root
    from harness.outdirs import make_dirs, remove_empty
    from harness.tracking import local_dir

    tracker = tracker or Tracker()
    started = time.perf_counter()
    if tracker.uri:  # the resolved store goes into the logged config and the checkpoint
        spec = dataclasses.replace(spec, track=spec.track.replace(tracking_uri=tracker.uri))
    used_threads = threads.apply(spec.train.threads)
    trainer = Trainer(spec, tracker, report, progress)
    # Any task can draw its validation set; a dataset task loads and verifies its data to do
    # so, and a data error here comes before the run exists (no FAILED run left behind).
    next(iter(trainer.task.eval_batches("val", seed=spec.train.seed)), None)
    if resume is not None:
        trainer.restore(resume)
    run_tags = {**spec.tags(trainer.device), "threads": str(used_threads), **(tags or {})}
    # Checkpoints go beside a local store: the tracker's, else the one the spec names.
    store_dir = tracker.local_dir or local_dir(spec.track.tracking_uri)
    root = checkpoint_root(spec.track.checkpoint_dir, store_dir)
    created = make_dirs((root, "track.checkpoint_dir"))  # before the run
    # A resumed run is claimed before the store hears of it: one still training elsewhere is refused.
    release = checkpoint.hold(artifacts.checkpoint_path(spec, resume["run_id"], store_dir)) if resume else None
    try:  # a store that refuses the run (e.g. an unwritable artifact folder) leaves no new folder either
        run_id = tracker.start(run_name=spec.run_name, tags=run_tags,
                               resume_run_id=resume.get("run_id") if resume else None, parent_run_id=parent_run_id)
    except BaseException:
        if release is not None:
            release()
        remove_empty(created)
        raise
    ckpt_path = artifacts.checkpoint_path(spec, run_id, store_dir)
    release = release or checkpoint.hold(ckpt_path)
    trainer.clock = time.perf_counter()  # run_seconds counts from the run's start, not from building the model

    def resumable(run_id: str | None) -> str:  # the stop reason's advice, where a checkpoint was written
        return "" if spec.track.keep_checkpoint == "never" else f"; resume with --resume {run_id}"

    outcome, reason, metrics, late = Outcome.FINISHED, "", {}, None
    try:  # from here on the run exists: whatever fails ends it as crashed, never left RUNNING
        # signals become a flag from the run's start: Ctrl-C while the run is recorded (on_start,
        # log_start) stops it after its first step, KILLED with a checkpoint, never a crash
        with interruptible() as flag:
            if on_start is not None:
                on_start(run_id)
            if resume is None:
                artifacts.log_start(tracker, spec, trainer.model)
            stopped = trainer.loop(flag, ckpt_path)
            if stopped.interrupted:
                trainer.save(ckpt_path)
                outcome, reason = Outcome.KILLED, f"{stopped.value} at step {trainer.step}{resumable(run_id)}"
            else:
                trainer.ended = stopped  # in the checkpoint: a run stopped while testing resumes to testing
                if stopped in STOP_TAGS:
                    tracker.set_tags({STOP_TAGS[stopped]: str(trainer.step)})
                trainer.save(ckpt_path)
                metrics = trainer.finish(flag)  # a signal stops its test set and context ablation at once
                artifacts.log_end(tracker, spec, trainer)
        if outcome == Outcome.FINISHED:  # read once the caller's handlers are back, so none falls in between
            late = flag["signal"]  # caught while the results were logged: the run is complete
    except Interrupted as err:
        outcome, metrics = Outcome.KILLED, {}
        reason = f"{err.signal} while testing at step {trainer.step}{resumable(run_id)}"
    except Diverged as err:
        outcome, reason = Outcome.DIVERGED, str(err)
    except StopRun as err:
        outcome, reason = err.outcome, err.reason
    except BaseException as err:
        tracker.set_tags({"failure_reason": f"{type(err).__name__}: {err}"[:500]})
        tracker.end(Outcome.CRASHED)
        release()
        raise
    if reason:
        tracker.set_tags({"failure_reason" if outcome == Outcome.DIVERGED else "stop_reason": reason})
    if outcome == Outcome.KILLED:  # how long it ran so far; the resume logs the whole sum at its end
        tracker.log_metrics({"run_seconds": trainer.elapsed()["run"]}, trainer.step)
    tracker.end(outcome)
    release()
    if outcome in ENDED and spec.track.keep_checkpoint == "resumable":
        checkpoint.discard(ckpt_path)  # never resumed (run --resume refuses it): its checkpoint only took disk
    if late:  # not lost: delivered again, now to the caller's own handler (a sweep stops, a worker ignores it)
        signal.raise_signal(signal.Signals[late])
    return RunResult(run_id=run_id, outcome=outcome, metrics=metrics, steps=trainer.step,
                     wall_time_s=time.perf_counter() - started,
                     trainable_params=trainable_parameters(trainer.model), device=str(trainer.device),
                     path=trainer.train_path or trainer.model.path, reason=reason, threads=used_threads)
