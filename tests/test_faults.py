"""Faults of a run: a process killed at any point, damaged files the harness wrote, text the store
refuses, read-only places, sizes that cannot fit. Real subprocesses and real SQLite stores; kill
points are chosen by the progress the run has written (its checkpoint), never by a clock."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from harness.tracking import Outcome

TINY = ["--set", "model.hidden_size=8", "--set", "task.length=5", "--set", "train.batch_size=16",
        "--set", "task.val_size=256", "--set", "task.test_size=256", "--set", "track.probe_points=2"]
STEPS, EVAL, LOG = 200, 20, 10  # a checkpoint at every evaluation
ARGS = ["--set", f"train.steps={STEPS}", "--set", f"train.eval_every={EVAL}", "--set", f"train.log_every={LOG}",
        "--set", "train.threads=1", *TINY]


def _json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def _checkpoint_step(root: Path) -> tuple[str | None, int]:
    """(run id, step) of the newest checkpoint under `root`, (None, -1) before there is one."""
    found = sorted(root.glob("*/last.pt"))
    if not found:
        return None, -1
    try:  # written by rename: a reader sees the old file or the new one, never half of one
        return found[0].parent.name, torch.load(found[0], weights_only=True)["step"]
    except FileNotFoundError:
        return None, -1


def _kill_after(command: list[str], root: Path, step: int) -> str:
    """Start `command` and SIGKILL it once its checkpoint has reached `step`; the run id."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # only against a hang: the kill point is the checkpoint
    run_id, at = _checkpoint_step(root)
    while at < step and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        run_id, at = _checkpoint_step(root)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill point:\n{err[-2000:]}"
    return run_id


def test_sigkill_at_several_points_then_resume_logs_every_step_exactly_once(tmp_path):
    """Before the fix the checkpoint was written while the last values still waited in the
    writer's queue: a kill lost them (26 of 40 train_loss values in three kills), and values
    logged after the checkpoint would be logged again on resume."""
    (tmp_path / "ref").mkdir()
    reference = run_cli("run", *ARGS, "--tracking-uri", tmp_path / "ref" / "mlflow.db", "--json",
                        cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    uri = f"sqlite:///{tmp_path / 'main' / 'mlflow.db'}"
    root = tmp_path / "main" / "checkpoints"
    run_id = _kill_after(["run", *ARGS, "--tracking-uri", uri], root, 40)
    for step in (100, 160):  # later points, each reached by the resumed process
        assert _kill_after(["run", "--resume", run_id, "--tracking-uri", uri], root, step) == run_id
    final = run_cli("run", "--resume", run_id, "--tracking-uri", uri, "--json", cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _json(final)["metrics"] == _json(reference)["metrics"]

    from mlflow import MlflowClient

    client, ref_client = MlflowClient(uri), MlflowClient(_json(reference)["tracking_uri"])
    ref_id = _json(reference)["run_id"]
    keys = set(client.get_run(run_id).data.metrics)
    assert keys == set(ref_client.get_run(ref_id).data.metrics)
    for key in keys:
        steps = collections.Counter(m.step for m in client.get_metric_history(run_id, key))
        ref_steps = collections.Counter(m.step for m in ref_client.get_metric_history(ref_id, key))
        assert steps == ref_steps, f"{key}: every logged step exactly once"
    assert sorted(m.step for m in client.get_metric_history(run_id, "train_loss")) == list(range(LOG, STEPS + 1, LOG))
    for key in ("train_loss", "val_accuracy", "val_cross_entropy"):  # the values, not only the steps
        values = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        assert values == {m.step: m.value for m in ref_client.get_metric_history(ref_id, key)}, key
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_resumed_run_does_not_log_again_what_the_store_holds(tmp_path):
    """Values logged after the last checkpoint, before the process died, are in the store: the
    resumed run's values for those steps are not written a second time."""
    from mlflow import MlflowClient

    from harness.tracking import open_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = open_tracker(uri, "resume")
    run_id = first.start(run_name="r", tags={})
    for step in range(1, 6):
        first.log_metrics({"loss": float(step)}, step)
    first.flush()  # the process dies here: the run stays RUNNING, its checkpoint says step 3
    again = open_tracker(uri, "resume")
    again.start(run_name="r", tags={}, resume_run_id=run_id)
    for step in range(4, 9):
        again.log_metrics({"loss": float(step), "other": 1.0}, step)
    again.end()
    history = MlflowClient(uri).get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 9))
    assert len(MlflowClient(uri).get_metric_history(run_id, "other")) == 5


