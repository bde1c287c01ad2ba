"""Overall progress of a reproduce: one line per change (a run started, resumed or ended) with
the counts of the step it belongs to and an ETA from the durations of the runs that ended here
(`execute` runs a step's calls on the pool and keeps its Board); workers' status lines go to
stderr.

    phased: 9 runs planned, 0 reused, 0 to resume, 9 to run with 2 jobs
    [start] standard: variant=lstm seed=0 | 0/9 done, 2 running, 7 waiting, ETA ?
    [1/9] standard: variant=gru seed=0: finished test_accuracy 0.5547 (4.1 s) | 1/9 done (1 finished), ...
"""
from __future__ import annotations

from typing import Callable

from harness.tracking import Outcome
from harness.training.progress import duration, to_stderr

COUNTED = ("reused", "finished", "diverged", "killed", "crashed", "pruned", "elsewhere")


class Board:
    """Counts of one step of a reproduce (a grid's runs, the tuning studies, a ladder's chains)."""

    def __init__(self, title: str, planned: int, reused: int, jobs: int, report: Callable[[str], None]):
        self.title, self.planned, self.jobs, self.report = title, planned, max(1, jobs), report
        self.counts = dict.fromkeys(COUNTED, 0)
        self.counts["reused"] = reused
        self.running, self.seconds = 0, []
        self.waiting = planned - reused

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> str:
        left = self.running + self.waiting
        if not left:
            return "0 s"
        if not self.seconds:
            return "?"
        return duration(sum(self.seconds) / len(self.seconds) * left / min(self.jobs, left))

    def summary(self) -> str:
        shown = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        return (f"{self.done}/{self.planned} done{f' ({shown})' if shown else ''}, {self.running} running, "
                f"{self.waiting} waiting, ETA {self.eta()}")

    def started(self, label: str) -> None:
        self.running, self.waiting = self.running + 1, self.waiting - 1
        self.report(f"[start] {label} | {self.summary()}")

    def resumed(self, label: str, step: int) -> None:
        self.report(f"[resume] {label}: from its checkpoint at step {step}")

    def again(self, count: int, seconds: float) -> None:
        """`count` calls held by other processes sharing the plan are asked for again."""
        self.counts["elsewhere"] -= count
        self.waiting += count
        self.report(f"{self.title}: {count} held by other processes (shared plan); asking again in "
                    f"{seconds:.0f} s | {self.summary()}")

    def ended(self, label: str, outcome: Outcome | str | None, seconds: float, detail: str = "") -> None:
        """A run (or chain) ended with `outcome` (None: nothing was run, its result reused;
        "elsewhere": another process sharing the plan holds it)."""
        self.running -= 1
        key = "reused" if outcome is None else outcome if outcome == "elsewhere" else Outcome(outcome).value
        self.counts[key if key in self.counts else "crashed"] += 1
        if key in ("finished", "diverged", "pruned") and seconds > 0:
            self.seconds.append(seconds)
        self.report(f"[{self.done}/{self.planned}] {label}: {key}{detail} ({seconds:.1f} s) | {self.summary()}")


def interrupted(outcomes: list, pool) -> bool:
    """Whether a reproduce must stop here: its pool was stopped, or a run ended killed or crashed."""
    return pool.stopped or any(o.outcome in (Outcome.KILLED, Outcome.CRASHED) for o in outcomes)


def execute(pool, calls: list, labels: list[str], board: Board, *, ended: Callable, stop_on, again=None) -> list:
    """Run `calls` on `pool`, telling `board` of every start and end; `ended(index, result)`
    gives (outcome, seconds, detail) for the board's line. `again(result)`: the call's unit is
    held by another process sharing the plan (harness/reproduce/shared.py): it is run again
    after POLL_SECONDS, until no result is held elsewhere or the pool stops."""
    import time

    from harness.reproduce.shared import POLL_SECONDS

    results = _execute(pool, calls, labels, board, ended=ended, stop_on=stop_on)
    while again is not None and not pool.stopped:
        index = {i: r for i, r in results}
        todo = [i for i in range(len(calls)) if i in index and again(index[i])]
        if not todo:
            break
        board.again(len(todo), POLL_SECONDS)
        time.sleep(POLL_SECONDS)
        sub = _execute(pool, [calls[i] for i in todo], [labels[i] for i in todo], board,
                       ended=lambda j, result: ended(todo[j], result), stop_on=stop_on)
        results = [(i, r) for i, r in results if i not in todo] + [(todo[j], r) for j, r in sub]
    return results


def _execute(pool, calls: list, labels: list[str], board: Board, *, ended: Callable, stop_on) -> list:
    def event(index, kind, data):
        if kind == "start":
            board.started(labels[index])
        elif kind == "run" and data.get("step"):
            board.resumed(labels[index], data["step"])
        elif kind == "line":
            to_stderr(data)
        elif kind == "report":
            board.report(data)
        elif kind == "end":
            board.ended(labels[index], *ended(index, data))

    return pool.run(calls, event, stop_on)
