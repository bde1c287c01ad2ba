"""reproduce stopped and resumed: `--jobs 2` interrupted by SIGINT mid-run leaves no process
behind, `--status` reports the killed runs as resumable, the same command again resumes them
in the same MLflow runs from their checkpoints, and every run's final metrics equal those of
an uninterrupted `--jobs 1` on a store of its own. Progress lines under a pipe, too.

The claim is a plug-in of the test (a smoke-sized recall grid: 2 cells x 2 seeds, plus a
third cell the interrupted command never starts). Its task stops every run of seed 1 at step
GATE until that process receives SIGINT, so the signal lands mid-run whatever the load:
no sleep, no timing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, run_cli

from harness.tracking import Outcome, open_runs

GATE, STEPS = 30, 60
PLUGIN = f'''
import os, signal, time
from pathlib import Path

from harness.claims import Claim, Grid, register
from tasks.recall import Recall
from tasks.registry import register as register_task


@register_task
class GatedRecall(Recall):
    name = "gated_recall"

    def train_batch(self, index, batch_size, *, seed, device="cpu"):
        gate = os.environ.get("TEST_GATE_DIR")
        if gate and seed == 1 and index == {GATE}:
            hit, old = [], signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, lambda s, f: (hit.append(s), old(s, f)))
            Path(gate, f"gated-{{os.getpid()}}").touch()
            while not hit:
                time.sleep(0.02)
            signal.signal(signal.SIGINT, old)
        return super().train_batch(index, batch_size, seed=seed, device=device)


@register
class Interruptible(Claim):
    name = "interruptible"
    title = statement = sources = protocol = "a claim of tests/test_reproduce.py"
    cells = ("lstm", "gru", "simple_rnn")
    seeds = {{"smoke": 2, "quick": 2, "full": 2}}

    def grids(self, budget):
        return (Grid("g", {{"task.name": "gated_recall", "task.length": 5, "task.val_size": 64, "task.test_size": 64,
                           "model.hidden_size": 8, "train.batch_size": 16, "train.steps": {STEPS},
                           "train.eval_every": 20, "track.probe_points": 2, "track.gate_stats": False}},
                     {{"model.variant": self.cells}}),)
'''
FINAL = ("test_", "best_val_", "gradient_", "solve", "solved")  # what finish() computes at the end of a run


def _env(work: Path, **extra) -> dict:
    path = os.pathsep.join([str(work), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "HARNESS_PROGRESS_SECONDS": "0", **extra}


def _reproduce(work: Path, *args, **env):
    return run_cli("reproduce", "interruptible", "--budget", "smoke", "--plugin", "interruptible_claim", *args,
                   cwd=work, env=_env(work, **env), timeout=600)


def _records(work: Path) -> list:
    return open_runs(f"sqlite:///{work / 'mlflow.db'}").records("claim-interruptible")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """`reproduce --jobs 2` stopped by SIGINT once both seed-1 runs wait mid-run; then --status;
    then the same command again; and, on another store, one uninterrupted --jobs 1."""
    work, gates = tmp_path_factory.mktemp("stopped"), tmp_path_factory.mktemp("gates")
    (work / "interruptible_claim.py").write_text(PLUGIN)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **_env(work, TEST_GATE_DIR=str(gates))}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    with open(work / "out.txt", "w") as out, open(work / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "reproduce", "interruptible", "--budget", "smoke",
                                 "--jobs", "2", "--plugin", "interruptible_claim"], cwd=work, env=full_env,
                                stdout=out, stderr=err)
        children = []
        try:
            while len(list(gates.glob("gated-*"))) < 2:  # both workers hold a run of seed 1 at step GATE
                assert proc.poll() is None, (work / "err.txt").read_text()[-3000:]
                time.sleep(0.05)
            children = psutil.Process(proc.pid).children(recursive=True)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)  # to the command only: it must pass the stop on to its workers
            code = proc.wait(timeout=60)
            stop_seconds = time.monotonic() - sent
        finally:
            if proc.poll() is None:  # a failed stop: take its processes down before reporting it
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
    _, alive = psutil.wait_procs(children, timeout=10)
    for orphan in alive:  # reported by the test below; not left running on the machine
        orphan.kill()
    killed = {r.run_id: r for r in _records(work)}
    saved = {run_id for run_id in killed if (work / "checkpoints" / run_id / "last.pt").exists()}
    status = _reproduce(work, "--status", "--json")
    resumed = _reproduce(work)
    final_status = _reproduce(work, "--status")
    base = tmp_path_factory.mktemp("uninterrupted")
    (base / "interruptible_claim.py").write_text(PLUGIN)
    baseline = _reproduce(base, "--jobs", "1")
    assert resumed.returncode == 0 and baseline.returncode == 0, resumed.stderr[-2000:] + baseline.stderr[-2000:]
    return dict(work=work, base=base, code=code, stop_seconds=stop_seconds, children=children, alive=alive,
                killed=killed, saved=saved, status=status, final_status=final_status.stdout,
                resumed=resumed, out=(work / "out.txt").read_text(),
                err=(work / "err.txt").read_text())


def test_sigint_stops_every_worker_and_marks_runs_in_flight_killed(stopped):
    assert stopped["code"] == 130 and "interrupted" in stopped["err"], stopped["err"][-3000:]
    assert stopped["stop_seconds"] < 10
    assert len(stopped["children"]) >= 2 and stopped["alive"] == [], "no worker outlives the command"
    runs = stopped["killed"].values()
    outcomes = sorted(r.outcome.value for r in runs)
    assert outcomes == ["finished", "finished", "killed", "killed"], "seed 0 done, seed 1 stopped, the rest not begun"
    for r in runs:
        if r.outcome == Outcome.KILLED:
            assert r.tags["seed"] == "1"
            assert r.tags["stop_reason"].startswith(f"SIGINT at step {GATE + 1}")
            assert r.run_id in stopped["saved"], "a killed run keeps its checkpoint"
    assert "[start] g: variant=lstm seed=0" in stopped["out"] and "2 finished" in stopped["out"]
    assert "lstm on gated_recall: step 20/60" in stopped["err"], "workers' status lines reach the command's stderr"


def test_status_reports_killed_runs_as_resumable_and_what_is_next(stopped):
    from harness.reproduce.status import render

    assert stopped["status"].returncode == 0, stopped["status"].stderr[-2000:]
    status = json.loads(stopped["status"].stdout.strip().splitlines()[-1])
    (grid,) = status["parts"]
    assert (grid["kind"], grid["label"]) == ("grid", "g")
    assert {k: grid[k] for k in ("finished", "diverged", "killed", "missing")} == \
        {"finished": 2, "diverged": 0, "killed": 2, "missing": 2}
    killed = [r for r in stopped["killed"].values() if r.outcome == Outcome.KILLED]
    assert sorted(n for n in grid["next"] if n.startswith("resume")) == sorted(
        f"resume variant={r.tags['variant']} seed=1 (run {r.run_id[:8]})" for r in killed)
    assert sorted(n for n in grid["next"] if n.startswith("run ")) == ["run variant=simple_rnn seed=0",
                                                                       "run variant=simple_rnn seed=1"]
    text = render(status)  # what --status prints without --json
    assert "grid g: 2 finished, 0 diverged, 2 killed, 2 missing" in text and "next reproduce (4):" in text
    assert "grid g: 6 finished, 0 diverged, 0 killed, 0 missing" in stopped["final_status"]
    assert "next reproduce: nothing to run" in stopped["final_status"]


def test_a_rerun_resumes_the_killed_runs_in_place_from_their_checkpoints(stopped):
    work, out = stopped["work"], stopped["resumed"].stdout
    assert "6 runs planned, 2 reused, 2 to resume, 2 to run" in out
    assert out.count(f"from its checkpoint at step {GATE + 1}") == 2
    after = {r.run_id: r for r in _records(work)}
    assert len(after) == 6 and all(r.outcome == Outcome.FINISHED for r in after.values())
    runs = open_runs(f"sqlite:///{work / 'mlflow.db'}")
    for run_id, before in stopped["killed"].items():
        assert run_id in after, "the killed run continues under its own id"
        if before.outcome == Outcome.KILLED:
            assert after[run_id].tags.get("resumed") == "true" and "stop_reason" not in after[run_id].tags
            assert after[run_id].tags["resumed_after"] == f"SIGINT at step {GATE + 1}", "the stop, kept as history"
            steps = runs.history([run_id], "train_loss")["step"].tolist()
            assert sorted(steps) == list(range(10, STEPS + 1, 10)), "steps continue from the checkpoint, none twice"
            assert not (work / "checkpoints" / run_id / "last.pt").exists(), "a result keeps no checkpoint"


def test_resumed_metrics_equal_an_uninterrupted_jobs_1_run(stopped):
    def final(work):
        return {r.tags["fingerprint"]: {k: v for k, v in r.metrics.items() if k.startswith(FINAL)}
                for r in _records(work)}

    resumed, baseline = final(stopped["work"]), final(stopped["base"])
    assert len(baseline) == 6 and resumed.keys() == baseline.keys()
    assert all(metrics for metrics in baseline.values())
    assert resumed == baseline


def test_workers_of_a_sigkilled_command_stop_their_runs_and_exit(tmp_path):
    """--jobs 1 runs in a worker too; when the command dies without a word (SIGKILL), its worker
    notices, ends its run killed with a checkpoint, and exits."""
    gates = tmp_path / "gates"
    gates.mkdir()
    (tmp_path / "interruptible_claim.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **_env(tmp_path, TEST_GATE_DIR=str(gates))}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "reproduce", "interruptible", "--budget", "smoke",
                             "--plugin", "interruptible_claim"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    workers = []
    try:
        while not list(gates.glob("gated-*")):  # the one worker holds lstm seed 1 at step GATE
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.05)
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(workers, timeout=10)
    finally:
        for process in [p for p in workers if p.is_running()] + ([proc] if proc.poll() is None else []):
            process.kill()
    assert workers and alive == [], "the worker outlived its command"
    runs = {r.tags["seed"]: r for r in _records(tmp_path) if r.tags["variant"] == "lstm"}
    assert runs["0"].outcome == Outcome.FINISHED and runs["1"].outcome == Outcome.KILLED
    assert (tmp_path / "checkpoints" / runs["1"].run_id / "last.pt").exists()


def test_a_tracked_run_under_a_pipe_prints_progress_lines_before_it_ends(tmp_path):
    done = run_cli("run", "--variant", "lstm", "--set", "train.steps=20", "--set", "train.eval_every=10",
                   "--set", "task.val_size=64", "--set", "task.test_size=64", "--tracking-uri",
                   f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, env={"HARNESS_PROGRESS_SECONDS": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("lstm on recall: ")]
    assert any(line.startswith("lstm on recall: step 10/20 (50%) loss=") for line in lines), done.stderr[-2000:]
    assert "lstm on recall: test set ..." in lines
    assert any(line.startswith("lstm on recall: test set done in ") for line in lines)
    bad = run_cli("run", "--variant", "lstm", cwd=tmp_path, env={"HARNESS_PROGRESS_SECONDS": "soon"})
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "HARNESS_PROGRESS_SECONDS" in bad.stderr


@pytest.mark.parametrize("args,env,expected", [
    (["params", "--json"], {}, "--json goes with --status"),
    (["params", "--budget", "smoke"], {"HARNESS_PROGRESS_SECONDS": "-1"}, "HARNESS_PROGRESS_SECONDS='-1'"),
])
def test_bad_reproduce_input_is_one_line_before_any_run(tmp_path, args, env, expected):
    done = run_cli("reproduce", *args, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2 and expected in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "mlflow.db").exists()

