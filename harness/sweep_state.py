"""What a sweep keeps beside its Optuna study: a lock that serialises set-up across
processes and machines, the study's identity, and its MLflow parent run."""
from __future__ import annotations

import json
import re
import zlib
from contextlib import contextmanager
from pathlib import Path

from harness.config import ConfigError
from harness.tracking import MLflowTracker

LOCK_KEY = zlib.crc32(b"rnn-harness-sweep")  # one advisory-lock id for every sweep's set-up


def describe_storage(storage: str) -> str:
    """The storage URL with any password hidden (it is printed and logged)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", storage)


@contextmanager
def lock_for(storage: str):
    """Serialise sweep set-up: a PostgreSQL advisory lock for PostgreSQL storage, a file
    lock beside a journal or SQLite file. Workers never take it; only set-up does."""
    if storage.startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        engine.dispose()
        return
    from filelock import FileLock

    path = storage.split("sqlite:///", 1)[1] if storage.startswith("sqlite:///") else storage
    if "://" in path:  # another database: rely on its transactions alone
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.sweep-lock", timeout=300):  # not "<path>.lock": Optuna's journal uses that
        yield


def record_or_check_study(study, settings) -> str | None:
    """Record what the study tunes on first use; refuse to mix in a different setup later.
    Returns the MLflow parent run id (created here once per study)."""
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
    else:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_user_attr("base_config", settings.base)
        study.set_user_attr("tracking_uri", settings.tracking_uri)
        study.set_user_attr("experiment", settings.experiment)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent or not settings.tracking_uri:
        return parent
    tracker = MLflowTracker(settings.tracking_uri, settings.experiment)
    parent = tracker.start(run_name=settings.study, tags={
        "optuna.study": settings.study, "sweep": "parent", "variant": identity["variant"],
        "task": identity["task"], "target_trials": str(settings.trials)})
    tracker.log_params({"study": settings.study, "sampler": settings.sampler, "pruner": settings.pruner,
                        "objectives": ",".join(settings.objectives), "directions": ",".join(settings.directions),
                        "storage": describe_storage(settings.storage), "variant": identity["variant"],
                        "task": identity["task"], "search_space": json.dumps(settings.space, sort_keys=True)})
    tracker.flush()  # the parent stays RUNNING until the study is complete
    study.set_user_attr("mlflow_parent_run_id", parent)
    return parent
