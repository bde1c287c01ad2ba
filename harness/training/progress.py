"""A run's progress: one code path that picks how it is shown.

`train(..., progress=P)`: P True shows a tqdm bar when stderr is a terminal, else a one-line
status on stderr every `HARNESS_PROGRESS_SECONDS` seconds (default 30), e.g.

    lstm on recall: step 600/1500 (40%) loss=0.412 val_accuracy=0.87 | 41.2 steps/s | ETA 22 s

P a callable receives those status lines instead (reproduce's workers send them to the
command, which prints them). P False shows nothing. `HARNESS_PROGRESS_SECONDS=0` writes a
line at every training-loss log and evaluation. The final evaluations (test set, context
probe) are phases: a status line every interval while one runs, and one when it ends with
its duration (with HARNESS_PROGRESS_SECONDS=0 also when it starts). A run shorter than the
interval shows no line.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable, Union

from harness.config import ConfigError

ENV = "HARNESS_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0
Progress = Union[bool, Callable[[str], None]]


def interval() -> float:
    """Seconds between status lines, from $HARNESS_PROGRESS_SECONDS (default 30); ConfigError
    (one line) for a value that is not a number >= 0."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{ENV}={text!r}: give the seconds between progress lines, a number >= 0")
    return value


def duration(seconds: float) -> str:
    """12 s, 3m05s, 2h07m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def name(spec) -> str:
    """How status lines name a run: "lstm on recall"."""
    return f"{spec.variant} on {spec.task_name}"


def to_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")  # one write: lines of several processes do not interleave
        sys.stderr.flush()
    except (OSError, ValueError):  # nobody reads stderr any more: a status line never stops a run
        pass


def _sink(progress: Progress) -> Callable[[str], None] | None:
    """Where status lines go: the callable, stderr when it is not a terminal, else None."""
    if callable(progress):
        return progress
    return to_stderr if progress and not sys.stderr.isatty() else None


class StatusLines:
    """The tqdm calls train() makes (update, set_postfix_str, close), rendered as status lines."""

    def __init__(self, total: int, initial: int, desc: str, sink: Callable[[str], None], seconds: float):
        self.total, self.n, self.initial, self.desc = total, initial, initial, desc
        self.sink, self.seconds = sink, seconds
        self.fields: dict[str, str] = {}
        self.started = self.last = time.monotonic()
        self.shown, self.lines = initial, 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.seconds > 0 and time.monotonic() - self.last >= self.seconds:
            self.emit()

    def set_postfix_str(self, text: str) -> None:
        for part in text.split():
            key, _, value = part.partition("=")
            self.fields[key] = value
        if self.seconds == 0:
            self.emit()

    def close(self) -> None:
        if self.lines and self.n != self.shown:  # a run long enough to have shown a line shows its end
            self.emit()

    def emit(self) -> None:
        now = time.monotonic()
        rate = (self.n - self.initial) / max(1e-9, now - self.started)
        eta = duration((self.total - self.n) / rate) if rate > 0 else "?"
        share = f" ({100 * self.n // max(1, self.total)}%)"
        fields = "".join(f" {k}={v}" for k, v in self.fields.items())
        self.sink(f"{self.desc}: step {self.n}/{self.total}{share}{fields} | {rate:.3g} steps/s | ETA {eta}")
        self.last, self.shown, self.lines = now, self.n, self.lines + 1


def bar(progress: Progress, *, total: int, initial: int, desc: str):
    """The run's progress display: a tqdm bar (terminal), StatusLines (no terminal, or a
    callable), or a disabled tqdm bar (progress False)."""
    from tqdm import tqdm

    sink = _sink(progress)
    if sink is not None:
        return StatusLines(total, initial, desc, sink, interval())
    return tqdm(total=total, initial=initial, disable=not progress, unit="step", dynamic_ncols=True, desc=desc)


@contextlib.contextmanager
def phase(progress: Progress, desc: str, what: str):
    """Report a long step of a run (`what`: "test set", "context probe"): a status line every
    interval while it runs and one when it ends, with its duration, if it outlasted an interval
    (HARNESS_PROGRESS_SECONDS=0: a line when it starts and when it ends)."""
    sink = _sink(progress) or (to_stderr if progress else None)
    if sink is None:
        yield
        return
    seconds, started, stop, beats = interval(), time.monotonic(), threading.Event(), []

    def heartbeat():
        while not stop.wait(seconds):
            beats.append(1)
            sink(f"{desc}: {what}: running for {duration(time.monotonic() - started)}")

    if seconds == 0:
        sink(f"{desc}: {what} ...")
    thread = threading.Thread(target=heartbeat, name="progress-phase", daemon=True) if seconds > 0 else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        if seconds == 0 or beats:
            sink(f"{desc}: {what} done in {time.monotonic() - started:.1f} s")
