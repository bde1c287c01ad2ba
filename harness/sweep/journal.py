"""An Optuna journal file that a killed process cannot leave locked, torn or with trials that
nobody runs any more.

Three lock files beside the journal, each an flock(2) lock, which the kernel drops when the
process holding it dies (SIGKILL included), so none is ever left held:
- `<journal>.write-lock`: taken for each append (Optuna's own lock, a symlink that a killed
  writer leaves behind, stalled the next writer for its 30 s grace period);
- `<journal>.sweep-lock`: a sweep's set-up (harness.sweep.storage.lock_for);
- `<journal>.trials-lock`: held shared by every process while it takes and runs a trial
  (`running_a_trial`). Whoever takes it exclusively (`nobody_running`) knows that no process
  runs a trial of this journal, so every trial still RUNNING there was lost with its process.

A crash in the middle of an append leaves a torn last record (no newline at the end). Before
the journal is read and before each append, under the write lock, the torn bytes are cut and
kept in `<journal>.torn-N` (`cut_torn_tail`); the complete records before them are untouched.
Every process that writes the journal must go through `JournalBackend` (optuna-dashboard and
other Optuna programs lock with Optuna's own symlink instead, so they may read it, not write).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

from optuna.storages.journal import JournalFileBackend


class FlockLock:
    """An exclusive flock on `path`, for Optuna's journal writes: what JournalFileBackend asks of
    its lock object, acquire() and release() (threads of one process take turns through a
    mutex: flock alone does not order them within the process)."""

    def __init__(self, path: str):
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._mutex.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._mutex.release()
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # closing the only descriptor drops the flock
        finally:
            self._mutex.release()

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])


@contextlib.contextmanager
def held(lock: FlockLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def cut_torn_tail(path: str | Path) -> str | None:
    """If the file does not end with a newline, move the bytes after its last newline to a new
    `<path>.torn-N` and cut them off; returns the one-line note printed, else None. The caller
    holds the write lock, so no append is in progress."""
    path = Path(path)
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        keep, block = size, 1 << 16
        while keep > 0:  # the last newline, reading backwards
            start = max(0, keep - block)
            f.seek(start)
            chunk = f.read(keep - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            keep = start
        f.seek(keep)
        torn = f.read()
        backup = next(path.with_name(f"{path.name}.torn-{n}") for n in range(1, 10**6)
                      if not path.with_name(f"{path.name}.torn-{n}").exists())
        backup.write_bytes(torn)
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    note = (f"note: {path}: its last record was torn (a crash while writing it); cut its {len(torn)} bytes, "
            f"kept in {backup}; the records before it are intact")
    print(note, file=sys.stderr)
    return note


class JournalBackend(JournalFileBackend):
    """Optuna's journal file with the flock write lock, repaired before it is read (a torn
    tail is cut) and before each append (a process killed while appending tears it)."""

    def __init__(self, path: str):
        super().__init__(path, lock_obj=FlockLock(f"{path}.write-lock"))
        with held(self._lock):
            cut_torn_tail(path)

    def append_logs(self, logs: list[dict]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        with held(self._lock):
            cut_torn_tail(self._file_path)
            with open(self._file_path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())


def trials_lock_path(journal: str | Path) -> str:
    return f"{journal}.trials-lock"


@contextlib.contextmanager
def running_a_trial(journal: str | Path) -> Iterator[None]:
    """Hold the journal's trials lock shared: this process may own a RUNNING trial."""
    fd = os.open(trials_lock_path(journal), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def nobody_running(journal: str | Path) -> Iterator[bool]:
    """Try the journal's trials lock exclusively without waiting. True (held until the body
    ends, so nobody takes a trial meanwhile): no process runs a trial of this journal, and any
    trial RUNNING there is lost. False: some live process holds it."""
    fd = os.open(trials_lock_path(journal), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
