"""No password on any surface: the one masker (harness.connections), the one reader of
HARNESS_STORE_TIMEOUT, and `run` and `sweep` through the CLI against a PostgreSQL server that
asks for the password, with stdout, stderr, MLflow params and tags and every run's config.toml
read back."""
from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import ROOT, run_cli
from mlflow import MlflowClient

from harness.config import ConfigError
from harness.connections import hide_secrets, shown, timeout_seconds

TINY = ["--variant", "gru", "--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=64", "--set", "task.test_size=64", "--set", "track.probe_points=1",
        "--set", "train.steps=4"]

# (URL, what it must be shown as); the old maskers leaked the first four
MASKED = [
    ("postgresql://:pw@h/db", "postgresql://:***@h/db"),  # empty user
    ("postgresql://u:a/b@h/db", "postgresql://u:***@h/db"),  # a '/' in the password
    ("https://u:p/w@mlflow.example.com/", "https://u:***@mlflow.example.com/"),
    ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    ("postgresql://u:a%2Fb@h:5432/db", "postgresql://u:***@h:5432/db"),  # percent-encoded
    ("postgresql://u:a@b@h/db", "postgresql://u:***@h/db"),  # a raw '@': SQLAlchemy would keep 'b'
    ("http://u:pw@h:5000", "http://u:***@h:5000"),
    ("mysql+pymysql://u:pw@h/db?charset=utf8", "mysql+pymysql://u:***@h/db?charset=utf8"),
    ("postgresql://u:pw@h:notaport/db", "postgresql://u:***@h:notaport/db"),  # SQLAlchemy cannot parse it
    ("databricks-uc://u:pw@h", "databricks-uc://u:***@h"),  # nor this scheme
    ("sqlite:////tmp/a%20b/mlflow.db", "sqlite:////tmp/a%20b/mlflow.db"),  # nothing to hide: unchanged
    ("/tmp/x/optuna.journal", "/tmp/x/optuna.journal"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
]


@pytest.mark.parametrize("url,expected", MASKED)
def test_every_url_form_is_shown_without_its_password(url, expected):
    assert shown(url) == expected


def test_error_text_loses_every_form_of_the_password():
    url = "postgresql://u:a%2Fb@h/db"
    text = f"cannot use {url}: password 'a/b' (a%2Fb) refused"
    assert hide_secrets(text, url) == "cannot use postgresql://u:***@h/db: password '***' (***) refused"


@pytest.mark.parametrize("value,seconds", [(None, 3), ("", 3), ("0.5", 2), ("2", 2), ("2.5", 3), ("10", 10)])
def test_the_store_timeout_is_whole_seconds_at_least_two(monkeypatch, value, seconds):
    if value is None:
        monkeypatch.delenv("HARNESS_STORE_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("HARNESS_STORE_TIMEOUT", value)
    assert timeout_seconds() == seconds


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "0", "-1"])
def test_a_malformed_store_timeout_is_refused(monkeypatch, value):
    monkeypatch.setenv("HARNESS_STORE_TIMEOUT", value)
    with pytest.raises(ConfigError, match=r"^HARNESS_STORE_TIMEOUT=.*: expected a positive number of seconds"):
        timeout_seconds()


def test_harness_store_timeout_has_one_reader():
    # the variable's name as a string literal, which reading it takes (docstrings name it as $...)
    readers = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "harness").rglob("*.py"))
               if any(f"{q}HARNESS_STORE_TIMEOUT{q}" in p.read_text() for q in "\"'")]
    assert readers == ["harness/connections.py"]


