"""A claim's plan shared by several `reproduce` processes, on one machine or many.

Every unit of work (a planned run, a tuning study, a (cell, seed) ladder chain) has a key; a
worker does a unit only while it holds PostgreSQL's session advisory lock on that key
(pg_try_advisory_lock: it never waits), on the one connection of its process's SharedPlan, and
having taken it, it asks the store again what the unit needs (a result found meanwhile is
reused). A process that dies, even by SIGKILL, loses its connection and with it every lock it
held, so the unit falls to whoever asks next: there is no heartbeat to tune and no lock to
clean up. Whether a unit is done is never kept here: the MLflow store says it (a run with the
unit's fingerprint that reached a result), so the report reads the union of every process's
runs. A unit another process holds comes back `elsewhere` and is asked for again after
POLL_SECONDS, until it is done (then it is reused) or its holder died (then it is taken over).

The plan is shared when the MLflow store is a PostgreSQL database (the locks live there);
otherwise it is local (LocalPlan): this process's pool is the only one.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket

from harness.connections import shown


def lock_key(key: str) -> int:
    """A unit's key as the signed 64-bit number pg_advisory_lock takes (sha256's first 8 bytes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class LocalPlan:
    """One process runs the whole plan: every unit is its own."""

    shared = False
    owner = f"{socket.gethostname()}:{os.getpid()}"

    def take(self, key: str) -> bool:
        return True

    def give_back(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass


class SharedPlan(LocalPlan):
    """Units taken on PostgreSQL database `url` (one connection, held open while reproducing)."""

    shared = True

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import StaticPool

        from harness.connections import timeout_seconds
        from harness.config import ConfigError

        # one connection for every lock of this process: StaticPool never opens a second
        self._engine = create_engine(url, poolclass=StaticPool,
                                     connect_args={"connect_timeout": timeout_seconds()})
        try:
            self._connection = self._engine.connect()
        except Exception as err:  # noqa: BLE001 (driver errors vary: one line naming the database)
            self._engine.dispose()
            raise ConfigError(f"--tracking-uri {shown(url)}: cannot share the plan there: "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        self._held: set[str] = set()

    def _scalar(self, sql: str, key: str):
        from sqlalchemy import text

        value = self._connection.execute(text(sql), {"key": lock_key(key)}).scalar()
        self._connection.commit()  # session locks outlive transactions; keep none open
        return value

    def take(self, key: str) -> bool:
        """Whether this process now holds `key` (False: another live process does)."""
        if key in self._held:
            return True
        if self._scalar("SELECT pg_try_advisory_lock(:key)", key):
            self._held.add(key)
            return True
        return False

    def give_back(self, key: str) -> None:
        if key in self._held:
            self._scalar("SELECT pg_advisory_unlock(:key)", key)
            self._held.discard(key)

    def close(self) -> None:
        try:
            self._connection.close()  # the server drops whatever locks are left
        finally:
            self._engine.dispose()


POLL_SECONDS = 5.0  # how often a unit held elsewhere is asked for again


def is_shared(uri: str | None) -> bool:
    """Whether a plan on this store is shared: a PostgreSQL database."""
    return bool(uri) and uri.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def open_plan(storage: str | None) -> LocalPlan:
    """A SharedPlan on a PostgreSQL `storage` URL, else a LocalPlan."""
    return SharedPlan(storage) if is_shared(storage) else LocalPlan()


_plans: dict[str, LocalPlan] = {}


def plan_for(uri: str) -> LocalPlan:
    """This process's plan on store `uri`, opened once (a worker keeps one connection for it)."""
    if uri not in _plans:
        _plans[uri] = open_plan(uri)
    return _plans[uri]


@contextlib.contextmanager
def holding(uri: str, key: str):
    """`with holding(uri, key) as mine:` mine is whether this process may do the unit now; the
    unit is given back when the block ends (a local plan: always mine)."""
    plan = plan_for(uri)
    mine = plan.take(key)
    try:
        yield mine
    finally:
        if mine:
            plan.give_back(key)
