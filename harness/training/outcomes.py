"""How a run ends: the outcome vocabulary shared by the training loop and its callers (run,
sweep, reproduce): why the loop stopped, the result it returns, the exceptions that end it
early, and the signal handling that turns Ctrl-C/SIGTERM into a clean stop."""
from __future__ import annotations

import dataclasses
import enum
import signal
import threading
from contextlib import contextmanager

from harness.tracking import Outcome

# Runs that ended for good (a result, or pruned by a sweep): --resume refuses them, so they keep no checkpoint.
ENDED = (Outcome.FINISHED, Outcome.DIVERGED, Outcome.PRUNED)


class StopRun(Exception):
    """Raised by a `report` callback (e.g. Optuna pruning) to end a run early with this
    outcome (e.g. Outcome.PRUNED) and a human-readable reason."""

    def __init__(self, outcome: Outcome, reason: str):
        super().__init__(reason)
        self.outcome, self.reason = Outcome(outcome), reason


class StopReason(enum.Enum):
    """Why `Trainer.loop` returned. A caught signal ends the run KILLED (checkpoint saved, its
    `stop_reason` tag reads e.g. "SIGINT at step 40; resume with ..."); every other reason
    ends it FINISHED, and an early stop is recorded as the tag `STOP_TAGS[reason]` = its step."""

    DONE = "done"  # the step budget is spent
    EARLY_STOPPED = "early_stopped"  # train.patience evaluations without a better validation metric
    SOLVED = "solved"  # train.stop_when_solved and the task's criterion held on validation
    SIGINT = "SIGINT"
    SIGTERM = "SIGTERM"

    @property
    def interrupted(self) -> bool:
        return self in (StopReason.SIGINT, StopReason.SIGTERM)


STOP_TAGS = {StopReason.EARLY_STOPPED: "early_stopped_at", StopReason.SOLVED: "stopped_when_solved_at"}


class Interrupted(BaseException):
    """SIGINT/SIGTERM while the run tests and logs its results (after the loop, where no step
    checks the flag): raised at once, so Ctrl-C during a long test set or context ablation is
    prompt. A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal = signal_name


class Diverged(Exception):
    """A non-finite loss, gradient norm or validation metric."""


@dataclasses.dataclass
class RunResult:
    run_id: str | None
    outcome: Outcome
    metrics: dict[str, float]
    steps: int
    wall_time_s: float
    trainable_params: int
    device: str
    path: str | None  # the computation path training used (not the probes' explicit path)
    reason: str = ""  # human text: why it stopped, for outcomes other than finished
    threads: int = 0  # torch CPU threads it ran with


@contextmanager
def interruptible():
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only); within
    `at_once(flag)` a signal raises `Interrupted` instead."""
    flag = {"signal": None, "raise": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["signal"] = signal.Signals(signum).name
        if flag["raise"]:
            raise Interrupted(flag["signal"])

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def at_once(flag: dict):
    """Within: SIGINT/SIGTERM raises `Interrupted` at once, for long computations that check no
    flag (the test set, the final context ablation). Only pure computation may run here: no
    tracker call or file write, which an exception at any bytecode could leave half-done. A
    signal caught before the block, or during it but outside the raising window, raises too."""
    if flag["signal"]:
        raise Interrupted(flag["signal"])
    flag["raise"] = True
    try:
        yield
    finally:
        flag["raise"] = False
    if flag["signal"]:
        raise Interrupted(flag["signal"])
