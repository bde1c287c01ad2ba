"""One process at a time opens a database that its library migrates when it opens it.

MLflow's tracking store and Optuna's RDBStorage create their tables on first use. Processes
doing that at once on a new database collide: on SQLite alembic fails ("table _alembic_tmp_tags
already exists"), on PostgreSQL all but one of the sweep workers that start together fail with
a duplicate-key IntegrityError (measured: 3 of 4 processes, in every try). `opening_lock(url)`
serialises the opening: a lock file for a SQLite file (in the temporary directory, named after
the database: nothing is added beside the user's files), a PostgreSQL advisory lock held by a
session on the database itself (workers on different machines share nothing else; the server
releases it if the holder dies). Other databases are opened as they are. `advisory_lock` is
that PostgreSQL lock alone, for any key (the sweep's set-up lock uses it too).
"""
from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import Iterator

# the advisory lock's key: a fixed 63-bit number of our own, the same on every machine
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"rnn-harness: opening a database").digest()[:8], "big") >> 1


@contextlib.contextmanager
def opening_lock(url: str, *, seconds: int = 120, connect_args: dict | None = None) -> Iterator[None]:
    """Hold the lock for database `url` (a SQLAlchemy URL) while the body runs. Waits at most
    `seconds` for it (filelock.Timeout, or the driver's lock-timeout error); `connect_args` go
    to the driver (e.g. a connect timeout). Raises what SQLAlchemy raises for a bad URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from filelock import FileLock

        path = Path(parsed.database).expanduser().resolve()
        name = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        with FileLock(str(Path(tempfile.gettempdir()) / f"rnn-harness-db-{name}.lock"), timeout=seconds):
            yield
    elif backend == "postgresql":
        with advisory_lock(url, ADVISORY_KEY, seconds=seconds, connect_args=connect_args):
            yield
    else:
        yield


@contextlib.contextmanager
def advisory_lock(url: str, key: int, *, seconds: int = 120, connect_args: dict | None = None) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock `key` (a signed 64-bit number) on database `url`
    while the body runs; waits at most `seconds` for it (then the driver's lock-timeout error).
    The server releases it when the session ends, so a process that dies cannot leave it held."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args or {})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SET lock_timeout = '{int(seconds)}s'")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()

