"""The registry of tasks.

    import tasks
    tasks.available()                             # ['adding', 'copy', ...]
    task = tasks.create("recall", length=40, distractors="blank")
    batch = task.train_batch(0, 64, seed=0)       # Batch(x (64, 42, 10), y (64,))

A task is one file holding a frozen options dataclass and one registered `Task` subclass;
adding one is that file plus an import line below. Tasks from other packages join through
the `rnn_harness.tasks` entry point group or a `--plugin module.path` import.
"""
from __future__ import annotations

import dataclasses

from tasks.base import EVAL_CHUNK, Batch, Criterion, Task, TaskOptions
from tasks.registry import REGISTRY, register

# One import line per task file: importing runs its @register.
from tasks import adding, copy, recall, temporal_order, frequency, imdb, imdb_lm  # noqa: E402,F401

__all__ = ["Batch", "Criterion", "EVAL_CHUNK", "Task", "TaskOptions", "REGISTRY", "register",
           "available", "get", "create"]


def available() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> type[Task]:
    return REGISTRY.get(name)


def create(name: str, **options) -> Task:
    """The named task with its options (unknown options raise, listing the valid ones)."""
    cls = REGISTRY.get(name)
    known = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"task {name!r} has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}")
    return cls(cls.Options(**options))
