"""The worker side of harness/reproduce/pool.py: a spawned process that runs the calls its
pool sends, one at a time, and reports on its connection (`notify`: a run started, a status
line, a line for the command's output; then the call's result or exception).

It ignores SIGINT except while train() runs (which turns it into a checkpoint and the outcome
`killed`, in the training loop or its final testing), and it watches its parent: when the
command is gone it interrupts its own run the same way and exits within GRACE_SECONDS. It
exits with os._exit, skipping the interpreter's teardown (seconds with torch and MLflow
loaded), once its calls have returned.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import Any

GRACE_SECONDS = 7.0  # a stopped run's time to save its checkpoint and end killed
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_channel: dict = {}  # the worker's connection to the pool, and the lock its threads share


def notify(kind: str, data: Any) -> bool:
    """Send an event of the running call to the pool; False outside a worker, or when the pool
    is gone (nothing sent: the run goes on, and the parent watch stops it)."""
    if not _channel:
        return False
    with _channel["lock"]:
        try:
            _channel["conn"].send(("event", kind, data))
        except (OSError, ValueError):
            return False
    return True


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGINT)  # the command is gone: its run saves a checkpoint and ends killed
    time.sleep(GRACE_SECONDS)
    os._exit(1)


def main(conn, threads: int, plugins: tuple[str, ...], parent: int, gpu: str | None = None) -> None:
    code = 0
    from harness.device import see_only

    see_only(gpu)  # before CUDA starts in this process: its "cuda" is that one GPU
    try:
        _serve(conn, threads, plugins, parent)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:  # every run has ended (its tracker flushed): skip the interpreter's slow teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(conn, threads: int, plugins: tuple[str, ...], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # train() catches it while training; else the pool decides
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's default process lock, a semaphore os._exit would leak
    if threads:
        import torch

        torch.set_num_threads(threads)
    from harness.registry import import_plugins

    import_plugins(list(plugins))  # the command's --plugin modules: their claims, cells and tasks
    _channel.update(conn=conn, lock=threading.Lock())
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, call = task
        text = ""
        try:
            reply = ("done", index, call.fn(*call.args))
        except BaseException as err:  # sent to the command, which raises it
            text = traceback.format_exc()
            err.add_note(f"in the reproduce worker:\n{text}")
            reply = ("error", index, err)
        with _channel["lock"]:
            try:
                try:
                    conn.send(reply)
                except (pickle.PicklingError, TypeError, AttributeError):  # an exception pickle cannot carry
                    conn.send(("error", index, RuntimeError(text or traceback.format_exc())))
            except (OSError, ValueError):
                return