def test_a_total_over_resumes_logged_again_at_a_stored_step_is_the_newer_one(tmp_path):
    """run_seconds is a sum over a run's parts: a process killed after logging it at the last step
    (while it logged its artifacts) and resumed logs the larger sum at that step; that one counts."""
    from mlflow import MlflowClient

    from harness.tracking import open_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = open_tracker(uri, "resume")
    run_id = first.start(run_name="r", tags={})
    first.log_metrics({"run_seconds": 10.0, "test_accuracy": 0.5}, 40)
    first.flush()  # killed here
    again = open_tracker(uri, "resume")
    again.start(run_name="r", tags={}, resume_run_id=run_id)
    again.log_metrics({"run_seconds": 14.0, "test_accuracy": 0.5}, 40)
    again.end()
    client = MlflowClient(uri)
    assert client.get_run(run_id).data.metrics["run_seconds"] == 14.0
    assert len(client.get_metric_history(run_id, "test_accuracy")) == 1, "a result is still written once"


def test_a_resumed_run_keeps_no_stale_stop_reason_and_remembers_each_stop(tmp_path):
    """Before: a run stopped with SIGINT and resumed to its end still said 'SIGINT at step 40;
    resume with --resume ...' on a FINISHED run. The reason now moves to `resumed_after`."""
    from mlflow import MlflowClient

    from harness.tracking import open_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = open_tracker(uri, "resume")
    run_id = first.start(run_name="r", tags={})
    first.set_tags({"stop_reason": f"SIGINT at step 40; resume with --resume {run_id}"})
    first.end(Outcome.KILLED)
    second = open_tracker(uri, "resume")
    second.start(run_name="r", tags={}, resume_run_id=run_id)
    running = MlflowClient(uri).get_run(run_id)
    assert running.info.status == "RUNNING" and running.data.tags["outcome"] == "running", "not 'killed' while it runs"
    second.set_tags({"failure_reason": "worker lost at step 90"})
    second.end(Outcome.CRASHED)
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags["failure_reason"] == "worker lost at step 90" and "stop_reason" not in tags
    third = open_tracker(uri, "resume")
    third.start(run_name="r", tags={}, resume_run_id=run_id)
    third.end(Outcome.FINISHED)
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags["outcome"] == "finished" and tags["resumed"] == "true"
    assert "stop_reason" not in tags and "failure_reason" not in tags
    assert tags["resumed_after"] == "SIGINT at step 40 | worker lost at step 90"
    # a resume that died between recording the stop and deleting its reason does not record it twice
    MlflowClient(uri).set_tag(run_id, "stop_reason", f"worker lost at step 90; resume with --resume {run_id}")
    fourth = open_tracker(uri, "resume")
    fourth.start(run_name="r", tags={}, resume_run_id=run_id)
    fourth.end(Outcome.FINISHED)
    assert MlflowClient(uri).get_run(run_id).data.tags["resumed_after"] == "SIGINT at step 40 | worker lost at step 90"


