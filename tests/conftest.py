"""Fixtures that start real servers (a PostgreSQL cluster of the test's own on 127.0.0.1), and
the suite's split over CPU cores: pytest-xdist runs one worker per usable core (`-n logical
--dist loadfile` in pyproject.toml; a file's tests stay on one worker so that its module
fixtures are made once), each worker with cores // workers torch threads so that the workers
do not oversubscribe the cores between them."""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest
import torch
from helpers import free_port

from harness.training.threads import usable_cores

MAX_WORKERS = 8  # each worker holds torch, MLflow and its own servers: ~0.5 GB before any test


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n logical` / `-n auto`: one worker per core this process may run on (its CPU affinity,
    which psutil's count ignores), at most MAX_WORKERS; PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return max(1, min(usable_cores(), MAX_WORKERS))


# Seconds each of the slowest files took (all its tests, fixtures included) in a 2-worker run
# on the 2-core CPU (1,088 tests, 2026-12-07). Files are sent to the workers longest first
# (`--no-loadscope-reorder` keeps this order; xdist's own sorts files by test count and sent
# these few-test, long files last, where one worker ran them alone for minutes). Order only:
# a stale or missing entry never changes an outcome.
SECONDS = {"test_sweep.py": 210, "test_claims.py": 148, "test_reproduce.py": 122, "test_sweep_resume.py": 119,
           "test_report_audit.py": 113, "test_faults.py": 103, "test_shared_plan.py": 91, "test_cli.py": 71,
           "test_runs_compare.py": 66, "test_cli_surface.py": 52, "test_option_effects.py": 48,
           "test_committed_results.py": 36, "test_tracking.py": 30, "test_bench.py": 30, "test_secrets.py": 29,
           "test_report_budgets.py": 26, "test_variant_contract.py": 20, "test_imdb.py": 16, "test_train.py": 15}


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: -SECONDS.get(item.path.name, 0))  # stable: a file's tests keep their order


def pytest_configure(config) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # in a worker: its share of the cores (training code takes at most this many)
        torch.set_num_threads(max(1, usable_cores() // workers))


@pytest.fixture(autouse=True)
def _signal_handlers_given_back():
    """Every test ends with the SIGINT/SIGTERM handlers it started with: train(), the reproduce
    pool and a sweep promise to give the caller's handlers back, and a handler one test leaks
    (SIG_IGN, say) silently changes what a later test on the same worker sees. A test that leaves
    them changed errors, and the next starts from the handlers this one found."""
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in signals}
    yield
    changed = [f"{signal.Signals(s).name}: {before[s]!r} -> {signal.getsignal(s)!r}"
               for s in signals if signal.getsignal(s) is not before[s]]
    for s, handler in before.items():
        signal.signal(s, handler)
    assert not changed, f"the test left signal handlers changed: {changed}"


def _pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


@contextlib.contextmanager
def _cluster(auth: str = "trust", superuser_password: str | None = None, max_connections: int = 100):
    """A throwaway PostgreSQL server (initdb + pg_ctl) on a free port, with `auth` for every
    connection (trust, or scram-sha-256 with the superuser's password) and at most
    `max_connections` clients; yields the port."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the packaged postgres account
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="harness-pg-")
    os.chmod(root, 0o755)
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data, port = os.path.join(root, "data"), free_port()

    def run(*args):
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, timeout=120)

    password = []
    if superuser_password is not None:
        pwfile = os.path.join(root, "pwfile")
        with open(pwfile, "w") as f:
            f.write(superuser_password + "\n")
        if as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        password = [f"--pwfile={pwfile}"]
    run(f"{bindir}/initdb", "-D", data, "-A", auth, "-U", "postgres", "--no-sync", *password)
    run(f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "start",
        "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c max_connections={max_connections}")
    try:
        yield port
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server that trusts every connection; yields a URL prefix
    `postgresql://postgres@127.0.0.1:PORT` to which a database name is appended."""
    with _cluster() as port:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            for name in ("optuna", "mlflow"):
                conn.execute(f"CREATE DATABASE {name}")
        yield f"postgresql://postgres@127.0.0.1:{port}"


@pytest.fixture(scope="session")
def postgres_password():
    """A throwaway PostgreSQL server that asks every connection for its password
    (scram-sha-256), with a role `harness` whose password holds '/' and ':' and which owns the
    databases `optuna` and `mlflow`; yields (host:port, role, password)."""
    role, password = "harness", "Hx7/q:Zr4"
    with _cluster("scram-sha-256", superuser_password="pg-superuser") as port:
        import psycopg
        from psycopg import sql

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password="pg-superuser",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            for name in ("optuna", "mlflow"):
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
        yield f"127.0.0.1:{port}", role, password
