"""What a sweep keeps beside its Optuna study: the storage (opened with one-line errors), a
lock that serialises set-up across processes and machines, the study's identity and sampler
seed, and its MLflow parent run.

Database connections: an RDB storage's engine keeps one pooled connection and opens no other
(`pool_size=1, max_overflow=0`), which Optuna's heartbeat thread shares. Opening a storage for
a set-up takes up to three more for a moment (the opening lock's, and two nested ones while
Optuna creates or checks its tables); the set-up lock holds one while the set-up runs."""
from __future__ import annotations

import json
import os
import secrets
import warnings
import zlib
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.config import ConfigError
from harness.connections import hide_secrets, shown, timeout_seconds
from harness.dblock import advisory_lock, opening_lock

LOCK_KEY = zlib.crc32(b"rnn-harness-sweep")  # one advisory-lock id for every sweep's set-up


class StorageError(ConfigError):
    """An Optuna storage that cannot be used: unreachable or silent server, malformed or
    unsupported URL, missing database driver, a journal path that cannot be written."""


def is_rdb(storage: str) -> bool:
    return "://" in storage


def connect_args(url: str) -> dict:
    """SQLAlchemy connect_args that bound a connection attempt to timeout_seconds() (libpq and
    the MySQL drivers otherwise wait forever for a silent server; a URL's own ?connect_timeout=
    wins). ConfigError if $HARNESS_STORE_TIMEOUT is malformed."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in parsed.query:
        return {"connect_timeout": timeout_seconds()}
    return {}


def storage_error(url: str, err: BaseException) -> StorageError:
    """One line naming the storage (password hidden) and the cause."""
    import sqlalchemy

    if isinstance(err, StorageError):
        return err  # already names its storage
    if isinstance(err, sqlalchemy.exc.NoSuchModuleError):
        cause = f"unsupported URL scheme {url.split('://', 1)[0]!r} (use a journal file path or postgresql://...)"
    elif isinstance(err, ImportError):
        cause = f"the database driver is not installed ({err.__cause__ or err})"
    elif isinstance(err, (json.JSONDecodeError, UnicodeDecodeError)):
        cause = f"not an Optuna journal file ({err})"
    elif isinstance(err, sqlalchemy.exc.DBAPIError):
        cause = str(err.orig)
        if "timeout" in cause.lower():
            cause += f" (no answer within {timeout_seconds()} s)"  # read and checked before connecting
    elif isinstance(err, OSError) and err.strerror:
        cause = err.strerror + (f": {err.filename}" if err.filename else "")
    else:
        cause = f"{type(err).__name__}: {err}"
    return one_line(url, cause)


def one_line(url: str, cause: str) -> StorageError:
    """The error `storage URL: cause` on one line, the password hidden in both."""
    lines = [line.strip() for line in cause.splitlines()]  # drop SQL echoes and "Background on ..." links
    cause = " ".join(line for line in lines if line and not line.startswith(("LINE ", "^", "[SQL", "(Background")))
    return StorageError(f"storage {shown(url)}: {hide_secrets(cause, url)}")


def check_url(url: str) -> None:
    """StorageError (one line) unless an RDB URL parses; journal paths pass."""
    if is_rdb(url):
        from sqlalchemy.engine import make_url

        try:
            make_url(url)
        except Exception as err:  # unparsable, or a port that is not a number
            raise one_line(url, f"malformed URL ({err})") from None


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options of an RDB storage: one pooled connection, checked before use."""
    return {"connect_args": connect_args(url), "pool_size": 1, "max_overflow": 0, "pool_pre_ping": True}


def open_storage(url: str, heartbeat: int | None = None, on_stale=None, *, create: bool = True,
                 tables_exist: bool = False):
    """Optuna RDB storage (heartbeats every `heartbeat` s) for URLs, a journal file for paths.
    With create=False a missing journal file is an error instead of a new empty one;
    tables_exist=True (a set-up has opened the database) skips creating and checking Optuna's
    tables, and the lock and extra connections that takes. Raises StorageError (one line)
    before anything is written when the storage cannot be used."""
    check_url(url)
    if is_rdb(url):
        connect_args(url)  # a malformed HARNESS_STORE_TIMEOUT is its own error, before the translation below
    try:
        if is_rdb(url):
            import optuna
            from sqlalchemy.pool import NullPool

            if not tables_exist:
                # Optuna creates the tables on first use: sweep workers starting together on a new
                # database would collide (harness.dblock). Creating them, and checking their schema
                # version, nest two connections, which a pool of one would wait on forever: both
                # are done here, through an engine without a pool, and skipped below.
                with opening_lock(url, connect_args=connect_args(url)):
                    close_storage(optuna.storages.RDBStorage(
                        url, engine_kwargs={"connect_args": connect_args(url), "poolclass": NullPool}))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs(url), heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat if heartbeat else None, heartbeat_stale_trial_callback=on_stale,
                    skip_table_creation=True, skip_compatibility_check=True)
        return open_journal(Path(url), create)
    except Exception as err:  # the translation boundary: anything here is a storage problem
        raise storage_error(url, err) from None


