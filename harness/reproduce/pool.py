"""The worker processes that run a claim's runs: the same for `--jobs 1` and `--jobs K`.

`Pool(jobs)` starts up to `jobs` spawned worker processes as calls need them; `run(calls)`
gives each idle worker the next call and collects what the calls return. While the pool is
open, SIGINT and SIGTERM to the command stop it:

- no call starts after a signal (nor after a call whose result `stop_on` flags, e.g. a run
  that ended killed);
- each worker with a call in flight gets SIGINT, every RESEND_SECONDS until the call returns;
  train() turns it into a checkpoint and the outcome `killed`, in its training loop or in
  its test set and final context ablation (stopped at once: the resume only tests). Outside
  train() a worker ignores SIGINT: a run being set up is stopped by the next SIGINT once it
  runs. Ctrl-C on a terminal reaches the workers too;
- a worker still busy GRACE_SECONDS after the signal is terminated (SIGTERM, then SIGKILL),
  and its run, if it had started one and it reached no outcome, is tagged killed: the next
  reproduce resumes it from its last checkpoint, or runs it again when it has none;
- a second signal terminates the workers at once.
A worker whose command is gone (SIGKILLed) interrupts its own run the same way and exits
(harness/reproduce/worker.py).
"""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Callable

from harness.reproduce.worker import GRACE_SECONDS, SIGNALS, main as worker_main

KILL_SECONDS = 1.5  # after SIGTERM, before SIGKILL
RESEND_SECONDS = 1.0  # SIGINT to busy workers this often until they return


@dataclasses.dataclass(frozen=True)
class Call:
    fn: Callable  # a module-level function (it is pickled to the worker)
    args: tuple


@dataclasses.dataclass(frozen=True)
class Lost:
    """A call whose worker ended before returning; `run` is the run it had started, if any."""

    run: dict | None  # {"run_id", "uri", "experiment", "fingerprint"}
    outcome: str  # "killed" (the pool stopped it) or "crashed" (the worker died by itself)
    reason: str


