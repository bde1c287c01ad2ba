"""Checkpoints: everything needed to continue a run to the same final metrics.

Saved with torch.save, written to a temporary file and renamed (never half-written), and
loaded with `weights_only=True` (plain tensors and containers only: no pickled code).
Batches are random access by step (tasks/base.py), so the data stream needs no state; the
torch RNG states cover dropout and anything else random.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable

import torch

from harness.errors import UsageError

FILE = "last.pt"
KEYS = ("config", "step", "model", "optimizer", "scheduler", "rng")  # what every checkpoint holds


class DamagedCheckpoint(UsageError):
    """A checkpoint file that cannot be read back (truncated, overwritten, not a checkpoint)."""


class RunInUse(UsageError):
    """The run is being trained by another live process (its lock is held)."""


LOCK = "training.lock"  # in a run's checkpoint folder while a process trains the run


def hold(path: Path) -> Callable[[], None]:
    """Claim the run whose checkpoint is `path` for this process while it trains: an exclusive,
    non-blocking flock on a file in the run's folder, which the kernel drops when the process
    dies (so a run left RUNNING by a lost process can be resumed, one still training cannot:
    two processes would write one checkpoint and log every step twice). Returns the release,
    which deletes the lock file and the folder if that leaves it empty. RunInUse, naming the
    holder, when another process has it. Without POSIX locks (Windows) nothing is claimed."""
    try:
        import fcntl
    except ImportError:
        return lambda: None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "a process"
        os.close(fd)
        raise RunInUse(f"run {path.parent.name} is being trained now by {holder}; wait for it to end, or stop "
                       "it (Ctrl-C, or kill -INT: it saves a checkpoint), then --resume") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())

    def release() -> None:
        lock.unlink(missing_ok=True)
        os.close(fd)
        try:
            path.parent.rmdir()
        except OSError:  # a checkpoint is kept in it
            pass

    return release


def checkpoint_root(checkpoint_dir: str, store_dir: Path | None) -> Path:
    """An explicit directory, else beside a local tracking store (`store_dir`: the directory
    its tracker says it keeps files in), else the user cache."""
    if checkpoint_dir:
        return Path(checkpoint_dir).expanduser()
    if store_dir is not None:
        return Path(store_dir) / "checkpoints"
    import platformdirs

    return Path(platformdirs.user_cache_dir("rnn-harness")) / "checkpoints"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def discard(path: Path) -> None:
    """Delete a run's checkpoint and its folder (one per run) if nothing else is in it."""
    for leftover in (path, path.with_suffix(".tmp")):
        leftover.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # not empty (a file of someone else's) or already gone
        pass


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`; DamagedCheckpoint (one line naming the file) when it cannot be
    read or lacks what a checkpoint holds."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises RuntimeError, EOFError, UnpicklingError, ...)
        cause = " ".join(str(err).split()).split(". ")[0][:160] or type(err).__name__
        raise DamagedCheckpoint(f"checkpoint {path} is damaged ({cause}); the run cannot continue from it: "
                                "start a new run without --resume") from None
    missing = [key for key in KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise DamagedCheckpoint(f"checkpoint {path} is not a complete checkpoint (no {missing[0]!r}); the run "
                                "cannot continue from it: start a new run without --resume")
    return payload