@pytest.mark.parametrize("command", [
    ["run", *TINY],  # the tracking store's check reads it
    ["sweep", *TINY, "--trials", "1", "--set", "track.enabled=false", "--storage", "postgresql://u@127.0.0.1:9/db"],
])
def test_a_malformed_store_timeout_is_one_line_exit_2_through_the_cli(tmp_path, command):
    result = run_cli(*command, cwd=tmp_path, env={"HARNESS_STORE_TIMEOUT": "abc"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: HARNESS_STORE_TIMEOUT='abc': expected a positive number of seconds (default 3, at least 2 is used)"]
    assert list(tmp_path.iterdir()) == [], "nothing created"


def _forms(password: str) -> list[str]:
    """The password as written, percent-encoded, and each part around its '/' (a partial leak)."""
    return [password, quote(password, safe=""), *password.split("/")]


def _recorded(uri: str, run_ids: list[str], tmp_path: Path) -> list[str]:
    """Everything MLflow holds about the runs as text: params, tags, config.toml artifacts."""
    client, texts = MlflowClient(uri), []
    for run_id in run_ids:
        run = client.get_run(run_id)
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
        if "config.toml" in {a.path for a in client.list_artifacts(run_id)}:
            texts.append(Path(client.download_artifacts(run_id, "config.toml", str(tmp_path))).read_text())
    return texts


def _assert_nowhere(password: str, texts: list[str]) -> None:
    for form in _forms(password):
        leaks = [text[max(0, text.find(form) - 60):text.find(form) + 60] for text in texts if form in text]
        assert not leaks, f"{form!r} appears: {leaks}"


def test_a_run_on_a_password_store_shows_the_password_nowhere(postgres_password, tmp_path):
    hostport, role, password = postgres_password
    uri = f"postgresql://{role}:{password}@{hostport}/mlflow"  # '/' and ':' in the password, written raw
    result = run_cli("run", *TINY, "--tracking-uri", uri, "--experiment", "secret-run", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    masked = f"postgresql://{role}:***@{hostport}/mlflow"
    assert info["tracking_uri"] == masked
    assert f"mlflow ui --backend-store-uri {shlex.quote(masked)} " in result.stdout, "the open-the-UI line (quoted for a shell)"
    recorded = _recorded(uri, [info["run_id"]], tmp_path)
    assert tomllib.loads(recorded[-1])["track"]["tracking_uri"] == masked, "config.toml"
    _assert_nowhere(password, [result.stdout, result.stderr, *recorded])


def test_a_sweep_on_password_stores_shows_the_password_nowhere(postgres_password, tmp_path):
    hostport, role, password = postgres_password
    # an empty user (libpq takes $PGUSER) in both; the storage's password percent-encoded
    storage = f"postgresql://:{quote(password, safe='')}@{hostport}/optuna"
    uri = f"postgresql://:{password}@{hostport}/mlflow"
    env = {"PGUSER": role}
    result = run_cli("sweep", *TINY, "--trials", "1", "--study", "secret-sweep", "--storage", storage,
                     "--tracking-uri", uri, "--experiment", "secret-sweep", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["storage"] == f"postgresql://:***@{hostport}/optuna"
    client = MlflowClient(f"postgresql://{role}:{quote(password, safe='')}@{hostport}/mlflow")
    parent = out["parent_run_id"]
    children = [r.info.run_id for r in client.search_runs(
        [client.get_experiment_by_name("secret-sweep").experiment_id], f"tags.mlflow.parentRunId = '{parent}'")]
    assert len(children) == 1
    recorded = _recorded(client.tracking_uri, [parent, *children], tmp_path)
    assert client.get_run(parent).data.params["storage"] == out["storage"], "the parent's storage param"
    configs = [tomllib.loads(text) for text in recorded if text.startswith("[")]
    assert [c["track"]["tracking_uri"] for c in configs] == [f"postgresql://:***@{hostport}/mlflow"], "the trial's"
    assert f"optuna-dashboard {out['storage']}" in result.stdout, "the printed summary (as --report prints it)"
    _assert_nowhere(password, [result.stdout, result.stderr, *recorded])


@pytest.mark.parametrize("url,text,expected", [
    # a one-letter password: the message keeps its words, and so does not spell the password out
    ("postgresql://user:o@127.0.0.1:1/db", "connection failed: port 1 failed: Connection refused",
     "connection failed: port 1 failed: Connection refused"),
    # a raw '@' in the password, split by the driver elsewhere than by the URL's rule
    ("postgresql://user:se@cret@127.0.0.1:1/db", "failed to resolve host 'cret@127.0.0.1': Name or service not known",
     "failed to resolve host '***@127.0.0.1': Name or service not known"),
    ("postgresql://harness:Hx7%2Fq%3AZr4@h/db", "FATAL: password=Hx7/q:Zr4 for user harness",
     "FATAL: password=*** for user harness"),
])
def test_a_secret_is_masked_where_it_stands_alone_in_a_drivers_message(url, text, expected):
    assert hide_secrets(text, url) == expected


def test_the_next_step_reproduce_prints_hides_the_password(tmp_path):
    """`reproduce` ends with the report command to run next: its --tracking-uri is shown masked."""
    url = "postgresql://user:s3cretpw@127.0.0.1:1/nowhere"
    result = run_cli("reproduce", "params", "--budget", "smoke", "--dry-run", "--tracking-uri", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "s3cretpw" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith("--tracking-uri 'postgresql://user:***@127.0.0.1:1/nowhere'")
