"""How MLflow's PostgreSQL store connects: one connection per call, shared by the sessions that
call nests, and closed after it.

MLflow's default pool keeps up to 5 + 10 connections per process, and it cannot be capped at
one: MLflow drops a MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW of 0 (it passes the value only when
truthy), and a pool of one would wait forever, because `log_batch` opens a session and, inside
it, one more for each of params, metrics and tags. MLflow's NullPool (its
MLFLOW_SQLALCHEMYSTORE_POOLCLASS) connects per session, so a batch holds two connections at once.
`ReentrantNullPool` connects per call instead: a checkout while this thread already holds the
pool's connection gets that same connection (SQLAlchemy's SingletonThreadPool does this for
threads, but keeps connections open between calls), and the connection closes when its last
holder returns it. A worker process thus holds at most one MLflow connection while it logs and
none between calls; with Optuna's one (harness.sweep.storage) that is two.

The nested sessions stay separate SQLAlchemy sessions on one DBAPI connection: each commits or
rolls back that connection's work at its end, as it would have on its own connection; the
outer one of `log_batch` only reads (the run's state) before them.
"""
from __future__ import annotations

import threading

from sqlalchemy.pool import NullPool
from sqlalchemy.pool.base import _ConnectionFairy  # the checkout SingletonThreadPool.connect uses


class ReentrantNullPool(NullPool):
    """NullPool whose nested checkouts on one thread share the connection checked out first."""

    def __init__(self, creator, **kwargs):
        super().__init__(creator, **kwargs)
        self._fairy = threading.local()  # this thread's checked-out connection, if any

    def connect(self):
        current = getattr(self._fairy, "current", None)
        fairy = current() if current is not None else None
        if fairy is not None and fairy._counter > 0 and fairy.dbapi_connection is not None:
            return fairy._checkout_existing()  # counted: closed when the outermost holder returns it
        return _ConnectionFairy._checkout(self, self._fairy)

    def _do_return_conn(self, record) -> None:
        self._fairy.__dict__.pop("current", None)
        super()._do_return_conn(record)  # NullPool: closed


def connect_per_call(uri: str) -> None:
    """Give MLflow's store on PostgreSQL `uri` an engine on ReentrantNullPool, with the harness's
    connect timeout (harness.connections.timeout_seconds), before MLflow first opens that store
    in this process (MLflow keeps one engine per URI, SqlAlchemyStore._engine_map; one already
    there is left as it is). Other schemes are left to MLflow."""
    from harness.tracking.store import scheme

    if scheme(uri) != "postgresql":
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import create_engine

    from harness.connections import timeout_seconds

    with SqlAlchemyStore._engine_map_lock:
        if uri not in SqlAlchemyStore._engine_map:
            SqlAlchemyStore._engine_map[uri] = create_engine(
                uri, poolclass=ReentrantNullPool, connect_args={"connect_timeout": timeout_seconds()})