def _runs(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def _one_line_exit_2(result, start: float, message: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert time.monotonic() - start < 10, "within 10 s"


@pytest.mark.parametrize("size", ["model.hidden_size=1000000", "task.length=100000000", "train.batch_size=100000000"])
def test_a_size_that_cannot_fit_is_refused_before_anything_is_allocated(tmp_path, size):
    """Before: a 37-line memory traceback (hidden_size), 21 lines (length), or the OOM killer after
    203 s with the run left RUNNING (batch_size). Now one line with the estimate and what is free,
    before the store exists."""
    start = time.monotonic()
    result = run_cli("run", "--set", size, "--set", "train.steps=2", cwd=tmp_path, timeout=120)
    _one_line_exit_2(result, start, "this run needs about ")
    assert " free; make these sizes smaller, or set train.memory_check=false" in result.stderr
    assert list(tmp_path.iterdir()) == [], "no store, no checkpoint folder"


def test_the_memory_estimate_and_its_override():
    from harness.config import ConfigError
    from harness.training import memory
    from harness.training.spec import build_spec

    small = build_spec({"model": {"hidden_size": 64}, "task": {"name": "recall", "length": 20}})
    need = memory.check(small)
    assert need is not None and 0 < need.total < 10**9
    lstm = memory.estimate(build_spec({"model": {"hidden_size": 256}, "train": {"batch_size": 64},
                                       "task": {"name": "adding", "length": 2000}}))
    # measured: a fused-LSTM run of this shape grows the process by 2.26 GB at its peak
    assert 1.5e9 < lstm.total < 3e9 and lstm.activations > 10 * lstm.parameters
    huge = build_spec({"model": {"hidden_size": 10**6}})
    with pytest.raises(ConfigError, match=r"this run needs about \d.* TB of memory \(model.hidden_size=1000000"):
        memory.check(huge)
    assert memory.check(build_spec({"model": {"hidden_size": 10**6}, "train": {"memory_check": False}})) is None


def test_a_damaged_checkpoint_on_resume_is_one_line_naming_the_file(tmp_path):
    """Before: a 25-line traceback from torch's zip reader."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _kill_after(["run", *ARGS, "--tracking-uri", uri], tmp_path / "checkpoints", EVAL)
    path = tmp_path / "checkpoints" / run_id / "last.pt"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    start = time.monotonic()
    result = run_cli("run", "--resume", run_id, "--tracking-uri", uri, cwd=tmp_path)
    _one_line_exit_2(result, start, f"checkpoint {path} is damaged (")
    assert result.stderr.strip().endswith("start a new run without --resume")
    torch.save({"step": 3}, path)  # readable, but not what a checkpoint holds
    result = run_cli("run", "--resume", run_id, "--tracking-uri", uri, cwd=tmp_path)
    _one_line_exit_2(result, time.monotonic(), f"checkpoint {path} is not a complete checkpoint (no 'config')")


def test_resume_of_a_run_still_training_or_from_another_store_is_refused(tmp_path):
    """Before: a second `run --resume` of a run still training was accepted (both processes wrote
    one checkpoint, or both logged every step), and --tracking-uri/--experiment were ignored on
    resume (the run went on in the store its checkpoint named)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _kill_after(["run", *ARGS, "--tracking-uri", uri], tmp_path / "checkpoints", EVAL)  # left RUNNING
    path = tmp_path / "checkpoints" / run_id / "last.pt"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; from harness."
                               "training.checkpoint import hold; hold(Path(sys.argv[1])); print('held', flush=True); "
                               "time.sleep(120)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        result = run_cli("run", "--resume", run_id, "--tracking-uri", uri, cwd=tmp_path)
        _one_line_exit_2(result, start, f"run {run_id} is being trained now by process {holder.pid} on ")
    finally:
        holder.kill()  # dies without a word: the kernel drops its lock
        holder.wait()
    for args, message in (((("--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}")),
                           f"run {run_id} is not in the tracking store"),
                          (("--tracking-uri", uri, "--experiment", "other"), "drop --experiment"),
                          (("--tracking-uri", "bogus://x"), "unsupported scheme 'bogus'")):
        start = time.monotonic()
        _one_line_exit_2(run_cli("run", "--resume", run_id, *args, cwd=tmp_path), start, message)
    assert not (tmp_path / "other.db").exists()
    final = run_cli("run", "--resume", run_id, "--tracking-uri", uri, "--json", cwd=tmp_path)
    assert final.returncode == 0 and _json(final)["steps"] == STEPS, final.stderr[-2000:]
    assert not (tmp_path / "checkpoints" / run_id).exists(), "no lock file or folder left behind"


def test_a_run_is_held_by_one_process_at_a_time_and_its_folder_goes_with_the_lock(tmp_path):
    from harness.training.checkpoint import RunInUse, hold

    path = tmp_path / "run-a" / "last.pt"
    release = hold(path)
    with pytest.raises(RunInUse, match=f"run run-a is being trained now by process {os.getpid()} on "):
        hold(path)
    release()
    assert not path.parent.exists(), "an empty run folder goes with its lock"
    release = hold(path)
    path.write_bytes(b"checkpoint")
    release()
    assert path.exists() and not (path.parent / "training.lock").exists(), "a checkpoint stays, the lock goes"


def test_resume_of_a_finished_run_is_refused_and_the_ui_line_survives_spaces(tmp_path):
    """Before: --resume of a finished run exited 0 and logged its final metrics a second time;
    and the printed `mlflow ui` line split a store path with spaces into two arguments."""
    import shlex

    from mlflow import MlflowClient

    store = tmp_path / "my runs" / "mlflow.db"
    done = run_cli("run", *TINY, "--set", "train.steps=20", "--tracking-uri", store, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    info = _json(done)
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("mlflow ui"))
    words = shlex.split(line)
    assert words[words.index("--backend-store-uri") + 1] == info["tracking_uri"] == f"sqlite:///{store}"
    start = time.monotonic()
    result = run_cli("run", "--resume", info["run_id"], "--tracking-uri", store, cwd=tmp_path)
    _one_line_exit_2(result, start, f"run {info['run_id']} already ended (finished); --resume continues only")
    client = MlflowClient(info["tracking_uri"])
    assert len(client.get_metric_history(info["run_id"], "test_accuracy")) == 1
    assert client.get_run(info["run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize("args,message", [
    (["--experiment", "x" * 501], "the experiment name 'xxxxxxxxxxxxxxxxxxxx'... has 501 characters; MLflow takes at most 500"),
    (["--set", "track.run_name=" + "r" * 251], "has 251 characters; MLflow takes at most 250"),
    (["--experiment", "bad\udcff"], "track.experiment: 'bad\\xff' is not UTF-8 text"),
    (["--set", "track.run_name=r\udcfe"], "track.run_name: 'r\\xfe' is not UTF-8 text"),
    (["--set", "track.checkpoint_dir=ck\udcff"], "track.checkpoint_dir: 'ck\\xff' is not UTF-8"),
], ids=["long experiment", "long run name", "experiment bytes", "run name bytes", "path bytes"])
def test_text_the_store_refuses_is_one_line_before_anything_exists(tmp_path, args, message):
    """Before: 40- to 106-line MLflow tracebacks, after the store (and a checkpoint folder) existed."""
    start = time.monotonic()
    result = run_cli("run", *TINY, "--set", "train.steps=2", *args, cwd=tmp_path)
    _one_line_exit_2(result, start, message)
    assert list(tmp_path.iterdir()) == [], "no store, no checkpoint folder"


@pytest.fixture
def read_only():
    """Make folders read-only in a way that stops root too (an immutable folder: chattr +i);
    other users get permission bits. Undone at teardown."""
    import os
    import shutil

    done = []

    def make(folder: Path):
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], check=False).returncode:
                pytest.skip("running as root and chattr +i is not available here")
        else:
            folder.chmod(0o555)
        done.append(folder)

    yield make
    for folder in done:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


