"""Shared helpers for tests: tiny run specs, subprocess CLI calls, free ports."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import tasks
from harness.spec import build_spec

ROOT = Path(__file__).resolve().parent.parent


def synthetic_tasks() -> list[str]:
    """Registered tasks that generate their data (no dataset download needed)."""
    return [n for n in tasks.available() if not tasks.get(n).dataset]


def tiny_spec(variant="lstm", task="recall", *, steps=6, hidden=8, task_options=None, **sections):
    """A run small enough for unit tests: a few steps, small eval sets, no probes unless asked."""
    small = {"val_size": 256, "test_size": 256}
    options = tasks.get(task).Options
    task_values = {k: v for k, v in small.items() if k in {f.name for f in options.__dataclass_fields__.values()}}
    task_values.update(task_options or {})
    values = {
        "model": {"variant": variant, "hidden_size": hidden},
        "task": {"name": task, **task_values},
        "train": {"steps": steps, "batch_size": 16, "eval_every": max(1, steps // 2), "device": "cpu"},
        "track": {"probe_points": 2},
    }
    for section, content in sections.items():
        values.setdefault(section, {}).update(content)
    return build_spec(values)


def run_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
