"""Where a tracking store lives and whether it answers: URI resolution, the local directory a
store keeps its files in, and a bounded probe that turns every store problem into one line.

MLflow retries unreachable stores for minutes by default (HTTP: MLFLOW_HTTP_REQUEST_MAX_RETRIES
and MLFLOW_HTTP_REQUEST_TIMEOUT, 120 s per request; SQL: its engine creation retries
connections), and an unwritable SQLite path fails only after those retries, with tracebacks.
`check` asks first, each question within harness.connections.timeout_seconds() (the one
reader of $HARNESS_STORE_TIMEOUT), and touches nothing it would leave behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from harness.config import ConfigError
from harness.connections import hide_secrets, shown, timeout_seconds

SQL = {"postgresql", "mysql", "mssql"}
EXAMPLES = "a path, sqlite:///PATH, postgresql://USER@HOST/DB, mysql://USER@HOST/DB or http(s)://HOST:PORT"


class StoreError(ConfigError):
    """The tracking store cannot be used: unwritable, unreachable, malformed or unsupported."""


def resolve_uri(uri: str = "") -> str:
    """An explicit URI, else $MLFLOW_TRACKING_URI, else an absolute sqlite:///<cwd>/mlflow.db.

    Always explicit: with nothing set MLflow may switch to a legacy ./mlruns file store."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if "://" not in uri:  # a bare path: a SQLite file there
        return f"sqlite:///{Path(uri).expanduser().resolve()}"
    return uri


def scheme(uri: str) -> str:
    """'sqlite', 'postgresql', 'http', ... (a driver suffix such as +psycopg dropped)."""
    return uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative paths against the working directory)."""
    if scheme(uri) != "sqlite":
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().absolute()


def local_dir(uri: str) -> Path | None:
    """The directory a local store keeps its file in (artifacts and checkpoints go beside it);
    None for remote stores and for anything that is not a usable local store."""
    try:
        path = sqlite_path(resolve_uri(uri))
    except Exception:  # malformed: check() names the problem; placement just has no local dir
        return None
    return path.parent if path is not None else None


def check(uri: str, experiment: str = "") -> None:
    """Raise StoreError (one line naming the URI and the cause) unless the store can be used;
    bounded by timeout_seconds() per question (ConfigError if $HARNESS_STORE_TIMEOUT is
    malformed). Creates nothing; the password is hidden in the URI and in the cause."""
    kind = scheme(uri)
    seconds = timeout_seconds()
    try:
        if kind == "sqlite":
            _check_sqlite(uri, experiment)
        elif kind in SQL:
            _bounded(lambda: _check_sql(uri, seconds), seconds)
        elif kind in ("http", "https"):
            _bounded(lambda: _check_http(uri, experiment, seconds), seconds)
        elif kind == "file":
            raise _Cause("MLflow's file store is not supported; give a path (a SQLite file) or sqlite:///PATH")
        else:
            raise _Cause(f"unsupported scheme {kind or 'none'!r}; use {EXAMPLES}")
    except _Cause as cause:
        raise StoreError(f"tracking store {shown(uri)}: {hide_secrets(str(cause), uri)}") from None


class _Cause(Exception):
    """Why a store cannot be used (the message, already one line)."""


def _line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300]


def _bounded(probe, seconds: int) -> None:
    """Run `probe` in a daemon thread; give up after `seconds` (a DNS lookup or a silent
    server must not hang the command, and a daemon thread does not hold the exit)."""
    box: dict = {}

    def target():
        try:
            probe()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err
        box["done"] = True

    thread = threading.Thread(target=target, name="store-probe", daemon=True)
    thread.start()
    thread.join(seconds + 0.5)
    if "done" not in box:
        raise _Cause(f"no answer within {seconds} s")
    if "error" in box:
        raise box["error"]


def _check_sqlite(uri: str, experiment: str = "") -> None:
    try:
        path = sqlite_path(uri)
    except Exception as err:
        raise _Cause(f"not a valid SQLite URI ({_line(err)}); use sqlite:///PATH") from None
    if path is None:
        raise _Cause("an in-memory SQLite store keeps nothing; give a file path")
    if path.exists():
        if not path.is_file():
            raise _Cause(f"{path} exists and is not a file")
        try:
            with open(path, "r+b") as f:
                head = f.read(16)
        except OSError as err:
            raise _Cause(f"cannot open {path} for writing ({err.strerror or _line(err)})") from None
        if head and head != b"SQLite format 3\x00":
            raise _Cause(f"{path} is not an SQLite database")
        problem = unwritable(path.parent)  # SQLite writes its journal file beside the database
        if problem:
            raise _Cause(f"cannot write beside {path}, where SQLite keeps its journal: {problem}")
    else:  # MLflow creates missing directories: the nearest existing one must take a new file.
        problem = unwritable(path.parent)
        if problem:
            raise _Cause(f"cannot create {path}: {problem}")
    folder = artifact_folder(path, experiment)
    problem = folder and unwritable(folder)
    if problem:
        raise _Cause(f"cannot write the run's artifacts: {problem}")


def artifact_folder(database: Path, experiment: str) -> Path | None:
    """The local folder a new run of `experiment` in the SQLite store `database` keeps its
    artifacts under: the experiment's artifact location when it exists (read from MLflow's
    `experiments` table, the file opened read-only), else the folder the harness gives a new
    experiment (mlartifacts beside the store); None for a location that is not a local folder."""
    import sqlite3
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    location = (database.parent / "mlartifacts").as_uri()
    if experiment and database.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchone()
        except sqlite3.Error:  # no MLflow tables yet: the experiment will be new
            row = None
        location = row[0] if row and row[0] else location
    return Path(url2pathname(urlparse(location).path)) if location.startswith("file:") else None


def unwritable(folder: Path) -> str | None:
    """Why no new file can be made in `folder` (or in the nearest existing folder above it, where
    it would be created), or None when one can. Tried with a temporary file, removed at once:
    permission bits do not stop root, but a read-only mount or an immutable folder does."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".harness-probe-"):
            pass
    except OSError as err:
        return f"{folder} is not writable ({err.strerror or _line(err)})"
    return None


