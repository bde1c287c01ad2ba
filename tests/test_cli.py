"""The command line as a user meets it: real subprocesses, real MLflow SQLite stores."""
from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import ROOT, free_port, run_cli

import tasks
import variants
from harness.cli import main

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=256", "--set", "task.test_size=256", "--set", "track.probe_points=2"]


@pytest.mark.parametrize("args,message", [
    (["--set", "model.hidden=3"], "unknown key model.hidden; valid keys in [model]:"),
    (["--set", "train.steps=abc"], "train.steps: expected an integer, got 'abc'"),
    (["--set", "train.lr=-1"], "train.lr: must be >= 0.0"),
    (["--set", "cell.forget_init=zero"], "cell.forget_init: expected one of constant, chrono"),
    (["--set", "nosection.x=1"], "unknown section 'nosection'"),
    (["--set", "steps=3"], "--set expects section.field=value"),
    (["--variant", "lsmt"], f"unknown variant 'lsmt'; valid names: {', '.join(variants.available())}"),
    (["--task", "adds"], f"unknown task 'adds'; valid names: {', '.join(tasks.available())}"),
    (["--set", "model.path=fused", "--variant", "phased_lstm"], "has no 'fused' path"),
    (["--device", "nonsense"], "train.device: not a device: 'nonsense'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--config", "missing.toml"], "config file not found: missing.toml"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_logged(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = main(["run", *args])
    except SystemExit as exit:  # argparse errors exit from inside the parser
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "mlflow.db").exists(), "nothing may be logged"


def test_a_bad_key_in_a_real_process_has_no_traceback(tmp_path):
    result = run_cli("run", "--set", "model.hidden=3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: unknown key model.hidden; valid keys in [model]: bidirectional, "
                                     "dropout, embedding_dim, hidden_size, num_layers, path, variant")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    result = run_cli("run", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2 and "CUDA is not available here" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_bad_toml_sections_and_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[modle]\nhidden_size = 3\n")
    assert main(["run", "--config", "bad.toml"]) == 2
    assert "unknown section [modle]" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[train]\nsteps = 'many'\n")
    assert main(["run", "--config", "bad.toml"]) == 2
    assert "train.steps: expected an integer" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[train\nsteps = 1\n")
    assert main(["run", "--config", "bad.toml"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_config_round_trips_through_a_toml_file(tmp_path):
    first = run_cli("config", "--variant", "gru", "--task", "copy", "--set", "cell.forget_bias=2.5",
                    "--set", "train.steps=77", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "run.toml").write_text(first.stdout)
    second = run_cli("config", "--config", "run.toml", cwd=tmp_path)
    assert second.stdout == first.stdout
    assert 'variant = "gru"' in first.stdout and "forget_bias = 2.5" in first.stdout
    assert 'name = "copy"' in first.stdout and "steps = 77" in first.stdout


def test_help_lists_every_config_field():
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for field in ("model.hidden_size", "model.num_layers", "model.bidirectional", "train.steps",
                  "train.batch_size", "train.lr", "task.length", "track.probe_threshold", "cell.budget_weight",
                  "train.threads"):
        assert field in result.stdout, field


def test_list_json_has_every_variant_and_task():
    result = run_cli("list", "--json")
    data = json.loads(result.stdout)
    assert sorted(data["variants"]) == variants.available()
    assert sorted(data["tasks"]) == tasks.available()
    assert any(o["name"] == "forget_init" for o in data["variants"]["lstm"]["options"])
    assert any(o["name"] == "length" for o in data["tasks"]["recall"]["options"])


def test_run_json_and_mlflow_store(tmp_path):
    result = run_cli("run", "--variant", "gru", "--seed", "3", "--set", "train.steps=20", *TINY,
                     "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("run_id", "experiment", "variant", "task", "trainable_params", "device", "tracking_uri", "metrics"):
        assert key in info
    assert info["variant"] == "gru" and info["task"] == "recall" and info["seed"] == 3
    assert info["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    for key in ("test_accuracy", "val_accuracy", "gradient_horizon", "best_val_accuracy"):
        assert key in info["metrics"]
    assert info["outcome"] == "finished" and info["threads"] >= 1
    assert info["path"] in variants.get("gru").paths and info["path"] != "explicit", "the training path"
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    legend = [line for line in result.stdout.splitlines() if line.startswith("gradient_horizon: ")]
    assert len(legend) == 1 and "censored = 1" in legend[0] and "gradient_decay: per-step factor" in legend[0]
    printed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"gradient_decay", "gradient_horizon_censored", "test_accuracy"} <= printed, "the summary table"

    from mlflow import MlflowClient

    client = MlflowClient(info["tracking_uri"])
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["outcome"] == "finished"
    assert run.data.tags["threads"] == str(info["threads"]) and run.data.params["train.threads"] == "0"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.data.params["model.variant"] == "gru" and run.data.params["train.seed"] == "3"
    assert run.data.metrics["test_accuracy"] == pytest.approx(info["metrics"]["test_accuracy"])
    assert len(client.get_metric_history(info["run_id"], "val_accuracy")) == 10
    names = {a.path for a in client.list_artifacts(info["run_id"])}
    assert {"config.toml", "gradient_flow.png", "gradient_flow.csv", "model_state_dict.pt"} <= names


def _json_line(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sigterm_marks_killed_and_resume_reaches_the_same_metrics(tmp_path):
    args = ["run", "--variant", "lstm", "--set", "train.steps=600", "--set", "train.eval_every=50", *TINY, "--json"]
    (tmp_path / "ref").mkdir()
    (tmp_path / "main").mkdir()
    reference = run_cli(*args, "--tracking-uri", tmp_path / "ref" / "mlflow.db", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr

    uri = f"sqlite:///{tmp_path / 'main' / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args, "--tracking-uri", uri],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "main" / "checkpoints").glob("*/last.pt")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it (SIGINT: 130)
    killed = json.loads(out.strip().splitlines()[-1])
    assert killed["status"] == "KILLED" and 0 < killed["steps"] < 600
    # the whole command to continue it, with the store it is in
    assert f"continue it with: python -m harness run --resume {killed['run_id']} --tracking-uri {uri}" in out

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    assert client.get_run(killed["run_id"]).info.status == "KILLED"
    resumed = run_cli("run", "--resume", killed["run_id"], "--tracking-uri", uri, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = _json_line(resumed)
    assert final["run_id"] == killed["run_id"] and final["status"] == "FINISHED"
    assert final["metrics"] == _json_line(reference)["metrics"]
    assert client.get_run(killed["run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize("kind", ["unwritable", "refused", "malformed", "unsupported", "driver", "silent"])
def test_a_bad_tracking_store_is_one_line_exit_2_within_10_s_leaving_nothing(tmp_path, kind):
    if kind == "driver" and importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here")
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    uri = {"unwritable": "sqlite:////proc/nope/x.db",
           "refused": f"postgresql://harness:secret@127.0.0.1:{free_port()}/mlflow",
           "malformed": "postgresql://harness@127.0.0.1:notaport/mlflow", "unsupported": "ftp://host/store",
           "driver": "postgresql+psycopg2://harness@127.0.0.1/mlflow",
           "silent": f"http://127.0.0.1:{silent.getsockname()[1]}"}[kind]
    work = tmp_path / "work"
    work.mkdir()
    start = time.monotonic()
    try:
        result = run_cli("run", "--tracking-uri", uri, *TINY, cwd=work, timeout=60)
    finally:
        silent.close()
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: tracking store {uri.replace(':secret@', ':***@')}: "), lines
    assert "secret" not in result.stderr and result.stdout == ""
    assert seconds < 10, f"{seconds:.1f} s"
    assert list(work.iterdir()) == [], "no store, checkpoint or run left behind"


def test_a_data_error_comes_before_the_run_and_names_the_commands_own_option(tmp_path):
    env = {"HARNESS_DATA_DIR": str(tmp_path / "data")}
    result = run_cli("run", "--task", "imdb", "--set", "task.source=/nope/aclImdb.tar.gz", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: IMDB archive /nope/aclImdb.tar.gz does not exist; check --set task.source=PATH"
    assert not (tmp_path / "mlflow.db").exists(), "no store and no FAILED run"
    data = run_cli("data", "imdb", "--source", "/nope/aclImdb.tar.gz", cwd=tmp_path, env=env)
    assert data.returncode == 2 and data.stderr.strip().endswith("does not exist; check --source PATH")


def test_resume_of_an_unknown_run_is_a_clear_error(tmp_path):
    result = run_cli("run", "--resume", "0123abcd", cwd=tmp_path)
    assert result.returncode == 2 and "no checkpoint for run 0123abcd" in result.stderr


def test_package_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for command in ("run", "list", "config", "data"):
        assert command in result.stdout
