"""A multi-worker sweep's progress: the study's trial counts, one line on stderr whenever
they change, e.g.

    study lstm-recall-L20: 3 complete, 1 pruned, 0 failed, 2 running, 4 waiting (1m12s)

`watch(storage, study)` polls the study's storage every POLL_SECONDS in a thread of the
command (the workers are other processes) while its block runs, and once more when it ends. Used by `sweep --workers K` (harness/commands/sweep.py).
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable

from harness.training.progress import duration, to_stderr

POLL_SECONDS = 2.0
SHOWN = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def counts_line(study: str, counts: dict[str, int], seconds: float) -> str:
    names = {"FAIL": "failed"}
    parts = ", ".join(f"{counts.get(state, 0)} {names.get(state, state.lower())}" for state in SHOWN)
    return f"study {study}: {parts} ({duration(seconds)})"


@contextlib.contextmanager
def watch(storage: str, study: str, *, every: float = POLL_SECONDS, write: Callable[[str], None] = to_stderr):
    """Report the study's counts as they change while the block runs (see the module docstring)."""
    import optuna

    from harness.sweep.storage import open_storage
    from harness.sweep.study import counts

    loaded = optuna.load_study(study_name=study, storage=open_storage(storage, create=False))
    started, stop, last = time.monotonic(), threading.Event(), {}

    def show(always: bool = False) -> None:
        now = counts(loaded)
        if always or now != last.get("counts"):
            last["counts"] = now
            write(counts_line(study, now, time.monotonic() - started))

    def poll() -> None:
        while not stop.wait(every):
            try:
                show()
            except Exception as err:  # a storage hiccup must not end the sweep; say it and go on
                write(f"study {study}: counts not read ({type(err).__name__}: {err})")

    show(always=True)
    thread = threading.Thread(target=poll, name="sweep-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        show()