def _check_sql(uri: str, seconds: int) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except Exception as err:
        raise _Cause(f"malformed URI ({_line(err)})") from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        extra = ' (pip install -e ".[postgres]")' if url.drivername == "postgresql" else ""
        raise _Cause(f"the database driver is not installed: {_line(err)}{extra}") from None
    timeout = {"mssql": {"timeout": seconds}}.get(url.get_backend_name(), {"connect_timeout": seconds})
    engine = create_engine(url, poolclass=NullPool, connect_args=timeout)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as err:
        cause = getattr(err, "orig", None) or err
        raise _Cause(f"cannot connect ({_line(cause)})") from None
    finally:
        engine.dispose()


@contextmanager
def bounded_http(seconds: int):
    """MLflow's HTTP client without its retries and with a `seconds` timeout, for one probe."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(seconds)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_http(uri: str, experiment: str, seconds: int) -> None:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(uri).hostname
        urlsplit(uri).port  # noqa: B018  (raises on a malformed port)
    except ValueError as err:
        raise _Cause(f"malformed URI ({_line(err)})") from None
    if not host:
        raise _Cause("no host in the URI; use http(s)://HOST:PORT")
    from mlflow import MlflowClient

    with bounded_http(seconds):
        try:  # through MLflow's own client, so its authentication settings apply
            MlflowClient(uri).get_experiment_by_name(experiment or "Default")
        except Exception as err:
            raise _Cause(f"no MLflow server answers there ({_http_cause(err)})") from None


def _http_cause(err: BaseException) -> str:
    text = " ".join(str(err).split())
    for hint in ("Connection refused", "Read timed out", "timed out", "Name or service not known",
                 "Max retries exceeded", "Temporary failure in name resolution"):
        if hint in text:
            return {"Max retries exceeded": "connection failed"}.get(hint, hint)
    return text[:200] or type(err).__name__