def close_storage(storage) -> None:
    """Close an RDB storage's pooled connection (a journal holds none)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        storage.remove_session()
        engine.dispose()


def check_journal(path: Path, create: bool) -> list[Path]:
    """StorageError (one line) unless a journal can be opened at `path`; the missing folders
    that opening it would create, outermost first."""
    if path.is_dir():
        raise StorageError(f"storage {path}: is a directory, not a journal file")
    missing = [p for p in reversed(path.parents) if not p.exists()]
    existing = path.parent if not missing else missing[0].parent
    if not existing.is_dir():
        raise StorageError(f"storage {path}: {existing} is not a directory")
    if not path.exists() and not create:
        raise StorageError(f"storage {path}: no such journal file")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
        raise StorageError(f"storage {path}: no permission to write {path if path.exists() else existing}")
    return missing


def open_journal(path: Path, create: bool):
    """The journal storage at `path` (a torn last record cut first: harness.sweep.journal)."""
    import optuna

    from harness.sweep.journal import JournalBackend

    missing = check_journal(path, create)
    created = not path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalBackend(str(path)))
    except Exception:
        if created:  # leave nothing half-made behind
            path.unlink(missing_ok=True)
            for folder in reversed(missing):
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise


@contextmanager
def lock_for(storage: str):
    """Serialise sweep set-up: a PostgreSQL advisory lock for PostgreSQL storage, a file
    lock beside a journal or SQLite file. Workers never take it; only set-up does."""
    check_url(storage)
    if storage.startswith("postgresql"):
        args = connect_args(storage)
        with ExitStack() as held:
            try:
                held.enter_context(advisory_lock(storage, LOCK_KEY, seconds=300, connect_args=args))
            except Exception as err:  # cannot connect or lock: the storage's problem, one line
                raise storage_error(storage, err) from None
            yield
        return
    from filelock import FileLock

    path = storage.split("sqlite:///", 1)[1] if storage.startswith("sqlite:///") else storage
    if "://" in path:  # another database: rely on its transactions alone
        yield
        return
    if not is_rdb(storage):
        check_journal(Path(path), create=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.sweep-lock", timeout=300):  # an flock: a killed holder cannot leave it held
        yield


def settle_seed(study, given: int | None) -> int:
    """The study's sampler seed: recorded once (the given --seed, else a random one) so that every
    process, machine and later session seeds its trials from the same value."""
    recorded = study.user_attrs.get("sampler_seed")
    if recorded is None:
        recorded = given if given is not None else secrets.randbits(31)
        study.set_user_attr("sampler_seed", recorded)
    elif given is not None and given != recorded:
        raise ConfigError(f"study {study.study_name!r} samples with seed {recorded}, not {given}; "
                          "drop --seed or choose another --study name")
    return recorded


def record_or_check_study(study, settings, tracker=None) -> str | None:
    """Record what the study tunes on first use; refuse to mix in a different setup later.
    Settles settings.seed. Returns the MLflow parent run id, started here once per study with
    `tracker` (an open_tracker already checked; None: tracking off)."""
    identity = {"variant": settings.base["model"]["variant"], "task": settings.base["task"]["name"],
                "objectives": settings.objectives, "space": settings.space}
    attrs = study.user_attrs
    if "variant" in attrs:
        for key in ("variant", "task", "objectives"):
            if attrs[key] != identity[key]:
                raise ConfigError(f"study {settings.study!r} tunes {key} {attrs[key]!r}, not {identity[key]!r}; "
                                  "choose another --study name")
        if json.dumps(attrs["space"], sort_keys=True) != json.dumps(identity["space"], sort_keys=True):
            raise ConfigError(f"study {settings.study!r} was created with another search space; "
                              "choose another --study name")
    settings.seed = settle_seed(study, settings.seed)
    if "variant" not in attrs:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_user_attr("base_config", settings.base)
        study.set_user_attr("tracking_uri", settings.tracking_uri)
        study.set_user_attr("experiment", settings.experiment)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent or tracker is None:
        return parent
    parent = tracker.start(run_name=settings.study, tags={
        "optuna.study": settings.study, "sweep": "parent", "variant": identity["variant"],
        "task": identity["task"], "target_trials": str(settings.trials)})
    tracker.log_params({"study": settings.study, "sampler": settings.sampler, "pruner": settings.pruner,
                        "objectives": ",".join(settings.objectives), "directions": ",".join(settings.directions),
                        "storage": shown(settings.storage), "variant": identity["variant"],
                        "task": identity["task"], "search_space": json.dumps(settings.space, sort_keys=True),
                        "sampler_seed": settings.seed})
    tracker.flush()  # the parent stays RUNNING until the study is complete
    study.set_user_attr("mlflow_parent_run_id", parent)
    return parent