class Pool:
    def __init__(self, jobs: int, *, threads: int = 0, plugins: tuple[str, ...] = (), gpus: tuple[str, ...] = ()):
        """`gpus`: the CUDA device index of each worker slot (harness.device.assign_devices), set as
        the worker's CUDA_VISIBLE_DEVICES so that its runs' "cuda"/"auto" is that GPU; () = no change."""
        self.jobs, self.threads, self.plugins = max(1, jobs), threads, tuple(plugins)
        self.gpus, self._started = tuple(gpus), 0
        self.workers: list[_Worker] = []
        self.signal: str | None = None  # the name of the signal that stopped the pool
        self._handlers: dict = {}
        self._context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads

    @property
    def stopped(self) -> bool:
        return self.signal is not None

    def __enter__(self) -> Pool:
        if threading.current_thread() is threading.main_thread():
            self._handlers = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        try:
            for worker in self.workers:
                worker.close()
            _join(self.workers, time.monotonic() + GRACE_SECONDS)
        finally:
            for s, handler in self._handlers.items():
                signal.signal(s, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.signal is not None:  # a second signal: no more waiting
            for worker in self.workers:
                worker.terminate()
        self.signal = signal.Signals(signum).name

    def run(self, calls: list[Call], on_event: Callable[[int, str, Any], None] = lambda i, kind, data: None,
            stop_on: Callable[[Any], bool] = lambda result: False) -> list[tuple[int, Any]]:
        """Run `calls` on the workers; (index, result) in the order they end, a `Lost` for a call
        whose worker ended first; calls never started are left out. `on_event(index, kind, data)`
        sees "start" (data None), "run" (the run's ids), "line" (a status line), "report" (a
        line for the command's output) and "end" (the result). A call's exception is raised
        here once the other calls in flight have stopped."""
        pending = collections.deque(enumerate(calls))
        busy: dict[_Worker, int] = {}
        results, error, halt, deadline, forced, nudged = [], None, False, None, False, 0.0
        while pending or busy:
            while pending and not (halt or self.stopped) and len(busy) < self.jobs:
                worker = next((w for w in self.workers if w not in busy and w.alive), None) or self._start()
                index, call = pending.popleft()
                worker.give(index, call)
                busy[worker] = index
                on_event(index, "start", None)
            if not busy:
                break
            if (self.stopped or error is not None) and deadline is None:
                deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and not forced and time.monotonic() - nudged >= RESEND_SECONDS:
                nudged = time.monotonic()  # again and again: a worker setting up a run ignored the last one
                for worker in busy:
                    worker.interrupt()
            for worker in _ready(list(busy), 0.2):
                message = worker.receive()
                index = busy[worker]
                if message is None:  # the worker died
                    outcome = "killed" if deadline is not None else "crashed"
                    lost = Lost(worker.run, outcome, f"worker process ended (exit code {worker.exitcode}) "
                                f"{'after ' + (self.signal or 'an error') if outcome == 'killed' else 'by itself'}")
                    _mark(lost)
                    results.append((index, lost))
                    on_event(index, "end", lost)
                    halt = True
                    del busy[worker]
                elif message[0] in ("done", "error"):
                    del busy[worker]
                    worker.run = None
                    if message[0] == "error":
                        error, halt = error or message[2], True
                        continue
                    results.append((index, message[2]))
                    on_event(index, "end", message[2])
                    halt = halt or stop_on(message[2])
                else:  # ("event", kind, data)
                    if message[1] == "run":
                        worker.run = message[2]
                    on_event(index, message[1], message[2])
            if deadline is not None and not forced and time.monotonic() > deadline:
                forced = True  # the terminated workers' closed pipes end their calls as Lost
                for worker in busy:
                    worker.terminate()
                _join(list(busy), time.monotonic() + KILL_SECONDS)
        if error is not None:
            raise error
        return results

    def _start(self) -> _Worker:
        blocked = threading.current_thread() is threading.main_thread()
        if blocked:  # a signal during the worker's start-up waits until it ignores SIGINT
            old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            gpu = self.gpus[self._started % len(self.gpus)] if self.gpus else None
            worker = _Worker(self._context, self.threads, self.plugins, gpu)
            self._started += 1
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.workers = [w for w in self.workers if w.alive] + [worker]
        return worker


class _Worker:
    def __init__(self, context, threads: int, plugins: tuple[str, ...], gpu: str | None = None):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, threads, plugins, os.getpid(), gpu),
                                       name="reproduce-worker", daemon=True)
        self.process.start()
        child.close()
        self.run: dict | None = None

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self):
        return self.process.exitcode

    def give(self, index: int, call: Call) -> None:
        self.conn.send((index, call))

    def receive(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(KILL_SECONDS)
            return None

    def interrupt(self) -> None:
        if self.alive:
            os.kill(self.process.pid, signal.SIGINT)

    def terminate(self) -> None:
        if self.alive:
            self.process.terminate()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass


def _ready(workers: list[_Worker], timeout: float) -> list[_Worker]:
    by_conn = {w.conn: w for w in workers}
    return [by_conn[c] for c in wait(list(by_conn), timeout)]


def _join(workers: list[_Worker], deadline: float) -> None:
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.alive:
            worker.process.kill()
            worker.process.join(KILL_SECONDS)


def _mark(lost: Lost) -> None:
    """Tag the run of a lost call with its outcome, unless it reached one before its worker ended."""
    if lost.run is None:
        return
    from harness.tracking import open_runs, set_run_state

    run = lost.run
    records = open_runs(run["uri"]).records(run["experiment"], {"fingerprint": run["fingerprint"]})
    record = next((r for r in records if r.run_id == run["run_id"]), None)
    if record is not None and record.outcome.value == "running":
        key = "stop_reason" if lost.outcome == "killed" else "failure_reason"
        set_run_state(run["uri"], run["run_id"], lost.outcome, {key: lost.reason})
