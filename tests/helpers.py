"""Shared helpers for tests: tiny run specs, subprocess CLI calls, free ports."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import tasks
from harness.training.spec import build_spec

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


def imdb_dir() -> str | None:
    """A folder holding the IMDB archive ($HARNESS_DATA_DIR, else the offline copy beside the
    checkout), or None when this machine has none."""
    for candidate in (os.environ.get("HARNESS_DATA_DIR"), ROOT.parent / "shared" / "data" / "imdb",
                      "/work/shared/data/imdb"):
        if candidate and any(Path(candidate).glob("aclImdb_v1*.tar.gz")):
            return str(candidate)
    return None


def run_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def at_once(setup: str, action: str, *args, n: int = 3, timeout: int = 300) -> list[tuple[int, str]]:
    """Run `action` (Python source) in n fresh interpreters at the same instant: each runs
    `setup` first (the slow imports), says it is ready and waits for the word, so the actions
    overlap however loaded the machine is. Returns [(exit code, stderr)], one per process."""
    program = f"import sys\n{setup}\nprint('ready', flush=True)\nsys.stdin.readline()\n{action}\n"
    procs = [subprocess.Popen([sys.executable, "-c", program, *map(str, args)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        p.stdout.readline()  # 'ready' (or end of file if setup failed: its stderr says why)
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return [(p.returncode, o[1]) for p, o in zip(procs, [p.communicate(timeout=timeout) for p in procs])]


def new_database(server: str, name: str) -> str:
    """Create database `name` on the PostgreSQL `server` (the `postgres` fixture's URL); its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@contextlib.contextmanager
def mlflow_server(store: str, cwd):
    """`mlflow server` on the store at `store` (its schema made beforehand), on a free port of
    127.0.0.1; yields its base URL and stops it (its whole process group) afterwards."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host",
                             "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if http_get(f"{base}/health", timeout=10) == b"OK":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