@pytest.mark.parametrize("place", ["store folder", "artifact folder"])
def test_a_read_only_place_is_one_line_and_no_run_is_left_running(tmp_path, read_only, place):
    """Before: a 213-line traceback (store folder) and a 43-line one with a run left RUNNING
    forever (artifact folder). Now one line before the run exists."""
    store = tmp_path / "store" / "mlflow.db"
    first = run_cli("run", *TINY, "--set", "train.steps=2", "--tracking-uri", store, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    uri = f"sqlite:///{store}"
    read_only(store.parent if place == "store folder" else store.parent / "mlartifacts")
    start = time.monotonic()
    result = run_cli("run", *TINY, "--set", "train.steps=2", "--set", f"track.checkpoint_dir={tmp_path / 'ck'}",
                     "--tracking-uri", store, cwd=tmp_path)
    _one_line_exit_2(result, start, {"store folder": f"cannot write beside {store}, where SQLite keeps its journal",
                                     "artifact folder": "cannot write the run's artifacts"}[place])
    assert [r.info.status for r in _runs(uri)] == ["FINISHED"], "no new run, none RUNNING"
    assert not (tmp_path / "ck").exists()


def test_a_failure_after_the_run_exists_ends_it_as_crashed(tmp_path, read_only):
    """When a place turns read-only after the run was created (here: the artifact folder, in the
    run's on_start callback), the failure ends the run FAILED (outcome crashed), never RUNNING."""
    from helpers import tiny_spec
    from mlflow import MlflowClient

    from harness.tracking import open_tracker
    from harness.training.train import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = open_tracker(uri, "faults")

    def lock_artifacts(run_id):
        folder = tmp_path / "mlartifacts" / run_id
        folder.mkdir(parents=True)
        read_only(folder)

    with pytest.raises(OSError):
        train(tiny_spec(), tracker, progress=False, on_start=lock_artifacts)
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.tags["outcome"] == "crashed"
